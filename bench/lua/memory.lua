-- memory: RSS growth per light thread, BENCH.count of them, parked in ngx.sleep.
--   BENCH.mode "idle":       each thread only sleeps (the cost of an idle light thread)
--   BENCH.mode "connection": each thread first opens a connection to the redis server at
--                            BENCH.port and does one PING round trip (the cost of a thread
--                            holding an open connection)
-- Prints "count=N bytes_per=B".
local common = require "common"
local B = BENCH

local function idle()
    ngx.sleep(2)
end

local function connection()
    local s = ngx.socket.tcp()
    s:settimeout(10000)
    assert(s:connect("127.0.0.1", B.port))
    assert(s:send("PING\r\n"))
    assert(s:receive() == "+PONG")
    ngx.sleep(2)
    s:close()
end

local body = assert(({ idle = idle, connection = connection })[B.mode], "BENCH.mode: idle | connection")
collectgarbage()
local before = common.rss_kb()
local threads = {}
for i = 1, B.count do threads[i] = ngx.thread.spawn(body) end
ngx.sleep(1)  -- all connected and parked
collectgarbage()
local after = common.rss_kb()
for i = 1, B.count do ngx.thread.kill(threads[i]) end
ngx.say("count=", B.count, " bytes_per=", string.format("%.0f", (after - before) * 1024 / B.count))
