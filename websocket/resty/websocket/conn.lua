-- resty.websocket.conn: the frame- and message-level methods that the client and the server
-- objects share (recv_frame, recv_message, send_*, close, set_timeout), with the sticky fatal
-- flag, the close-on-violation rules and permessage-deflate. Written for this project; see
-- websocket/README.md.
--
-- An object is a table with these fields:
--   sock             the cosocket
--   max_recv_len     the cap of a received frame's payload
--   max_send_len     the cap of a sent frame's payload
--   max_message_len  the cap of recv_message's joined message
--   mask_out         mask the frames we send (a client; a server only with send_masked)
--   server           frames from the peer must be masked (a server); else they must not be
--   deflate          the resty.websocket.deflate object when permessage-deflate is in use
--   fatal, closed    the sticky states (a failure; a close frame was sent)
--   peer_closed      a close frame was received

local protocol = require "resty.websocket.protocol"
local driver = require "resty.cosocket.driver"
local p16be = require("resty.cosocket.bytes").p16be

local find, match, gmatch, lower = string.find, string.match, string.gmatch, string.lower
local type, tostring, rawget, ipairs, pairs = type, tostring, rawget, ipairs, pairs
local concat = table.concat
local recv_frame, send_frame, valid_utf8 =
    protocol.recv_frame, protocol.send_frame, protocol.valid_utf8

local _M = { _VERSION = "0.1.0" }

-- parse_extension(s) -> name, params: one element of a Sec-WebSocket-Extensions header, its
-- name lower-cased and its parameters as { { "k", "v" }, { "bare", true } ... }
-- Appends "Name: value\r\n" lines to `out`: the array part of `headers` holds whole lines,
-- its string keys name/value pairs (the client's opts.headers, the server's
-- response_headers).
function _M.add_header_lines(out, headers)
    for _, line in ipairs(headers) do
        out[#out + 1] = line .. "\r\n"
    end
    for k, v in pairs(headers) do
        if type(k) == "string" then
            out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
        end
    end
end

function _M.parse_extension(s)
    local name
    local params = {}
    for item in gmatch(s, "[^;]+") do
        item = match(item, "^%s*(.-)%s*$")
        if not name then
            name = lower(item)
        else
            local k, v = match(item, "^([^=%s]+)%s*=%s*\"?([^\"]*)\"?$")
            if k then
                params[#params + 1] = { lower(k), v }
            else
                params[#params + 1] = { lower(item), true }
            end
        end
    end
    return name, params
end

function _M.set_timeout(self, time)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:settimeout(time)
end

-- a send failure or a receive failure other than a timeout leaves the stream unusable
local function fail(self, err)
    if err ~= "timeout" and not find(err, "timeout", 1, true) then
        self.fatal = true
        self.sock:close()
    end
end

-- a protocol violation by the peer: tell it why with a close frame (best effort), close the
-- socket, and refuse further use
local function violation(self, code, err)
    self.fatal = true
    local sock = self.sock
    if not self.closed then
        self.closed = true
        send_frame(sock, true, 0x8, p16be(code), nil, self.mask_out)
    end
    sock:close()
    return nil, nil, err
end
_M.violation = violation

-- close codes a peer may send (RFC 6455 7.4: 1004-1006 and 1015 never go on the wire)
local function valid_close_code(code)
    return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
           or (code >= 3000 and code <= 4999)
end

function _M.recv_frame(self)
    if self.fatal then
        return nil, nil, "fatal error already happened"
    end
    local sock = rawget(self, "sock")
    if not sock then
        return nil, nil, "not initialized"
    end
    local d = self.deflate
    local server = self.server and true or false
    local data, typ, err, rsv1 = recv_frame(sock, self.max_recv_len, server, d ~= nil,
                                            not server)
    if not data then
        -- a timeout before the frame's first byte may be waited out again; one inside a
        -- frame leaves the stream at an unknown place (the rest of the frame would be read
        -- as the next header): as any other receive failure, the connection is done
        if rsv1 == true and find(err, ": timeout", 1, true) then
            return nil, nil, err
        end
        if find(err, "failed to receive", 1, true) then
            self.fatal = true
            sock:close()
            return nil, nil, err
        end
        return violation(self, err == "exceeding max payload len" and 1009 or 1002, err)
    end
    if typ == "close" then
        if err and not valid_close_code(err) then
            return violation(self, 1002, "bad close code: " .. err)
        end
        if data ~= "" and not valid_utf8(data) then
            return violation(self, 1007, "bad close reason: invalid UTF-8")
        end
        self.peer_closed = true
    elseif d and typ ~= "ping" and typ ~= "pong" then
        local inflated, ierr = d:recv(data, typ, rsv1, err ~= "again")
        if not inflated then
            return violation(self, ierr == "inflated message too big" and 1009 or 1002, ierr)
        end
        data = inflated
    end
    return data, typ, err
end

local function send(self, fin, opcode, payload, compress)
    if self.fatal then
        return nil, "fatal error already happened"
    end
    if self.closed then
        return nil, "already closed"
    end
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if payload == nil then
        payload = ""
    elseif type(payload) ~= "string" then
        payload = tostring(payload)
    end
    local rsv1
    local d = self.deflate
    if compress and d then
        if #payload > self.max_send_len then
            return nil, "payload too big"
        end
        local err
        payload, err = d:compress(payload)
        if not payload then
            return nil, err
        end
        rsv1 = true
    end
    local bytes, err = send_frame(sock, fin, opcode, payload, rsv1 and #payload or
                                  self.max_send_len, self.mask_out, rsv1)
    if not bytes and err ~= "payload too big" and err ~= "too much payload for control frame"
       and err ~= "fragmented control frame" then
        fail(self, err)
    end
    return bytes, err
end

function _M.send_frame(self, fin, opcode, payload)
    return send(self, fin, opcode, payload, false)
end

function _M.send_text(self, data)
    return send(self, true, 0x1, data, true)
end

function _M.send_binary(self, data)
    return send(self, true, 0x2, data, true)
end

function _M.send_ping(self, data)
    return send(self, true, 0x9, data, false)
end

function _M.send_pong(self, data)
    return send(self, true, 0xa, data, false)
end

function _M.send_close(self, code, msg)
    local payload
    if code then
        if type(code) ~= "number" or code < 1000 or code > 4999 then
            return nil, "bad status code"
        end
        payload = p16be(code) .. (msg or "")
    end
    local bytes, err = send(self, true, 0x8, payload, false)
    if bytes then
        self.closed = true
    end
    return bytes, err
end

-- recv_message() -> data, typ, err: a whole message, its fragments joined ("text" validated
-- as UTF-8); pings are answered and pongs skipped on the way. A close frame gets a close frame
-- back (echoing its code) and is returned as data, "close", code.
function _M.recv_message(self)
    local parts, n, msg_typ, total = {}, 0, nil, 0
    while true do
        local data, typ, err = self:recv_frame()
        if not data then
            return nil, nil, err
        end
        if typ == "ping" then
            if not self.closed then
                local ok, serr = self:send_pong(data)
                if not ok then
                    return nil, nil, driver.failed_to("send pong", serr)
                end
            end
        elseif typ == "close" then
            if not self.closed then
                self:send_close(err)
            end
            return data, typ, err
        elseif typ ~= "pong" then
            if typ == "continuation" then
                if not msg_typ then
                    return violation(self, 1002, "unexpected continuation frame")
                end
            elseif msg_typ then
                return violation(self, 1002, "a new message inside a fragmented one")
            else
                msg_typ = typ
            end
            total = total + #data
            if total > self.max_message_len then
                return violation(self, 1009, "message too big")
            end
            n = n + 1
            parts[n] = data
            if err ~= "again" then
                local msg = n == 1 and parts[1] or concat(parts, "", 1, n)
                if msg_typ == "text" and not valid_utf8(msg) then
                    return violation(self, 1007, "invalid UTF-8 text")
                end
                return msg, msg_typ, nil
            end
        end
    end
end

-- Our side of the closing handshake: a close frame unless one was sent. true, or nil, err
-- with the socket closed (also after a fatal error).
function _M.send_close_once(self, sock)
    if self.fatal then
        sock:close()
        return nil, "fatal error already happened"
    end
    if not self.closed then
        local bytes, err = self:send_close()
        if not bytes then
            sock:close()
            return driver.fail("send close frame", err)
        end
    end
    self.closed = true
    return true
end

-- close(): a close frame (unless one was sent), then the socket is closed
function _M.close(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local ok, err = _M.send_close_once(self, sock)
    if not ok then
        return nil, err
    end
    return sock:close()
end

-- copies the shared methods into a module table
function _M.install(mod)
    for _, name in ipairs({ "set_timeout", "recv_frame", "send_frame", "send_text",
                            "send_binary", "send_ping", "send_pong", "send_close",
                            "recv_message", "close" }) do
        mod[name] = _M[name]
    end
    return mod
end

return _M
