-- resty.websocket.client scenarios for tests/fuzz (see fuzz_run.lua for the contract),
-- against tests/helpers/ws_echo.py. The handshake key is fixed, so the recorded
-- Sec-WebSocket-Accept matches a replay; frame masks stay random (the fake server unmasks).
local client = require "resty.websocket.client"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "text", "binary" } }
local KEY = "Y29zb2NrZXQtZnV6ei0xNg=="

function _M.open(host, port, t)
    local ws, err = client:new({ timeout = t, max_payload_len = 65536 })
    if not ws then
        return nil, err
    end
    local ok
    ok, err = ws:connect("ws://" .. host .. ":" .. port .. "/", { key = KEY })
    if not ok then
        return nil, err, ws
    end
    return ws
end

local function start(host, port, t)
    local ws, err, half = _M.open(host, port, t)
    return ws or half, err
end

function _M.keepalive(ws) return ws:set_keepalive(10000, 4) end
function _M.reused(ws) return ws:get_reused_times() end
function _M.close(ws)
    local sock = rawget(ws, "sock")
    return sock and sock:close()
end

-- a late echo of an earlier message may come first on a reused connection (websocket is not
-- request/response): skip up to 3 whole frames, anything else is a wrong stream position
function _M.sentinel(ws)
    local ok, err = ws:send_text("sentinel")
    if not ok then
        return nil, err
    end
    local seen = {}
    for _ = 1, 4 do
        local data, typ
        data, typ, err = ws:recv_frame()
        if not data then
            return nil, err
        end
        if typ == "text" and data == "sentinel" then
            return S({ typ, data })
        end
        seen[#seen + 1] = typ
    end
    return nil, "no sentinel echo after " .. table.concat(seen, ",")
end

local function exchange(send, payload)
    return function(host, port, t)
        local ws, err = start(host, port, t)
        if err then return ws, nil, err end
        local ok
        ok, err = ws[send](ws, payload)
        if not ok then return ws, nil, err end
        local data, typ
        data, typ, err = ws:recv_frame()
        if not data then return ws, nil, err end
        return ws, S({ typ, #data, data == payload and "same" or data, err })
    end
end

local bin = {}
for i = 0, 299 do bin[#bin + 1] = string.char((i * 7) % 256) end

_M.scenarios.text = exchange("send_text", "hello fuzz")
_M.scenarios.binary = exchange("send_binary", table.concat(bin))
_M.scenarios.ping = exchange("send_ping", "p1")
_M.scenarios.close = function(host, port, t)
    local ws, err = start(host, port, t)
    if err then return ws, nil, err end
    local ok
    ok, err = ws:send_close(1000, "bye")
    if not ok then return ws, nil, err end
    local data, typ
    data, typ, err = ws:recv_frame()
    if not data then return ws, nil, err end
    return ws, S({ typ, data, err })
end
_M.scenarios.sentinel = function(host, port, t)
    local ws, err = start(host, port, t)
    if err then return ws, nil, err end
    return ws, _M.sentinel(ws)
end

return _M
