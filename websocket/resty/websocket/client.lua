-- resty.websocket.client for cosocket: a drop-in for lua-resty-websocket's client (same names,
-- arguments and return values), which also verifies Sec-WebSocket-Accept and the negotiated
-- sub-protocol, can negotiate permessage-deflate (RFC 7692; connect opt `compression`) and
-- speaks wss:// (sslhandshake). The frame-level methods are resty.websocket.conn's.
-- Written for this project; see websocket/README.md.

local conn = require "resty.websocket.conn"
local driver = require "resty.cosocket.driver"

local ngx = ngx
local tcp = ngx.socket.tcp
local encode_base64, sha1_bin = ngx.encode_base64, ngx.sha1_bin
local char, sub, match, gmatch, lower =
    string.char, string.sub, string.match, string.gmatch, string.lower
local random = math.random
local type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error, pcall, require =
    type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error, pcall, require
local concat = table.concat

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
        mask_out = not send_unmasked,
    }, mt)
end

local parse_extension = conn.parse_extension

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
        port = port ~= "" and tonumber(port) or (scheme == "wss" and 443 or 80)
    end
    if path == "" then
        path = "/"
    elseif sub(path, 1, 1) ~= "/" then
        return nil, "bad websocket uri: " .. uri
    end

    local protos, origin, headers, host_hdr, key, compression
    local sock_opts, server_name, ssl_verify, client_cert, client_key
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
        server_name = opts.server_name
        ssl_verify = opts.ssl_verify
        client_cert = opts.client_cert
        client_key = opts.client_priv_key
        if opts.pool or opts.pool_size or opts.backlog then
            sock_opts = { pool = opts.pool, pool_size = opts.pool_size, backlog = opts.backlog }
        end
    end
    if scheme == "wss" and not (sock_opts and sock_opts.pool) then
        -- a pooled TLS connection carries its peer's verified identity and our client
        -- certificate: it must not be handed to a caller that asked for something else, nor
        -- to a ws:// caller
        sock_opts = sock_opts or {}
        sock_opts.pool = "wss:" .. (unix_path and ("unix:" .. unix_path) or (host .. ":" .. port))
                         .. ":" .. driver.tls_identity({ server_name = server_name, ssl_verify = ssl_verify,
                                                         ssl_client_cert = client_cert,
                                                         ssl_client_priv_key = client_key }, ":")
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

    self.fatal, self.closed, self.peer_closed, self.deflate, self.protocol =
        nil, nil, nil, nil, nil
    if sock:getreusedtimes() > 0 then
        -- an upgraded connection from the pool: its TLS and websocket handshakes are done
        return 1
    end

    if scheme == "wss" then
        if client_cert ~= nil or client_key ~= nil then
            ok, err = sock:setclientcert(client_cert, client_key)
            if not ok then
                sock:close()
                return nil, "failed to set TLS client certificate: " .. tostring(err)
            end
        end
        ok, err = sock:sslhandshake(false, server_name, ssl_verify)
        if not ok then
            sock:close()
            return nil, "ssl handshake failed: " .. tostring(err)
        end
    end

    if not key then
        local b = {}
        for i = 1, 16 do b[i] = char(random(0, 255)) end
        key = encode_base64(concat(b))
    end
    if not host_hdr then
        host_hdr = host
        if port and port ~= (scheme == "wss" and 443 or 80) then
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
        conn.add_header_lines(req, headers)
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

conn.install(_M)

return _M
