-- bench/redis/rd.lua: GET or SET through resty.redis from `conc` light threads, each with its
-- own connection, `ops` commands in all, optionally pipelined by `pipe` (16-byte keys, 32-byte
-- values, 1000 keys). Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come
-- from the global BENCH table (BENCH.driver: the module to load, default "resty.redis", e.g.
-- "nginx.redis" for Debian's lua-resty-redis); the result is one line "ops=N elapsed=S cpu=S".
local redis = require(BENCH.driver or "resty.redis")
local common = require "common"  -- bench/lua/common.lua: run(), report() for both runtimes
local B = BENCH

local NKEYS = 1000
local keys, value = {}, string.rep("v", 32)
for i = 1, NKEYS do keys[i] = string.format("key:%012d", i) end
local pipe, get = B.pipe or 1, B.mode == "get"

local function setup(t)
    local r = assert(redis:new())
    r:set_timeout(10000)
    assert(r:connect("127.0.0.1", B.port))
    if t == 1 then
        for i = 1, NKEYS do assert(r:set(keys[i], value)) end
    end
    return { r = r, j = t }
end

local keepalive = B.keepalive

local function one(st)
    st.j = st.j % NKEYS + 1
    if get then return st.r:get(keys[st.j]) end
    return st.r:set(keys[st.j], value)
end

-- one op: a command, or a pipeline of `pipe` commands; with BENCH.keepalive, as a request
-- handler does it: connect (from the pool), the command, set_keepalive
local function op(st)
    if keepalive then
        local r = st.r
        local ok, err = r:connect("127.0.0.1", B.port)
        if not ok then return nil, err end
        local res
        res, err = one(st)
        if not res then return nil, err end
        return r:set_keepalive(10000, 100)
    end
    if pipe == 1 then return one(st) end
    st.r:init_pipeline(pipe)
    for _ = 1, pipe do one(st) end
    return st.r:commit_pipeline()
end

local batches = math.floor(B.ops / pipe)
local elapsed, cpu = common.run(B.conc, batches, setup, op)
common.report(batches * pipe, elapsed, cpu)
