-- bench/beanstalkd/bs.lua: put + reserve + delete cycles through resty.beanstalkd from `conc`
-- light threads, each with its own connection, `ops` cycles in all (64-byte bodies, one
-- tube). Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come from the
-- global BENCH table; the result is one line "ops=N elapsed=S cpu=S".
local beanstalkd = require "resty.beanstalkd"
local common = require "common"  -- bench/lua/common.lua: run(), report() for both runtimes
local B = BENCH

local body = string.rep("j", B.size or 64)
local tube = "bench-" .. B.conc

local function setup()
    local b = assert(beanstalkd:new())
    b:set_timeout(10000)
    assert(b:connect("127.0.0.1", B.port, { use = tube, watch = { tube } }))
    return b
end

-- every thread puts before it reserves, so a ready job is always there for its reserve
local function cycle(b)
    local id, err = b:put(body)
    if not id then return nil, "put: " .. tostring(err) end
    local rid, data = b:reserve(5)
    if not rid then return nil, "reserve: " .. tostring(data) end
    return b:delete(rid)
end

local elapsed, cpu = common.run(B.conc, B.ops, setup, cycle)
common.report(B.ops, elapsed, cpu)
