-- POST /login with LOAD_USERNAME / LOAD_PASSWORD; counts what came back (200, 503 shed
-- by the hashing pool, 429 rate limited, anything else) and prints it as a STATUS line
-- with the run's seconds, so that 200s per second can be told from requests per second.
local common = dofile("load/common.lua")

local threads = {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"username": "%s", "password": "%s"}',
  os.getenv("LOAD_USERNAME"), os.getenv("LOAD_PASSWORD"))

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, shed, limited, other = 0, 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then shed = shed + 1
  elseif status == 429 then limited = limited + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  common.done(summary, latency, requests)
  local t = { ok = 0, shed = 0, limited = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format("STATUS %d %d %d %d %.3f\n", t.ok, t.shed, t.limited, t.other,
    summary.duration / 1e6))
end
