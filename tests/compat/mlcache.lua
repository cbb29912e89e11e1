-- Usage checks of lua-resty-mlcache, unmodified: L1 (lrucache) + L2 (a shdict), the
-- callback lock, negative caching, set/delete/update through ipc_shm.
-- Needs --shdict 'cache_dict 1m' --shdict 'locks 1m' --shdict 'ipc 1m'.
local check = require "check"
local mlcache = require "resty.mlcache"

local cache = assert(mlcache.new("my_cache", "cache_dict", {
    lru_size = 100, ttl = 1, neg_ttl = 0.3, shm_locks = "locks", ipc_shm = "ipc" }))

local calls = 0
local function cb(x)
    calls = calls + 1
    ngx.sleep(0.05)
    return "value " .. x
end

local v, err, hit = cache:get("a", nil, cb, "A")
check.eq("miss runs the callback", v, "value A")
check.eq("miss level", hit, 3)
v, err, hit = cache:get("a", nil, cb, "A")
check.eq("L1 hit", hit, 1)
check.eq("callback ran once", calls, 1)

-- concurrent misses: the lock lets one callback run
local threads = {}
for i = 1, 5 do
    threads[i] = ngx.thread.spawn(function() return cache:get("c", nil, cb, "C") end)
end
local all = true
for i = 1, 5 do
    local _, val = ngx.thread.wait(threads[i])
    all = all and val == "value C"
end
check.ok("5 concurrent misses agree", all)
check.eq("one callback for 5 concurrent misses", calls, 2)

-- L2: a second instance on the same shdict with an L1 of its own (as another worker has)
-- finds it there
local cache2 = assert(mlcache.new("my_cache", "cache_dict", {
    ipc_shm = "ipc", lru = require("resty.lrucache").new(10) }))
v, err, hit = cache2:get("a", nil, cb, "A")
check.eq("L2 hit from another instance", hit, 2)
check.eq("L2 value", v, "value A")

-- negative caching
local nil_calls = 0
v, err, hit = cache:get("n", nil, function() nil_calls = nil_calls + 1 return nil end)
v, err, hit = cache:get("n", nil, function() nil_calls = nil_calls + 1 return nil end)
check.eq("nil is cached", nil_calls, 1)
check.eq("nil hit", hit, 1)

-- callback errors
v, err = cache:get("e", nil, function() error("boom") end)
check.ok("callback error reported", v == nil and err and err:find("boom", 1, true), err)

-- peek, set, delete, update
local ttl, _, pv = cache:peek("a")
check.ok("peek ttl", ttl and ttl > 0 and ttl <= 1, ttl)
check.eq("peek value", pv, "value A")
check.eq("set", (cache:set("b", nil, 42)), true)
check.eq("get after set", (cache:get("b")), 42)
check.eq("delete", (cache:delete("b")), true)
check.eq("update", (cache2:update()), true)
check.eq("deleted in the other instance's L1", (cache2:get("b")), nil)

-- expiry of L1 and L2
ngx.sleep(1.1)
v, err, hit = cache:get("a", nil, cb, "A2")
check.eq("expired: callback again", v, "value A2")

check.eq("purge", (cache:purge()), true)
check.done()
