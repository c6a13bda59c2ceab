-- Shared by every scenario: one machine-readable line that load/run.sh turns into
-- a table row. Latencies in milliseconds; errors split into non-2xx/3xx and socket.
local common = {}

function common.done(summary, latency, requests)
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, socket, summary.requests))
end

return common
