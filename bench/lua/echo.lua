-- echo: BENCH.conc light threads, each with its own connection, send SIZE bytes and
-- receive(SIZE), BENCH.ops round trips in all.
local common = require "common"
local B = BENCH
local msg = string.rep("x", B.size)
local elapsed, cpu = common.run(B.conc, B.ops, function()
    local s = ngx.socket.tcp()
    s:settimeout(10000)
    assert(s:connect("127.0.0.1", B.port))
    s:setoption("tcp-nodelay", true)
    return s
end, function(s)
    local ok, err = s:send(msg)
    if not ok then return nil, err end
    return s:receive(B.size)
end)
common.report(B.ops, elapsed, cpu)
