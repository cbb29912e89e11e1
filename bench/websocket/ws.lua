-- bench/websocket/ws.lua: echo round trips through resty.websocket.client from `conc` light
-- threads, each with its own connection, `ops` messages of `size` bytes in all (binary).
-- Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come from the global BENCH
-- table; the result is one line "ops=N elapsed=S cpu=S".
local client = require "resty.websocket.client"
local B = BENCH

local common = require "common"  -- bench/lua/common.lua: cpu() and now() for both runtimes
local cpu, now = common.cpu, common.now

local msg = string.rep("m", B.size)
local conns = {}
for t = 1, B.conc do
    local ws = assert(client:new{ timeout = 10000, max_payload_len = B.size + 1 })
    assert(ws:connect(B.url))
    conns[t] = ws
end

local per = math.floor(B.ops / B.conc)
local function worker(ws)
    for _ = 1, per do
        assert(ws:send_binary(msg))
        local data, typ, err = ws:recv_frame()
        if not data or #data ~= B.size then
            error("bad echo: " .. tostring(typ) .. " " .. tostring(err))
        end
    end
end

local c0, t0 = cpu(), now()
local threads = {}
for t = 1, B.conc do threads[t] = ngx.thread.spawn(worker, conns[t]) end
for t = 1, B.conc do assert(ngx.thread.wait(threads[t])) end
local elapsed, used = now() - t0, cpu() - c0
for t = 1, B.conc do conns[t]:close() end
ngx.say(string.format("ops=%d elapsed=%.6f cpu=%.3f", per * B.conc, elapsed, used))
