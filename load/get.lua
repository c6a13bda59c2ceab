-- GET of the URL given to wrk (health, read); the token, if any, comes as -H.
local common = dofile("load/common.lua")
done = common.done
