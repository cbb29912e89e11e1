-- bench/memcached/mc.lua: get or set through resty.memcached from `conc` light threads,
-- each with its own connection, `ops` operations in all (16-byte keys, 32-byte values).
-- Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come from the global
-- BENCH table; the result is one line "ops=N elapsed=S cpu=S".
local memcached = require "resty.memcached"
local B = BENCH

local common = require "common"  -- bench/lua/common.lua: cpu() and now() for both runtimes
local cpu, now = common.cpu, common.now

local NKEYS = 1000
local keys, value = {}, string.rep("v", 32)
for i = 1, NKEYS do keys[i] = string.format("key:%012d", i) end

local function client()
    local m = assert(memcached:new())
    m:set_timeout(10000)
    assert(m:connect("127.0.0.1", B.port))
    return m
end

local conns = {}
for t = 1, B.conc do conns[t] = client() end
for i = 1, NKEYS do assert(conns[1]:set(keys[i], value)) end

local per = math.floor(B.ops / B.conc)
local get = B.mode == "get"
local function worker(m, t)
    local j = t
    for _ = 1, per do
        j = j % NKEYS + 1
        if get then
            local v, _, err = m:get(keys[j])
            if not v then error("get failed: " .. tostring(err)) end
        else
            local ok, err = m:set(keys[j], value)
            if not ok then error("set failed: " .. tostring(err)) end
        end
    end
end

local t0, c0 = now(), cpu()
local threads = {}
for t = 1, B.conc do threads[t] = ngx.thread.spawn(worker, conns[t], t) end
for t = 1, B.conc do assert(ngx.thread.wait(threads[t])) end
local elapsed, used = now() - t0, cpu() - c0
for t = 1, B.conc do conns[t]:close() end
ngx.say(string.format("ops=%d elapsed=%.6f cpu=%.6f", per * B.conc, elapsed, used))
