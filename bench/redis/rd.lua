-- bench/redis/rd.lua: GET or SET through resty.redis from `conc` light threads, each with its
-- own connection, `ops` commands in all, optionally pipelined by `pipe` (16-byte keys, 32-byte
-- values, 1000 keys). Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come
-- from the global BENCH table (BENCH.driver: the module to load, default "resty.redis", e.g.
-- "nginx.redis" for Debian's lua-resty-redis); the result is one line "ops=N elapsed=S cpu=S".
local B = BENCH
local redis = require(B.driver or "resty.redis")

local common = require "common"  -- bench/lua/common.lua: cpu() and now() for both runtimes
local cpu, now = common.cpu, common.now

local NKEYS = 1000
local keys, value = {}, string.rep("v", 32)
for i = 1, NKEYS do keys[i] = string.format("key:%012d", i) end

local function client()
    local r = assert(redis:new())
    r:set_timeout(10000)
    assert(r:connect("127.0.0.1", B.port))
    return r
end

local conns = {}
for t = 1, B.conc do conns[t] = client() end
for i = 1, NKEYS do assert(conns[1]:set(keys[i], value)) end

local pipe = B.pipe or 1
local per = math.floor(B.ops / B.conc / pipe)
local get = B.mode == "get"
local function worker(r, t)
    local j = t
    for _ = 1, per do
        if pipe > 1 then
            r:init_pipeline(pipe)
            for _ = 1, pipe do
                j = j % NKEYS + 1
                if get then r:get(keys[j]) else r:set(keys[j], value) end
            end
            local res, err = r:commit_pipeline()
            if not res then error("pipeline failed: " .. tostring(err)) end
        else
            j = j % NKEYS + 1
            local v, err
            if get then v, err = r:get(keys[j]) else v, err = r:set(keys[j], value) end
            if not v then error(B.mode .. " failed: " .. tostring(err)) end
        end
    end
end

-- user and system CPU seconds apart (the kernel's share -- send, recv, epoll -- is the same
-- for any driver; the user share is the driver's and the runtime's)
local function cpu_split()
    local f = io.open("/proc/self/stat")
    local s = f:read("*a")
    f:close()
    local u, st = s:match("%) %S+" .. string.rep(" %S+", 10) .. " (%d+) (%d+)")
    return tonumber(u) / 100, tonumber(st) / 100
end

local t0, c0 = now(), cpu()
local u0, s0 = cpu_split()
local threads = {}
for t = 1, B.conc do threads[t] = ngx.thread.spawn(worker, conns[t], t) end
for t = 1, B.conc do assert(ngx.thread.wait(threads[t])) end
local elapsed, used = now() - t0, cpu() - c0
local u1, s1 = cpu_split()
for t = 1, B.conc do conns[t]:close() end
ngx.say(string.format("ops=%d elapsed=%.6f cpu=%.6f user=%.6f sys=%.6f", per * B.conc * pipe,
                      elapsed, used, u1 - u0, s1 - s0))
