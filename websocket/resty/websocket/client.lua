-- resty.websocket.client for cosocket: a drop-in for lua-resty-websocket's client (same names,
-- arguments and return values), which also verifies Sec-WebSocket-Accept and the negotiated
-- sub-protocol, and can negotiate permessage-deflate (RFC 7692; connect opt `compression`).
-- Written for this project; see websocket/README.md.

local protocol = require "resty.websocket.protocol"
local driver = require "resty.cosocket.driver"
local p16be = require("resty.cosocket.bytes").p16be

local ngx = ngx
local tcp = ngx.socket.tcp
local encode_base64, sha1_bin = ngx.encode_base64, ngx.sha1_bin
local char, sub, find, match, gmatch, lower =
    string.char, string.sub, string.find, string.match, string.gmatch, string.lower
local random = math.random
local type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error =
    type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error
local concat = table.concat
local recv_frame, send_frame, valid_utf8 =
    protocol.recv_frame, protocol.send_frame, protocol.valid_utf8

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local DEFAULT_MAX_PAYLOAD_LEN = 65535

local deflate_mod     -- resty.websocket.deflate, loaded on first use (it loads zlib)

function _M.new(self, opts)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    local max_payload_len, send_unmasked, timeout, max_recv_len, max_send_len, max_message_len
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #1 opts: nil or table expected, got " .. type(opts), 2)
        end
        max_payload_len = opts.max_payload_len
        max_recv_len = opts.max_recv_len
        max_send_len = opts.max_send_len
        max_message_len = opts.max_message_len
        send_unmasked = opts.send_unmasked
        timeout = opts.timeout
        if timeout then
            sock:settimeout(timeout)
        end
    end
    max_payload_len = max_payload_len or DEFAULT_MAX_PAYLOAD_LEN
    return setmetatable({
        sock = sock,
        max_recv_len = max_recv_len or max_payload_len,
        max_send_len = max_send_len or max_payload_len,
        max_message_len = max_message_len or max_recv_len or max_payload_len,
        send_unmasked = send_unmasked,
    }, mt)
end

function _M.set_timeout(self, time)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:settimeout(time)
end

-- "k=v" and bare "k" parameters of one Sec-WebSocket-Extensions element
local function parse_extension(s)
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

-- the permessage-deflate offer for the request, from connect's `compression` option
local function deflate_offer(c)
    local parts = { "permessage-deflate" }
    if c.client_no_context_takeover then
        parts[#parts + 1] = "client_no_context_takeover"
    end
    if c.server_no_context_takeover then
        parts[#parts + 1] = "server_no_context_takeover"
    end
    if c.server_max_window_bits then
        parts[#parts + 1] = "server_max_window_bits=" .. c.server_max_window_bits
    end
    if c.client_max_window_bits then
        parts[#parts + 1] = "client_max_window_bits=" .. c.client_max_window_bits
    else
        parts[#parts + 1] = "client_max_window_bits"
    end
    return concat(parts, "; ")
end

-- checks the server's permessage-deflate answer against our offer; returns the settings
local function deflate_accept(c, params)
    local got = {}
    for _, p in ipairs(params) do
        local k, v = p[1], p[2]
        if got[k] ~= nil then
            return nil, "duplicate permessage-deflate parameter " .. k
        end
        if k == "server_no_context_takeover" or k == "client_no_context_takeover" then
            if v ~= true then
                return nil, "bad permessage-deflate parameter " .. k
            end
        elseif k == "server_max_window_bits" or k == "client_max_window_bits" then
            v = tonumber(v)
            if not v or v < 8 or v > 15 or v % 1 ~= 0 then
                return nil, "bad permessage-deflate parameter " .. k
            end
        else
            return nil, "unknown permessage-deflate parameter " .. k
        end
        got[k] = v
    end
    if c.server_no_context_takeover and not got.server_no_context_takeover then
        return nil, "server ignored server_no_context_takeover"
    end
    if c.server_max_window_bits and
       (not got.server_max_window_bits or got.server_max_window_bits > c.server_max_window_bits) then
        return nil, "server ignored server_max_window_bits"
    end
    local client_bits = got.client_max_window_bits or 15
    if c.client_max_window_bits and client_bits > c.client_max_window_bits then
        client_bits = c.client_max_window_bits
    end
    if client_bits < 9 then
        -- zlib cannot deflate with a 256-byte window (it silently uses 512)
        return nil, "client_max_window_bits=8 is not supported"
    end
    return {
        server_no_context_takeover = got.server_no_context_takeover or false,
        client_no_context_takeover = (got.client_no_context_takeover or
                                      c.client_no_context_takeover) and true or false,
        server_max_window_bits = got.server_max_window_bits or 15,
        client_max_window_bits = client_bits,
    }
end

-- reads and checks the handshake response; returns the header block (status line included)
local function read_response(self, sock, key, protos, compression)
    local read = driver.line_reader(sock, 64 * 1024, "\r\n\r\n")
    local header, err, too_long = read()
    if not header then
        return driver.fail("receive response header", too_long and "too long" or err)
    end

    local status = match(header, "^HTTP/1%.1 (%d%d%d)")
    if status ~= "101" then
        return nil, "bad HTTP response status line: " .. (match(header, "^[^\r\n]*") or "")
    end

    local fields = {}
    for line in gmatch(header, "\r\n([^\r\n]*)") do
        local name, value = match(line, "^([^:]+):%s*(.-)%s*$")
        if name then
            name = lower(name)
            if fields[name] then
                fields[name] = fields[name] .. ", " .. value
            else
                fields[name] = value
            end
        end
    end

    if lower(fields.upgrade or "") ~= "websocket" then
        return nil, "bad \"upgrade\" response header: " .. tostring(fields.upgrade)
    end
    local conn_ok = false
    for tok in gmatch(fields.connection or "", "[^,%s]+") do
        if lower(tok) == "upgrade" then conn_ok = true end
    end
    if not conn_ok then
        return nil, "bad \"connection\" response header: " .. tostring(fields.connection)
    end
    local expected = encode_base64(sha1_bin(key .. GUID))
    if fields["sec-websocket-accept"] ~= expected then
        return nil, "bad \"sec-websocket-accept\" response header: "
                    .. tostring(fields["sec-websocket-accept"])
    end

    local proto = fields["sec-websocket-protocol"]
    if proto then
        local offered = false
        for _, p in ipairs(protos or {}) do
            if p == proto then offered = true end
        end
        if not offered then
            return nil, "bad \"sec-websocket-protocol\" response header: "
                        .. proto .. " was not offered"
        end
        self.protocol = proto
    end

    local ext = fields["sec-websocket-extensions"]
    if ext then
        local n = 0
        for elem in gmatch(ext, "[^,]+") do
            n = n + 1
            local name, params = parse_extension(elem)
            if name ~= "permessage-deflate" or not compression or n > 1 then
                return nil, "bad \"sec-websocket-extensions\" response header: "
                            .. ext .. " was not offered"
            end
            local settings
            settings, err = deflate_accept(compression, params)
            if not settings then
                return nil, "bad \"sec-websocket-extensions\" response header: " .. err
            end
            local d
            d, err = deflate_mod.new(settings, compression.max_inflated_len or self.max_recv_len)
            if not d then
                return nil, err
            end
            self.deflate = d
        end
    end
    return header
end

-- connect(uri, opts) -> 1, nil, response_header | nil, err
function _M.connect(self, uri, opts)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if type(uri) ~= "string" then
        error("bad argument #1 uri: string expected, got " .. type(uri), 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #2 opts: nil or table expected, got " .. type(opts), 2)
    end

    local scheme, rest = match(uri, "^(wss?)://(.*)$")
    if not scheme then
        return nil, "bad websocket uri: " .. uri
    end
    if scheme == "wss" then
        return nil, "ssl not supported yet"
    end

    local host, port, path, unix_path
    if sub(rest, 1, 5) == "unix:" then
        unix_path, path = match(rest, "^unix:([^:]+):?(.*)$")
        if not unix_path then
            return nil, "bad websocket uri: " .. uri
        end
        host = "localhost"
    else
        host, port, path = match(rest, "^([^:/%[]+):?(%d*)(.*)$")
        if not host then
            host, port, path = match(rest, "^(%[[^%]]+%]):?(%d*)(.*)$")
        end
        if not host then
            return nil, "bad websocket uri: " .. uri
        end
        port = port ~= "" and tonumber(port) or 80
    end
    if path == "" then
        path = "/"
    elseif sub(path, 1, 1) ~= "/" then
        return nil, "bad websocket uri: " .. uri
    end

    local protos, origin, headers, host_hdr, key, compression
    local sock_opts
    if opts then
        protos = opts.protocols
        if type(protos) == "string" then
            protos = { protos }
        end
        origin = opts.origin
        headers = opts.headers
        host_hdr = opts.host
        key = opts.key
        compression = opts.compression
        if compression == true then
            compression = {}
        elseif compression ~= nil and compression ~= false and type(compression) ~= "table" then
            error("bad argument #2 opts.compression: boolean or table expected", 2)
        end
        if opts.pool or opts.pool_size or opts.backlog then
            sock_opts = { pool = opts.pool, pool_size = opts.pool_size, backlog = opts.backlog }
        end
    end
    if compression and not deflate_mod then
        local ok, mod = pcall(require, "resty.websocket.deflate")
        if not ok then
            return nil, "permessage-deflate unavailable: " .. tostring(mod)
        end
        deflate_mod = mod
    end

    local ok, err
    if unix_path then
        ok, err = sock:connect("unix:" .. unix_path, sock_opts)
    else
        ok, err = sock:connect(host, port, sock_opts)
    end
    if not ok then
        return driver.fail("connect", err)
    end

    self.fatal, self.closed, self.deflate, self.protocol = nil, nil, nil, nil
    if sock:getreusedtimes() > 0 then
        -- an upgraded connection from the pool: its handshake is done (as lua-resty-websocket)
        return 1
    end

    if not key then
        local b = {}
        for i = 1, 16 do b[i] = char(random(0, 255)) end
        key = encode_base64(concat(b))
    end
    if not host_hdr then
        host_hdr = host
        if port and port ~= 80 then
            host_hdr = host .. ":" .. port
        end
    end

    local req = { "GET ", path, " HTTP/1.1\r\nUpgrade: websocket\r\nHost: ", host_hdr,
                  "\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
                  "\r\nSec-WebSocket-Version: 13\r\n" }
    if protos then
        req[#req + 1] = "Sec-WebSocket-Protocol: " .. concat(protos, ", ") .. "\r\n"
    end
    if origin then
        req[#req + 1] = "Origin: " .. origin .. "\r\n"
    end
    if compression then
        req[#req + 1] = "Sec-WebSocket-Extensions: " .. deflate_offer(compression) .. "\r\n"
    end
    if headers then
        for _, h in ipairs(headers) do
            req[#req + 1] = h .. "\r\n"
        end
        for k, v in pairs(headers) do
            if type(k) == "string" then
                req[#req + 1] = k .. ": " .. tostring(v) .. "\r\n"
            end
        end
    end
    req[#req + 1] = "\r\n"

    local bytes
    bytes, err = sock:send(concat(req))
    if not bytes then
        sock:close()
        return driver.fail("send the handshake request", err)
    end

    local header
    header, err = read_response(self, sock, key, protos, compression)
    if not header then
        self.fatal = true
        sock:close()
        return nil, err
    end
    return 1, nil, header
end

function _M.set_keepalive(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if self.fatal then
        return driver.fail("set keepalive", "fatal error already happened")
    end
    if self.closed then
        return driver.fail("set keepalive", "close frame already sent")
    end
    if self.deflate then
        -- the zlib streams cannot travel with the pooled socket
        return driver.fail("set keepalive", "permessage-deflate in use")
    end
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    return driver.get_reused_times(rawget(self, "sock"))
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
        send_frame(sock, true, 0x8, p16be(code), nil,
                   not self.send_unmasked)
    end
    sock:close()
    return nil, nil, err
end

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
    local data, typ, err, rsv1 = recv_frame(sock, self.max_recv_len, false, d ~= nil, true)
    if not data then
        if find(err, ": timeout", 1, true) then
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
                                  self.max_send_len, not self.send_unmasked, rsv1)
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

function _M.close(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
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
    return sock:close()
end

return _M
