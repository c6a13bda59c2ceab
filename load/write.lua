-- PUT /item/{id} (the URL given to wrk) with a small JSON body; the token comes as -H.
local common = dofile("load/common.lua")
wrk.method = "PUT"
wrk.body = '{"price": 12.5}'
wrk.headers["Content-Type"] = "application/json"
done = common.done
