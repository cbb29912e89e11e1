-- bench/memcached/mc.lua: get or set through resty.memcached from `conc` light threads,
-- each with its own connection, `ops` operations in all (16-byte keys, 32-byte values,
-- 1000 keys). Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come from the
-- global BENCH table; the result is one line "ops=N elapsed=S cpu=S".
local memcached = require(BENCH.driver or "resty.memcached")
local common = require "common"  -- bench/lua/common.lua: run(), report() for both runtimes
local B = BENCH

local NKEYS = 1000
local keys, value = {}, string.rep("v", 32)
for i = 1, NKEYS do keys[i] = string.format("key:%012d", i) end
local get = B.mode == "get"

local function setup(t)
    local m = assert(memcached:new())
    m:set_timeout(10000)
    assert(m:connect("127.0.0.1", B.port))
    if t == 1 then
        for i = 1, NKEYS do assert(m:set(keys[i], value)) end
    end
    return { m = m, j = t }
end

local function one(st)
    st.j = st.j % NKEYS + 1
    if not get then return st.m:set(keys[st.j], value) end
    local v, _, err = st.m:get(keys[st.j])
    return v, err
end

-- with BENCH.keepalive, as a request handler does it: connect (from the pool), the
-- command, set_keepalive
local keepalive = B.keepalive

local function op(st)
    if not keepalive then return one(st) end
    local m = st.m
    local ok, err = m:connect("127.0.0.1", B.port)
    if not ok then return nil, err end
    ok, err = one(st)
    if not ok then return nil, err end
    return m:set_keepalive(10000, 100)
end

local elapsed, cpu = common.run(B.conc, B.ops, setup, op)
common.report(B.ops, elapsed, cpu)
