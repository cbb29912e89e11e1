-- idle_threads: RSS growth per light thread parked in ngx.sleep (BENCH.count of them).
local common = require "common"
local B = BENCH
collectgarbage()
local before = common.rss_kb()
local threads = {}
for i = 1, B.count do
    threads[i] = ngx.thread.spawn(function() ngx.sleep(1) end)
end
ngx.sleep(0.2)  -- all parked
collectgarbage()
local after = common.rss_kb()
for i = 1, B.count do ngx.thread.kill(threads[i]) end
ngx.say("count=", B.count, " bytes_per=", string.format("%.0f", (after - before) * 1024 / B.count))
