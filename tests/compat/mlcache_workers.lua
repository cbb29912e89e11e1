-- lua-resty-mlcache across `-w 2` workers (cosocket only): both cache "k" in their L1;
-- worker 0 changes it with set(), which broadcasts through ipc_shm; worker 1 sees the new
-- value after update(). Needs --shdict 'cache_dict 1m' --shdict 'locks 1m' --shdict 'ipc 1m'.
local check = require "check"
local mlcache = require "resty.mlcache"

local id = ngx.worker.id()
local dict = ngx.shared.locks
local cache = assert(mlcache.new("wcache", "cache_dict", { ipc_shm = "ipc", shm_locks = "locks", ttl = 30 }))
local v = cache:get("k", nil, function() return "first" end)
check.eq("worker " .. id .. " caches k", v, "first")
dict:incr("ready", 1, 0)
while dict:get("ready") < 2 do ngx.sleep(0.01) end
if id == 0 then
    check.eq("worker 0 sets k", (cache:set("k", nil, "second")), true)
    dict:set("changed", true)
else
    for _ = 1, 300 do
        if dict:get("changed") then break end
        ngx.sleep(0.01)
    end
    local _, _, level = cache:get("k")
    check.ok("worker 1 still has its L1 copy before update()", level == 1, level)
    check.eq("update", (cache:update()), true)
    v = cache:get("k", nil, function() return "callback" end)
    check.eq("worker 1 sees worker 0's set after update()", v, "second")
end
ngx.sleep(0.3)
check.done()
