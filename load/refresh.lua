-- POST /refresh, chaining rotated refresh tokens: each is single use, so every wrk
-- thread owns one session (its first token is line N of LOAD_TOKENS_FILE), runs one
-- connection (load/run.sh passes -c = -t), and presents the token the previous
-- response returned. A failed refresh breaks that chain: its later requests count as errors.
local common = dofile("load/common.lua")

local tokens = {}
local next_token = 0
for line in io.lines(os.getenv("LOAD_TOKENS_FILE")) do
  table.insert(tokens, line)
end

function setup(thread)
  next_token = next_token + 1
  thread:set("token", tokens[next_token])
end

function request()
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. token }, nil)
end

function response(status, headers, body)
  if status == 200 then
    local rotated = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if rotated then token = rotated end
  end
end

done = common.done
