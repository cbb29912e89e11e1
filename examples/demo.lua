-- examples/demo.lua: the cosocket runtime against real servers.
--
-- Run by scripts/demo, which starts redis, memcached, a Knot DNS server, MariaDB and
-- beanstalkd on loopback and sets COSOCKET_REDIS / _MEMCACHED / _DNS / _MARIADB /
-- _BEANSTALKD to "host:port". First it speaks redis and memcached by hand on raw cosockets
-- (light threads, a keepalive pool, receiveuntil, a timer, a semaphore), then through the
-- bundled drivers (resty.redis, resty.memcached, resty.dns.resolver, resty.mysql,
-- resty.beanstalkd) -- the same code runs under OpenResty -- and last it serves: a
-- websocket server on cosocket.listen, talked to by resty.websocket.client.
local ngx = ngx
local tcp, spawn, wait = ngx.socket.tcp, ngx.thread.spawn, ngx.thread.wait
local concat, insert = table.concat, table.insert

local function addr(var)
    local v = os.getenv(var)
    if not v then
        error(var .. " is not set: run this through scripts/demo (or scripts/services run ...)", 0)
    end
    local host, port = v:match("^(.*):(%d+)$")
    return host, tonumber(port)
end

local REDIS_HOST, REDIS_PORT = addr("COSOCKET_REDIS")
local MC_HOST, MC_PORT = addr("COSOCKET_MEMCACHED")
local DNS_HOST, DNS_PORT = addr("COSOCKET_DNS")
local MY_HOST, MY_PORT = addr("COSOCKET_MARIADB")
local BS_HOST, BS_PORT = addr("COSOCKET_BEANSTALKD")

-- a tiny RESP client: one request, one reply
local function redis(sock, ...)
    local args = { ... }
    local req = { "*", #args, "\r\n" }
    for _, a in ipairs(args) do
        a = tostring(a)
        insert(req, "$")
        insert(req, #a)
        insert(req, "\r\n")
        insert(req, a)
        insert(req, "\r\n")
    end
    local ok, err = sock:send(req)  -- one writev, no concatenation
    if not ok then return nil, err end
    local line, rerr = sock:receive()
    if not line then return nil, rerr end
    local kind, rest = line:sub(1, 1), line:sub(2)
    if kind == "+" or kind == ":" then return rest end
    if kind == "-" then return false, rest end
    if kind == "$" then
        local n = tonumber(rest)
        if n < 0 then return ngx.null end
        local data, derr = sock:receive(n + 2)
        if not data then return nil, derr end
        return data:sub(1, n)
    end
    return nil, "unexpected reply: " .. line
end

local function redis_conn()
    local sock = tcp()
    sock:settimeout(2000)
    local ok, err = sock:connect(REDIS_HOST, REDIS_PORT, { pool = "demo-redis" })
    if not ok then error("redis connect: " .. err) end
    return sock
end

ngx.say("cosocket demo -- redis at ", REDIS_HOST, ":", REDIS_PORT,
        ", memcached at ", MC_HOST, ":", MC_PORT)

-- 1. redis: a round trip, then 50 light threads each with its own connection
local sock = redis_conn()
assert(redis(sock, "SET", "demo:greeting", "hello from a cosocket") == "OK")
ngx.say("redis GET -> ", redis(sock, "GET", "demo:greeting"))
sock:setkeepalive()

local t0 = ngx.now()
local threads = {}
for i = 1, 50 do
    threads[i] = spawn(function()
        local s = redis_conn()
        for j = 1, 20 do
            assert(redis(s, "INCR", "demo:counter"))
        end
        s:setkeepalive(10000, 50)
        return i
    end)
end
for i = 1, #threads do
    assert(wait(threads[i]) == true)
end
ngx.update_time()
sock = redis_conn()
ngx.say("50 light threads x 20 INCR -> demo:counter = ", redis(sock, "GET", "demo:counter"),
        string.format(" (%.0f ms)", (ngx.now() - t0) * 1000))
ngx.say("pooled connection reused ", sock:getreusedtimes(), " time(s)")
redis(sock, "DEL", "demo:counter", "demo:greeting")
sock:setkeepalive()

-- 2. memcached text protocol: storage + a multi-get read with receiveuntil
local mc = tcp()
mc:settimeout(2000)
assert(mc:connect(MC_HOST, MC_PORT))
for i = 1, 3 do
    local v = "value-" .. i
    mc:send({ "set demo:k", i, " 0 60 ", #v, "\r\n", v, "\r\n" })
    assert(mc:receive() == "STORED")
end
mc:send("get demo:k1 demo:k2 demo:k3\r\n")
local until_end = mc:receiveuntil("END\r\n")
local body = assert(until_end())
local got = {}
for key, val in body:gmatch("VALUE (%S+) %d+ %d+\r\n([^\r]*)\r\n") do
    insert(got, key .. "=" .. val)
end
ngx.say("memcached multi-get -> ", concat(got, ", "))
mc:send("delete demo:k1\r\ndelete demo:k2\r\ndelete demo:k3\r\n")
for _ = 1, 3 do mc:receive() end
mc:setkeepalive()

-- 3. a timer and a semaphore: the timer posts, the entry thread waits
local semaphore = require "ngx.semaphore"
local sema = semaphore.new()
ngx.timer.at(0.05, function(premature, who)
    ngx.say("timer fired (premature=", tostring(premature), ") for ", who)
    sema:post(1)
end, "the demo")
local ok, err = sema:wait(2)
ngx.say("semaphore wait -> ", tostring(ok), err and (" " .. err) or "")

-- 4. errors come back as nil, err
local bad = tcp()
bad:settimeout(500)
local _, cerr = bad:connect("127.0.0.1", 1)
ngx.say("connect to a closed port -> nil, \"", cerr, "\"")

-- 5. the same servers through the bundled drivers
local redis = require "resty.redis"
local red = redis:new()
red:set_timeouts(1000, 1000, 1000)
assert(red:connect(REDIS_HOST, REDIS_PORT))
red:init_pipeline()
red:set("demo:p", 41)
red:incr("demo:p")
red:get("demo:p")
red:del("demo:p")
local res = assert(red:commit_pipeline())
ngx.say("resty.redis pipeline -> ", res[1], ", ", res[2], ", ", res[3], ", ", res[4])
red:set("demo:s", "x")
local ok2, werr = red:hget("demo:s", "x")
ngx.say("resty.redis server error -> ", tostring(ok2), ", \"", tostring(werr), "\"")
red:del("demo:s")
red:set_keepalive(10000, 10)

local memcached = require "resty.memcached"
local memc = memcached:new()
memc:set_timeout(1000)
assert(memc:connect(MC_HOST, MC_PORT))
assert(memc:set("demo:m", "hello, memcached", 60))
local mval = memc:get("demo:m")
ngx.say("resty.memcached get -> ", mval)
memc:delete("demo:m")
memc:set_keepalive(10000, 10)

local resolver = require "resty.dns.resolver"
local r = assert(resolver:new{ nameservers = { { DNS_HOST, DNS_PORT } }, timeout = 1000 })
local answers = assert(r:query("www.cosocket.test", { qtype = r.TYPE_A }))
local addrs = {}
for _, ans in ipairs(answers) do
    if ans.address then insert(addrs, ans.address) end
end
table.sort(addrs)
ngx.say("resty.dns.resolver www.cosocket.test A -> ", concat(addrs, ", "))

local mysql = require "resty.mysql"
local db = assert(mysql:new())
db:set_timeout(5000)
assert(db:connect{ host = MY_HOST, port = MY_PORT, user = "native", password = "nativepw",
                   database = "testdb" })
local rows = assert(db:query("select 6 * 7 answer, version() v"))
ngx.say("resty.mysql query -> answer=", rows[1].answer, " (", rows[1].v:match("^[%d.]+"), ")")
local sum = assert(db:query_params("select ? + ? s, ? t", 40, 2, "it's safe"))
ngx.say("resty.mysql prepared -> ", sum[1].s, ", ", sum[1].t)
db:set_keepalive(10000, 10)

local beanstalkd = require "resty.beanstalkd"
local bs = beanstalkd:new()
bs:set_timeout(5000)
assert(bs:connect(BS_HOST, BS_PORT, { use = "demo", watch = { "demo" } }))
local jid = assert(bs:put("send the report"))
local rid, job = bs:reserve(1)
ngx.say("resty.beanstalkd put/reserve -> ", tostring(rid == jid), ", ", tostring(job))
bs:delete(rid)
bs:close()

-- 6. serving: a websocket server written in Lua, and the client driver talking to it
local cosocket = require "cosocket"
local wserver = require "resty.websocket.server"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    local ws = assert(wserver:new{ sock = sock, timeout = 2000 })
    while true do
        local data, typ = ws:recv_frame()
        if not data or typ == "close" then break end
        if typ == "text" then ws:send_text(data:upper()) end
    end
    ws:send_close()
end })
local wclient = require "resty.websocket.client"
local wc = wclient:new{ timeout = 2000 }
assert(wc:connect("ws://127.0.0.1:" .. srv:port() .. "/echo"))
wc:send_text("hello from the client")
local echoed = wc:recv_frame()
ngx.say("websocket via cosocket.listen -> ", echoed)
wc:close()
srv:close()

ngx.say("demo done")
