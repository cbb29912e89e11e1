-- connections: RSS growth per open connection held by a parked light thread.
local common = require "common"
local B = BENCH
collectgarbage()
local before = common.rss_kb()
local threads = {}
for i = 1, B.count do
    threads[i] = ngx.thread.spawn(function()
        local s = ngx.socket.tcp()
        s:settimeout(10000)
        assert(s:connect("127.0.0.1", B.port))
        assert(s:send("x"))
        assert(s:receive(1))
        ngx.sleep(1)
        s:close()
    end)
end
ngx.sleep(0.5)
collectgarbage()
local after = common.rss_kb()
for i = 1, B.count do ngx.thread.kill(threads[i]) end
ngx.say("count=", B.count, " bytes_per=", string.format("%.0f", (after - before) * 1024 / B.count))
