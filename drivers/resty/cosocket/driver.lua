-- resty.cosocket.driver: what the cosocket drivers share -- the error conventions, the
-- connection state that gates set_keepalive, connect() arguments and pool names, request
-- lines collected for one send, and reply reading with bounded lengths. Pure Lua; works on
-- this runtime and inside OpenResty. Moved here from redis, memcached and websocket; see
-- drivers/README.md for the API and drivers/PORTING.md for how a driver uses it.

local type, tostring, tonumber, pairs, select, error, rawget =
    type, tostring, tonumber, pairs, select, error, rawget
local byte, sub, find, fmt = string.byte, string.sub, string.find, string.format

local _M = { _VERSION = "0.1.0" }

---------------------------------------------------------------------------------------------
-- errors: nil, "failed to <step>: <err>"

local function failed_to(step, err)
    return "failed to " .. step .. ": " .. tostring(err)
end
_M.failed_to = failed_to       -- the message alone, for returns of more values (nil, nil, err)

function _M.fail(step, err)
    return nil, failed_to(step, err)
end

-- closes the socket (the stream position is unknown after a timeout or a malformed reply,
-- so the connection must never be reused) and returns nil, err
function _M.fatal(sock, err)
    sock:close()
    return nil, err
end

-- s quoted for an error message, cut at max bytes (default 40)
function _M.excerpt(s, max)
    max = max or 40
    if #s > max then s = sub(s, 1, max) .. "..." end
    return fmt("%q", s)
end

---------------------------------------------------------------------------------------------
-- connection state (fields self.sock, self.state, self.fatal_err)
--
--   nil         not connected (new, closed, or handed to the pool)
--   IDLE        connected, nothing in flight: the only state set_keepalive accepts
--   SENT        a command was sent and its reply is not all read
--   SUBSCRIBED  the server may push at any time (pub/sub, watch...)
--   FAILED      closed after a timeout, transport or protocol error (sticky until connect)

local IDLE, SENT, SUBSCRIBED, FAILED = 1, 2, 3, 4
_M.IDLE, _M.SENT, _M.SUBSCRIBED, _M.FAILED = IDLE, SENT, SUBSCRIBED, FAILED
local STATE_NAMES = { [IDLE] = "idle", [SENT] = "command sent", [SUBSCRIBED] = "subscribed",
                      [FAILED] = "failed" }
_M.STATE_NAMES = STATE_NAMES

-- why a connection in this state cannot take a command or go to the pool
local function why_not_idle(self)
    local state = self.state
    if state == FAILED then
        return "connection closed after error: " .. tostring(self.fatal_err)
    end
    if state == nil then
        return "closed"
    end
    return "cannot be reused in the current connection state: " .. STATE_NAMES[state]
end
_M.why_not_idle = why_not_idle

-- the socket when the connection is idle; else nil, why ("busy: command sent" when another
-- light thread is in the middle of a command on the same object)
function _M.ready(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local state = self.state
    if state ~= IDLE then
        if state == SENT or state == SUBSCRIBED then
            return nil, "busy: " .. STATE_NAMES[state]
        end
        return nil, why_not_idle(self)
    end
    return sock
end

-- closes the socket, makes the object answer "connection closed after error: <err>" until
-- the next connect(), returns nil, err
function _M.failed(self, err)
    local sock = rawget(self, "sock")
    if sock then
        sock:close()
    end
    self.state = FAILED
    self.fatal_err = err
    return nil, err
end

-- the state after a connect that returned ok, err: IDLE, or nil on failure
local function connected(self, ok, err)
    if not ok then
        self.state = nil
        return nil, err
    end
    self.state = IDLE
    self.fatal_err = nil
    return ok
end
_M.connected = connected

-- sock:connect(...) and the state that follows
function _M.connect(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return connected(self, sock:connect(...))
end

-- sock:setkeepalive(...) only when idle; the object is then not connected
function _M.set_keepalive(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if self.state ~= IDLE then
        return nil, why_not_idle(self)
    end
    self.state = nil
    return sock:setkeepalive(...)
end

function _M.close(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    self.state = nil
    return sock:close()
end

-- sock:settimeout / settimeouts: 1; nil, "not initialized"
function _M.set_timeout(self, timeout)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeout(timeout)
    return 1
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    sock:settimeouts(connect_timeout, send_timeout, read_timeout)
    return 1
end

function _M.get_reused_times(sock)
    if not sock then
        return nil, "not initialized"
    end
    return sock:getreusedtimes()
end

---------------------------------------------------------------------------------------------
-- connect() arguments and pool names

-- (host, port[, opts]) or ("unix:/path"[, opts]) -> unix, port, opts; a bad type raises an
-- error at the level of the driver's caller (the driver's connect calls this directly)
function _M.connect_args(host, port_or_opts, opts)
    if type(host) ~= "string" then
        error("bad argument #1 host: string expected, got " .. type(host), 3)
    end
    if sub(host, 1, 5) == "unix:" then
        if port_or_opts ~= nil then
            if type(port_or_opts) ~= "table" then
                error("bad argument #2 opts: nil or table expected, got " .. type(port_or_opts), 3)
            end
            opts = port_or_opts
        end
        return true, nil, opts
    end
    local port = tonumber(port_or_opts)
    if not port then
        error("bad argument #2 port: number expected, got " .. type(port_or_opts), 3)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("bad argument #3 opts: nil or table expected, got " .. type(opts), 3)
    end
    return false, port, opts
end

-- A connection that carries an identity (a user, a database, a tube...) needs a pool of its
-- own: a copy of opts with pool = "host:port/part/part..." (nil parts skipped); opts itself
-- when the caller named a pool.
function _M.pool_opts(opts, host, port, ...)
    if opts and opts.pool then
        return opts
    end
    local pool = port and (host .. ":" .. port) or host
    for i = 1, select("#", ...) do
        local part = select(i, ...)
        if part ~= nil then
            pool = pool .. "/" .. tostring(part)
        end
    end
    local copy = {}
    if opts then
        for k, v in pairs(opts) do copy[k] = v end
    end
    copy.pool = pool
    return copy
end

-- sock:connect with the arguments connect_args returned
function _M.connect_sock(sock, host, unix, port, opts)
    if unix then
        if opts then
            return sock:connect(host, opts)
        end
        return sock:connect(host)
    end
    return sock:connect(host, port, opts)
end

---------------------------------------------------------------------------------------------
-- requests: pieces in an array, sent by one sock:send (no concatenation)

-- appends the words separated by spaces and a CRLF to req; returns req
local function push_line(req, ...)
    local n = #req
    local nargs = select("#", ...)
    for i = 1, nargs do
        if i > 1 then
            n = n + 1
            req[n] = " "
        end
        n = n + 1
        req[n] = (select(i, ...))
    end
    req[n + 1] = "\r\n"
    return req
end
_M.push_line = push_line

-- a new request: the words separated by spaces and a CRLF
function _M.line(...)
    return push_line({}, ...)
end

-- appends raw pieces; returns req
function _M.push(req, ...)
    local n = #req
    for i = 1, select("#", ...) do
        req[n + i] = (select(i, ...))
    end
    return req
end

-- a word that can go into a command line: no space, no control character, not empty
function _M.is_word(s)
    return type(s) == "string" and s ~= "" and not find(s, "[%z\1-\32\127]")
end

---------------------------------------------------------------------------------------------
-- replies

-- a length field: a string of decimal digits whose value is at most max -> number; else nil
function _M.parse_len(s, max)
    if type(s) ~= "string" or #s > 15 or not find(s, "^%d+$") then
        return nil
    end
    local n = tonumber(s)
    if max and n > max then
        return nil
    end
    return n
end

-- len bytes of data and the CRLF after them: data; nil, err, false on a transport error;
-- nil, "no CRLF after the data", true when the terminator is wrong (protocol error). The
-- caller checked len against its bound before reading.
function _M.read_data(sock, len)
    local data, err = sock:receive(len + 2)
    if not data then
        return nil, err, false
    end
    if byte(data, len + 1) ~= 13 or byte(data, len + 2) ~= 10 then
        return nil, "no CRLF after the data", true
    end
    return sub(data, 1, len)
end

-- A reader of lines ended by pattern (default CRLF) of at most max bytes: a peer that sends
-- an endless line is stopped there, not buffered until the timeout. read() -> line (without
-- the pattern); nil, err, false on a transport error; nil, "line too long", true. Make one
-- per connection (after connect).
function _M.line_reader(sock, max, pattern)
    local it, err = sock:receiveuntil(pattern or "\r\n")
    if not it then
        return nil, err
    end
    local size = max + 1
    return function()
        local line, rerr = it(size)
        if not line then
            return nil, rerr, false
        end
        if #line > max then
            return nil, "line too long", true
        end
        -- the pattern was reached: this call ends the match (nil) without reading
        it(size)
        return line
    end
end

---------------------------------------------------------------------------------------------
-- TLS: the drivers' options ssl, ssl_verify, server_name, ssl_client_cert, ssl_client_priv_key

-- What a TLS connection was set up with, for a default pool name, so that a plain pooled
-- connection never serves an ssl connect, nor a TLS one checked against another name,
-- verification setting or client identity: "ssl<sep><server_name><sep><verify>" and, with a
-- client certificate, "<sep><md5 of its PEM text and key>" (an ngx.ssl object: its address).
-- <verify> is "verify", "noverify", or "default" (no ssl_verify: the runtime's default).
function _M.tls_identity(opts, sep)
    local verify = opts.ssl_verify
    local id = "ssl" .. sep .. tostring(opts.server_name or "") .. sep
               .. (verify == nil and "default" or (verify and "verify" or "noverify"))
    local cert = opts.ssl_client_cert
    if cert ~= nil then
        if type(cert) == "string" then
            id = id .. sep .. ngx.md5(cert .. "\0" .. tostring(opts.ssl_client_priv_key))
        else
            id = id .. sep .. tostring(cert)
        end
    end
    return id
end

-- The handshake of a new connection (a pooled one is still encrypted): the client
-- certificate if given, then sslhandshake(false, server_name, ssl_verify). true, or nil and
-- lua-resty-redis's wording; the caller closes the socket.
function _M.ssl_handshake(sock, opts)
    if opts.ssl_client_cert ~= nil then
        local ok, err = sock:setclientcert(opts.ssl_client_cert, opts.ssl_client_priv_key)
        if not ok then
            return nil, "failed to set ssl client certificate: " .. tostring(err)
        end
    end
    local ok, err = sock:sslhandshake(false, opts.server_name, opts.ssl_verify)
    if not ok then
        return nil, "failed to do ssl handshake: " .. tostring(err)
    end
    return true
end

return _M
