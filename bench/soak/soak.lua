-- bench/soak/soak.lua MINUTES [RATE]: mixed load on every driver for MINUTES minutes, with
-- periodic faults, printing one CSV line a minute: what the process holds (descriptors,
-- RSS, Lua memory, live timers) and what it did (operations, errors by kind). Run through
-- bench/soak/run, which starts the real servers. RATE: operations per second per worker
-- thread (default 200), so the run loads the machine moderately for an hour.
local redis = require "resty.redis"
local memcached = require "resty.memcached"
local mysql = require "resty.mysql"
local resolver = require "resty.dns.resolver"
local beanstalkd = require "resty.beanstalkd"

local minutes = tonumber(arg[1]) or 60
local rate = tonumber(arg[2]) or 200

local function addr(var)
    local v = assert(os.getenv(var), var .. " is not set: run bench/soak/run")
    local host, port = v:match("^(.*):(%d+)$")
    return host, tonumber(port)
end
local RH, RP = addr("COSOCKET_REDIS")
local MH, MP = addr("COSOCKET_MEMCACHED")
local YH, YP = addr("COSOCKET_MARIADB")
local DH, DP = addr("COSOCKET_DNS")
local BH, BP = addr("COSOCKET_BEANSTALKD")

local ops, errors = 0, {}
local function fail(kind, err)
    local k = kind .. ": " .. tostring(err)
    errors[k] = (errors[k] or 0) + 1
end

local work = {}

function work.redis(i)
    local r = redis:new()
    r:set_timeout(1000)
    local ok, err = r:connect(RH, RP)
    if not ok then return fail("redis connect", err) end
    local key = "soak:" .. (i % 50)
    ok, err = r:set(key, string.rep("v", i % 300))
    if not ok then return fail("redis set", err) end
    local v
    v, err = r:get(key)
    if not v then return fail("redis get", err) end
    r:init_pipeline()
    for j = 1, 5 do r:incr("soak:n" .. j) end
    local res
    res, err = r:commit_pipeline()
    if not res then return fail("redis pipeline", err) end
    r:set_keepalive(10000, 20)
    ops = ops + 8
end

function work.memcached(i)
    local m = memcached:new()
    m:set_timeout(1000)
    local ok, err = m:connect(MH, MP)
    if not ok then return fail("memcached connect", err) end
    ok, err = m:set("soak" .. (i % 50), string.rep("m", i % 500), 60)
    if not ok then return fail("memcached set", err) end
    local v, _
    v, _, err = m:get("soak" .. (i % 50))
    if err then return fail("memcached get", err) end
    m:set_keepalive(10000, 20)
    ops = ops + 2
end

function work.mysql(i)
    local db = mysql:new()
    db:set_timeout(2000)
    local ok, err = db:connect{ host = YH, port = YP, user = "native", password = "nativepw",
                                database = "testdb", pool = "soak" }
    if not ok then return fail("mysql connect", err) end
    local rows
    rows, err = db:query("SELECT " .. i .. " AS n, REPEAT('x', " .. (i % 200) .. ") AS s")
    if not rows then return fail("mysql query", err) end
    db:set_keepalive(10000, 10)
    ops = ops + 1
end

function work.dns(i)
    local r, err = resolver:new{ nameservers = { { DH, DP } }, retrans = 2, timeout = 1000 }
    if not r then return fail("dns new", err) end
    local answers
    answers, err = r:query(i % 2 == 0 and "www.cosocket.test" or "cosocket.test",
                           { qtype = i % 3 == 0 and r.TYPE_AAAA or r.TYPE_A })
    if not answers then return fail("dns query", err) end
    ops = ops + 1
end

function work.beanstalkd(i)
    local b = beanstalkd:new()
    b:set_timeout(1000)
    local ok, err = b:connect(BH, BP, { use = "soak", watch = { "soak" } })
    if not ok then return fail("beanstalkd connect", err) end
    local id
    id, err = b:put("job " .. i)
    if not id then return fail("beanstalkd put", err) end
    local job
    job, err = b:reserve(1)
    if not job then return fail("beanstalkd reserve", err) end
    ok, err = b:delete(job)
    if not ok then return fail("beanstalkd delete", err) end
    b:set_keepalive(10000, 10)
    ops = ops + 3
end

-- the faults, every 20 s in turn: the servers drop every client connection (the pools then
-- hold dead ones), a burst of short-lived timers, a burst of killed light threads
local nfaults, killed = 0, 0
local faults = {
    function()
        local r = redis:new()
        r:set_timeout(1000)
        if r:connect(RH, RP, { pool = "soak-fault" }) then
            local n = r:client("kill", "type", "normal", "skipme", "yes")
            killed = killed + (tonumber(n) or 0)
            r:close()
        end
    end,
    function()
        local db = mysql:new()
        db:set_timeout(2000)
        if db:connect{ host = YH, port = YP, user = "native", password = "nativepw", database = "testdb" } then
            local rows = db:query("SELECT id AS id FROM information_schema.processlist WHERE user = 'native' AND id <> CONNECTION_ID()")
            for _, row in ipairs(rows or {}) do
                if db:query("KILL " .. row.id) then killed = killed + 1 end
            end
            db:close()
        end
    end,
    function()
        for j = 1, 200 do ngx.timer.at(0, function() work.redis(j) end) end
    end,
    function()
        for j = 1, 50 do
            local t = ngx.thread.spawn(function()
                local s = ngx.socket.tcp()
                s:connect(RH, RP)
                s:receive()  -- nothing comes: killed below
            end)
            ngx.sleep(0)
            ngx.thread.kill(t)
        end
    end,
}

local stop_at = ngx.now() + minutes * 60
local function loop(name)
    local i, pause = 0, 1 / rate
    while ngx.now() < stop_at do
        i = i + 1
        local ok, err = pcall(work[name], i)
        if not ok then fail(name .. " raised", err) end
        ngx.sleep(pause)
    end
end

local function nfds()
    local n = 0
    local f = io.popen("ls /proc/" .. ngx.worker.pid() .. "/fd")
    for _ in f:lines() do n = n + 1 end
    f:close()
    return n - 1
end
local function rss_kb()
    local f = io.open("/proc/self/statm")
    local pages = f:read("*n")
    pages = f:read("*n")
    f:close()
    return pages * 4
end

local threads = {}
for _, name in ipairs({ "redis", "redis", "memcached", "mysql", "dns", "beanstalkd" }) do
    threads[#threads + 1] = ngx.thread.spawn(loop, name)
end
threads[#threads + 1] = ngx.thread.spawn(function()
    local k = 0
    while ngx.now() + 20 < stop_at do
        ngx.sleep(20)
        k = k + 1
        local ok, err = pcall(faults[(k - 1) % #faults + 1])
        if not ok then fail("fault " .. k, err) end
        nfaults = nfaults + 1
    end
end)

io.write("minute,ops,errors,faults,killed_conns,fds,rss_kb,lua_kb,pending_timers,running_timers\n")
local minute = 0
while ngx.now() < stop_at do
    ngx.sleep(math.min(60, stop_at - ngx.now()))
    minute = minute + 1
    local nerr = 0
    for _, n in pairs(errors) do nerr = nerr + n end
    collectgarbage()
    io.write(string.format("%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", minute, ops, nerr, nfaults, killed, nfds(), rss_kb(),
                           math.floor(collectgarbage("count")), ngx.timer.pending_count(),
                           ngx.timer.running_count()))
    io.stdout:flush()
end
for _, t in ipairs(threads) do ngx.thread.wait(t) end
io.write("# errors by kind:\n")
for k, n in pairs(errors) do io.write("#   ", n, " x ", k, "\n") end
