-- resty.websocket.server for cosocket: the server side of RFC 6455 on an accepted socket
-- (cosocket.listen's handler). Unlike lua-resty-websocket's server, which takes the request
-- from nginx (ngx.req), this one reads and checks the HTTP/1.1 Upgrade request itself from
-- opts.sock, answers 101 (or an HTTP error), selects a sub-protocol and can negotiate
-- permessage-deflate (RFC 7692). The frame-level methods are resty.websocket.conn's, the same
-- as the client's. Written for this project; see websocket/README.md.

local conn = require "resty.websocket.conn"
local protocol = require "resty.websocket.protocol"
local driver = require "resty.cosocket.driver"

local ngx = ngx
local encode_base64, decode_base64, sha1_bin = ngx.encode_base64, ngx.decode_base64, ngx.sha1_bin
local now, update_time = ngx.now, ngx.update_time
local sub, find, match, gmatch, lower = string.sub, string.find, string.match, string.gmatch,
                                         string.lower
local type, tostring, tonumber, setmetatable, pairs, ipairs, error, pcall, require, floor =
    type, tostring, tonumber, setmetatable, pairs, ipairs, error, pcall, require, math.floor
local concat = table.concat
local parse_extension = conn.parse_extension

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local DEFAULT_MAX_PAYLOAD_LEN = 65535
local DEFAULT_MAX_HEADER_LEN = 16384      -- the request line and the header fields, in bytes
local DEFAULT_MAX_HEADERS = 100           -- header field lines
local DEFAULT_CLOSE_TIMEOUT = 1000        -- ms close() waits for the peer's close frame

local REASONS = {
    [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
    [405] = "Method Not Allowed", [426] = "Upgrade Required", [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
    [503] = "Service Unavailable",
}

local deflate_mod     -- resty.websocket.deflate, loaded on first use (it loads zlib)

---------------------------------------------------------------------------------------------
-- the request

-- read_request(sock, max_header_len, max_headers) -> req | nil, err, status
--   req = { method, uri, version ("1.1"), line (the request line), headers (lower-case names,
--   repeated fields joined with ", ") }. status is the HTTP status to answer with, nil when
--   the socket failed (nothing to answer).
function _M.read_request(sock, max_header_len, max_headers)
    max_header_len = max_header_len or DEFAULT_MAX_HEADER_LEN
    max_headers = max_headers or DEFAULT_MAX_HEADERS
    local read, err = driver.line_reader(sock, max_header_len, "\r\n\r\n")
    if not read then
        return nil, driver.failed_to("receive request header", err)
    end
    local header, too_long
    header, err, too_long = read()
    if not header then
        if too_long then
            return nil, "request header too large", 431
        end
        return nil, driver.failed_to("receive request header", err)
    end

    local eol = find(header, "\r\n", 1, true)
    local line = eol and sub(header, 1, eol - 1) or header
    local method, uri, major, minor =
        match(line, "^([%w!#$%%&'*+%-.^_`|~]+) (%S+) HTTP/(%d)%.(%d)$")
    if not method then
        return nil, "bad request line: " .. driver.excerpt(line), 400
    end

    local headers, count = {}, 0
    local pos = eol
    while pos do
        local start = pos + 2
        pos = find(header, "\r\n", start, true)
        local field = sub(header, start, pos and pos - 1 or -1)
        count = count + 1
        if count > max_headers then
            return nil, "too many request header fields", 431
        end
        local name, value = match(field, "^([%w!#$%%&'*+%-.^_`|~]+):[ \t]*(.-)[ \t]*$")
        if not name or find(value, "[%z\1-\8\10-\31\127]") then
            return nil, "bad request header field: " .. driver.excerpt(field), 400
        end
        name = lower(name)
        local old = headers[name]
        headers[name] = old and (old .. ", " .. value) or value
    end
    return { method = method, uri = uri, version = major .. "." .. minor, line = line,
             headers = headers }
end

-- a request the caller read (opts.request) in read_request's shape; its headers may also be
-- in ngx.req.get_headers's (any case, a value may be an array of values)
local function normalize_request(r)
    if type(r) ~= "table" or type(r.headers) ~= "table" then
        error("bad argument #1 opts.request: a table with a headers table expected", 3)
    end
    local headers = {}
    for k, v in pairs(r.headers) do
        if type(k) == "string" then
            k = lower(k)
            if type(v) == "table" then
                v = concat(v, ", ")
            end
            v = tostring(v)
            headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
        end
    end
    local method, uri, version = r.method, r.uri, r.version
    if r.line and not method then
        local major, minor
        method, uri, major, minor = match(r.line, "^(%S+) (%S+) HTTP/(%d)%.(%d)$")
        if not method then
            return nil, "bad request line: " .. driver.excerpt(tostring(r.line))
        end
        version = major .. "." .. minor
    end
    return { method = method or "GET", uri = uri or "/", version = version or "1.1",
             line = r.line, headers = headers }
end

---------------------------------------------------------------------------------------------
-- the answers

local function has_token(value, token)
    for tok in gmatch(value or "", "[^,%s]+") do
        if lower(tok) == token then
            return true
        end
    end
    return false
end

-- an HTTP error response, then the socket is closed; returns nil, err, status
local function reject(sock, status, err)
    local extra = ""
    local connection = "close"
    if status == 426 then
        extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        connection = "Upgrade, close"
    end
    local body = err .. "\n"
    sock:send({ "HTTP/1.1 ", tostring(status), " ", REASONS[status] or "Error",
                "\r\nContent-Type: text/plain\r\nContent-Length: ", tostring(#body),
                "\r\nConnection: ", connection, "\r\n", extra, "\r\n", body })
    sock:close()
    return nil, err, status
end

-- _M.reject(sock, status, message): sends an HTTP error response and closes the socket (for a
-- caller that read the request with read_request and turns it down itself)
function _M.reject(sock, status, err)
    return reject(sock, status, err or REASONS[status] or "error")
end

-- the sub-protocol for the offer (a comma list), from opts.protocols: a string, an array in
-- the server's order of preference, or a function(offered_array, req) -> name | nil
local function select_protocol(protocols, offer, req)
    if not offer or not protocols then
        return nil
    end
    local offered, set = {}, {}
    for tok in gmatch(offer, "[^,%s]+") do
        offered[#offered + 1] = tok
        set[tok] = true
    end
    if type(protocols) == "function" then
        local chosen = protocols(offered, req)
        return chosen ~= nil and set[chosen] and chosen or nil
    end
    if type(protocols) == "string" then
        return set[protocols] and protocols or nil
    end
    for _, p in ipairs(protocols) do
        if set[p] then
            return p
        end
    end
    return nil
end

local function window_bits(v)
    if v == true then
        return true
    end
    v = tonumber(v)
    if not v or v < 8 or v > 15 or v % 1 ~= 0 then
        return nil
    end
    return v
end

-- accepts one permessage-deflate offer (its params) under the server's settings c: the
-- response element and the deflate settings, or nil when the offer must be declined
local function deflate_accept(c, params)
    local got = {}
    for _, p in ipairs(params) do
        local k, v = p[1], p[2]
        if got[k] ~= nil then
            return nil          -- a duplicate parameter
        end
        if k == "server_no_context_takeover" or k == "client_no_context_takeover" then
            if v ~= true then
                return nil
            end
        elseif k == "server_max_window_bits" then
            v = window_bits(v)
            if not v or v == true then
                return nil
            end
        elseif k == "client_max_window_bits" then
            v = window_bits(v)
            if not v then
                return nil
            end
        else
            return nil          -- unknown parameter
        end
        got[k] = v
    end

    local resp = { "permessage-deflate" }
    local settings = { is_server = true, level = c.level }
    if got.server_no_context_takeover or c.server_no_context_takeover then
        resp[#resp + 1] = "server_no_context_takeover"
        settings.server_no_context_takeover = true
    end
    if got.client_no_context_takeover or c.client_no_context_takeover then
        resp[#resp + 1] = "client_no_context_takeover"
        settings.client_no_context_takeover = true
    end
    local sbits = got.server_max_window_bits
    if sbits == 8 then
        -- zlib cannot deflate with a 256-byte window (it silently uses 512): decline
        return nil
    end
    if c.server_max_window_bits and (not sbits or c.server_max_window_bits < sbits) then
        sbits = c.server_max_window_bits
    end
    if sbits then
        resp[#resp + 1] = "server_max_window_bits=" .. sbits
        settings.server_max_window_bits = sbits
    end
    local cbits = got.client_max_window_bits
    if cbits ~= nil and c.client_max_window_bits then
        -- the client said it can take the parameter: ask for a smaller window
        local limit = cbits == true and 15 or cbits
        if c.client_max_window_bits < limit then
            limit = c.client_max_window_bits
        end
        resp[#resp + 1] = "client_max_window_bits=" .. limit
    end
    return concat(resp, "; "), settings
end

-- the first acceptable permessage-deflate offer in the header: response element, settings
local function negotiate_deflate(c, header)
    if not header then
        return nil
    end
    for elem in gmatch(header, "[^,]+") do
        local name, params = parse_extension(elem)
        if name == "permessage-deflate" then
            local resp, settings = deflate_accept(c, params)
            if resp then
                return resp, settings
            end
        end
    end
    return nil
end

---------------------------------------------------------------------------------------------
-- new

local function check_number(opts, name)
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
        error("bad argument #1 opts." .. name .. ": non-negative number expected, got "
              .. tostring(v), 3)
    end
    return v
end

local function check_compression(c)
    if c == nil or c == false then
        return nil
    end
    if c == true then
        return {}
    end
    if type(c) ~= "table" then
        error("bad argument #1 opts.compression: boolean or table expected", 3)
    end
    local s, cl = c.server_max_window_bits, c.client_max_window_bits
    if s ~= nil and (type(s) ~= "number" or s < 9 or s > 15 or s % 1 ~= 0) then
        error("bad argument #1 opts.compression.server_max_window_bits: 9 to 15 expected", 3)
    end
    if cl ~= nil and (type(cl) ~= "number" or cl < 8 or cl > 15 or cl % 1 ~= 0) then
        error("bad argument #1 opts.compression.client_max_window_bits: 8 to 15 expected", 3)
    end
    return c
end

-- server:new{ sock = accepted_socket, timeout, max_payload_len, max_recv_len, max_send_len,
--             max_message_len, send_masked, protocols, compression, request, response_headers,
--             max_header_len, max_headers, close_timeout }
--   -> ws | nil, err, status
function _M.new(self, opts)
    if type(opts) ~= "table" then
        error("bad argument #1 opts: table expected (opts.sock is the accepted socket), got "
              .. type(opts), 2)
    end
    local sock = opts.sock
    if type(sock) ~= "table" and type(sock) ~= "userdata" then
        error("bad argument #1 opts.sock: the accepted socket expected, got " .. type(sock), 2)
    end
    local timeout = check_number(opts, "timeout")
    local max_payload_len = check_number(opts, "max_payload_len") or DEFAULT_MAX_PAYLOAD_LEN
    local max_recv_len = check_number(opts, "max_recv_len") or max_payload_len
    local max_send_len = check_number(opts, "max_send_len") or max_payload_len
    local max_message_len = check_number(opts, "max_message_len") or max_recv_len
    local close_timeout = check_number(opts, "close_timeout") or DEFAULT_CLOSE_TIMEOUT
    local compression = check_compression(opts.compression)
    local protocols = opts.protocols
    if protocols ~= nil and type(protocols) ~= "string" and type(protocols) ~= "table"
       and type(protocols) ~= "function" then
        error("bad argument #1 opts.protocols: string, table or function expected", 2)
    end
    local extra = opts.response_headers
    if extra ~= nil and type(extra) ~= "table" then
        error("bad argument #1 opts.response_headers: table expected", 2)
    end
    if compression and not deflate_mod then
        local ok, mod = pcall(require, "resty.websocket.deflate")
        if not ok then
            sock:close()
            return nil, "permessage-deflate unavailable: " .. tostring(mod)
        end
        deflate_mod = mod
    end

    if timeout then
        sock:settimeout(timeout)
    end

    local req, err, status
    if opts.request ~= nil then
        req, err = normalize_request(opts.request)
        if not req then
            return reject(sock, 400, err)
        end
    else
        req, err, status = _M.read_request(sock, check_number(opts, "max_header_len"),
                                           check_number(opts, "max_headers"))
        if not req then
            if status then
                return reject(sock, status, err)
            end
            sock:close()
            return nil, err
        end
    end

    local h = req.headers
    if req.method ~= "GET" then
        return reject(sock, 400, "bad method: " .. tostring(req.method) .. " (GET expected)")
    end
    local major, minor = match(req.version or "", "^(%d+)%.(%d+)$")
    if major ~= "1" or tonumber(minor) < 1 then
        return reject(sock, 400, "bad HTTP version: " .. tostring(req.version)
                                 .. " (1.1 expected)")
    end
    if not h.host then
        return reject(sock, 400, "missing \"host\" request header")
    end
    if not has_token(h.upgrade, "websocket") then
        return reject(sock, 426, "bad \"upgrade\" request header: " .. tostring(h.upgrade))
    end
    if not has_token(h.connection, "upgrade") then
        return reject(sock, 400, "bad \"connection\" request header: " .. tostring(h.connection))
    end
    if h["sec-websocket-version"] ~= "13" then
        return reject(sock, 426, "bad \"sec-websocket-version\" request header: "
                                 .. tostring(h["sec-websocket-version"]))
    end
    local key = h["sec-websocket-key"]
    if not key or not match(key, "^[%w+/]+=*$") or #key ~= 24
       or #(decode_base64(key) or "") ~= 16 then
        return reject(sock, 400, "bad \"sec-websocket-key\" request header: " .. tostring(key))
    end

    local proto = select_protocol(protocols, h["sec-websocket-protocol"], req)
    local ext, settings
    if compression then
        ext, settings = negotiate_deflate(compression, h["sec-websocket-extensions"])
    end
    local d
    if settings then
        d, err = deflate_mod.new(settings, compression.max_inflated_len or max_recv_len)
        if not d then
            return reject(sock, 400, err)     -- zlib failed to initialize
        end
    end

    local resp = { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: ",
                   encode_base64(sha1_bin(key .. GUID)), "\r\n" }
    if proto then
        resp[#resp + 1] = "Sec-WebSocket-Protocol: " .. proto .. "\r\n"
    end
    if ext then
        resp[#resp + 1] = "Sec-WebSocket-Extensions: " .. ext .. "\r\n"
    end
    if extra then
        conn.add_header_lines(resp, extra)
    end
    resp[#resp + 1] = "\r\n"
    local bytes
    bytes, err = sock:send(resp)
    if not bytes then
        sock:close()
        return driver.fail("send the handshake response", err)
    end

    return setmetatable({
        sock = sock,
        server = true,
        mask_out = opts.send_masked and true or false,
        max_recv_len = max_recv_len,
        max_send_len = max_send_len,
        max_message_len = max_message_len,
        close_timeout = close_timeout,
        deflate = d,
        protocol = proto,
        extensions = ext,
        request = req,
    }, mt)
end

conn.install(_M)

-- close(): a close frame (unless one was sent), then, unless the peer's close frame came
-- already, up to close_timeout ms for it (RFC 6455 7.1.1: the server closes the TCP
-- connection after the closing handshake; closing at once can reset the connection under
-- the peer's unread close frame), then the socket is closed
function _M.close(self)
    local sock = self.sock
    local ok, err = conn.send_close_once(self, sock)
    if not ok then
        return nil, err
    end
    if not self.peer_closed and self.close_timeout > 0 then
        update_time()
        local deadline = now() + self.close_timeout / 1000
        while true do
            local left = floor((deadline - now()) * 1000)
            if left <= 0 then
                break
            end
            sock:settimeout(left)
            local data, typ = protocol.recv_frame(sock, self.max_recv_len, true, true)
            if not data or typ == "close" then
                break
            end
            update_time()
        end
        self.peer_closed = true
    end
    return sock:close()
end

return _M
