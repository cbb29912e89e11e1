-- bench/dns/bench.lua MODE THREADS SECONDS HOST PORT
--   MODE uncached: resty.dns.resolver:query("www.cosocket.test") per op (a UDP round trip,
--                  fresh socket and random id each time)
--   MODE cached:   resty.dns.client:resolve("www.cosocket.test", {qtype = A}), a cache hit
-- Prints "ops=N secs=S cpu=C" (cpu = this process's user+system seconds, os.clock()).
local mode, nthreads, secs, host, port = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4],
                                         tonumber(arg[5])
local resolver = require "resty.dns.resolver"
local client = require "resty.dns.client"

local op
if mode == "uncached" then
    local r = assert(resolver:new{nameservers = {{host, port}}, retrans = 1, timeout = 2000})
    op = function()
        local ans, err = r:query("www.cosocket.test")
        if not ans or #ans ~= 2 then error("query failed: " .. tostring(err)) end
    end
elseif mode == "cached" then
    local c = assert(client.new{resolv_conf = false, hosts = false,
                                nameservers = {{host, port}}})
    assert(c:resolve("www.cosocket.test", {qtype = 1}))
    op = function()
        local recs = c:resolve("www.cosocket.test", {qtype = 1})
        if not recs then error("resolve failed") end
    end
else
    error("mode: uncached | cached")
end

-- uncached: every op yields on its socket, so a timer (ngx.sleep in the main thread) ends
-- the run. cached: a hit never yields, so each thread does a fixed count instead (no
-- ngx.sleep(0) spin: it would starve the timer, see bench/dns/README.md).
local done, stop = 0, false
local CACHED_OPS = 4000000
local function worker()
    if mode == "cached" then
        local n = math.floor(CACHED_OPS / nthreads)
        for _ = 1, n do op() end
        done = done + n
        return
    end
    while not stop do
        for _ = 1, 10 do op() end
        done = done + 10
    end
end

ngx.update_time()
local t0, c0 = ngx.now(), os.clock()
local threads = {}
for i = 1, nthreads do threads[i] = ngx.thread.spawn(worker) end
if mode ~= "cached" then
    ngx.sleep(secs)
    stop = true
end
for i = 1, nthreads do ngx.thread.wait(threads[i]) end
ngx.update_time()
print(string.format("ops=%d secs=%.4f cpu=%.4f", done, ngx.now() - t0, os.clock() - c0))
