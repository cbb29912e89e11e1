-- bench/websocket/ws_server.lua PORT: a websocket echo server on cosocket.listen and
-- resty.websocket.server (frame by frame, no compression), for bench/websocket/run's server
-- rows. Prints "ready" once listening.
local cosocket = require "cosocket"
local server = require "resty.websocket.server"

local srv = assert(cosocket.listen{ host = "127.0.0.1", port = tonumber(arg[1]), backlog = 1024,
    handler = function(sock)
        local ws = server:new{ sock = sock, timeout = 60000, max_payload_len = 1024 * 1024 }
        if not ws then
            return
        end
        while true do
            local data, typ = ws:recv_frame()
            if not data then
                return
            end
            if typ == "binary" then
                ws:send_binary(data)
            elseif typ == "text" then
                ws:send_text(data)
            elseif typ == "ping" then
                ws:send_pong(data)
            elseif typ == "close" then
                ws:send_close()
                return
            end
        end
    end })
assert(srv)
io.write("ready\n")
io.flush()
