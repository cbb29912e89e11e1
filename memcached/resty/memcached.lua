-- resty.memcached: a memcached client for the cosocket API (ASCII protocol and
-- the meta commands of memcached >= 1.6). A drop-in for lua-resty-memcached:
-- same method names, arguments and return values.
--
-- Connection safety: a timeout, a transport error or a reply that does not
-- parse closes the socket and leaves the object in a sticky "fatal" state
-- (every call answers nil, err until connect() is called again), so a
-- connection that is mid-reply never goes back to the pool.

local driver = require "resty.cosocket.driver"

local ngx = ngx
local tcp = ngx.socket.tcp
local escape_uri = ngx.escape_uri
local unescape_uri = ngx.unescape_uri
local encode_base64 = ngx.encode_base64
local decode_base64 = ngx.decode_base64
local type, tostring, tonumber = type, tostring, tonumber
local setmetatable, rawget, error, select = setmetatable, rawget, error, select
local pairs, ipairs = pairs, ipairs
local byte, sub, find, match = string.byte, string.sub, string.find, string.match
local gmatch, gsub = string.gmatch, string.gsub
local concat = table.concat

local ok_new_tab, new_tab = pcall(require, "table.new")
if not ok_new_tab or type(new_tab) ~= "function" then
    new_tab = function() return {} end
end

local _M = new_tab(0, 64)
_M._VERSION = "0.1.0"

local mt = { __index = _M }

local MAX_KEY_LEN = 250
local DEFAULT_MAX_VALUE = 128 * 1024 * 1024   -- refuse bigger VALUE headers
local MULTI_GET_BATCH = 100                   -- keys per get line

-- states (resty.cosocket.driver): IDLE, connected and nothing in flight, may be pooled;
-- FAILED, closed after a timeout / protocol error
local STATE_IDLE, STATE_FATAL = driver.IDLE, driver.FAILED
local line = driver.line

--------------------------------------------------------------------------
-- helpers

-- the length limits of every key
local function key_len_ok(key)
    local n = #key
    if n == 0 then
        return nil, "empty key"
    end
    if n > MAX_KEY_LEN then
        return nil, "key too long"
    end
    return true
end

local function valid_key(key)
    local ok, err = key_len_ok(key)
    if not ok then
        return nil, err
    end
    -- control characters and spaces would split or end the command line
    if find(key, "[%z\1-\32\127]") then
        return nil, "bad key: control character or space"
    end
    return true
end

-- closes the socket, the object answers "connection closed after error" until connect()
local fatal = driver.failed

-- the socket, or nil + why it cannot be used
local check = driver.ready

-- the key after key_transform, checked; or nil, err. The default transform (URI escaping)
-- escapes spaces and control characters, so its output needs only the length checks.
local function escaped_key(self, key)
    if type(key) ~= "string" then
        if type(key) == "number" then
            key = tostring(key)
        else
            return nil, "bad key type: " .. type(key)
        end
    end
    local escape = self.escape_key
    if escape == escape_uri then
        key = escape_uri(key)
        local ok, err = key_len_ok(key)
        if not ok then
            return nil, err
        end
        return key
    end
    key = escape(key)
    local ok, err = valid_key(key)
    if not ok then
        return nil, err
    end
    return key
end

-- reads a line; a transport failure is fatal
local function read_line(self, sock)
    local line, err = sock:receive()
    if not line then
        return fatal(self, err)
    end
    return line
end

-- reads len bytes of data plus the "\r\n" after them
local function read_data(self, sock, len)
    local data, err, bad = driver.read_data(sock, len)
    if not data then
        return fatal(self, bad and "bad value terminator" or err)
    end
    return data
end

-- a server error line ("ERROR", "CLIENT_ERROR ...", "SERVER_ERROR ...")
local function is_server_error(line)
    return line == "ERROR" or sub(line, 1, 13) == "CLIENT_ERROR "
        or sub(line, 1, 13) == "SERVER_ERROR "
end

-- A command is a send plus a reply reader. In pipeline mode the request is
-- queued with its reader; otherwise it is sent and read at once.
local function run(self, req, reader, a1, a2)
    local sock = rawget(self, "sock")
    if not sock or self.state ~= STATE_IDLE then
        return check(self)   -- nil, why
    end
    local pipe = rawget(self, "_pipe")
    if pipe then
        local n = pipe.n + 1
        pipe.n = n
        pipe.reqs[n] = req
        pipe.readers[n] = reader
        pipe.a1[n] = a1 or false
        pipe.a2[n] = a2 or false
        return true
    end
    local bytes, err = sock:send(req)
    if not bytes then
        return fatal(self, err)
    end
    return reader(self, sock, a1, a2)
end

--------------------------------------------------------------------------
-- construction and connection

function _M.new(self, opts)
    if type(self) ~= "table" then
        opts = nil
    end
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    local escape, unescape = escape_uri, unescape_uri
    local max_value_size = DEFAULT_MAX_VALUE
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #1 opts: table expected, got " .. type(opts), 2)
        end
        local kt = opts.key_transform
        if kt then
            if type(kt) ~= "table" or type(kt[1]) ~= "function"
               or type(kt[2]) ~= "function" then
                error("key_transform must be a table of two functions", 2)
            end
            escape, unescape = kt[1], kt[2]
        end
        if opts.max_value_size then
            max_value_size = tonumber(opts.max_value_size)
            if not max_value_size or max_value_size < 0 then
                error("bad max_value_size", 2)
            end
        end
    end
    return setmetatable({
        sock = sock, state = nil, escape_key = escape, unescape_key = unescape,
        max_value_size = max_value_size,
    }, mt)
end

_M.set_timeout = driver.set_timeout
_M.set_timeouts = driver.set_timeouts

-- The pool of a TLS connection when the caller names none (not in lua-resty-memcached):
-- "<host>:<port>" or "<unix-socket-path>", then "/ssl/<server_name>/<verify>[/<client cert>]"
-- (<verify>: "verify", "noverify", or "default" when ssl_verify is not given; the client
-- certificate as the md5 of its PEM text, or its object's address). A plain pooled
-- connection never reaches a TLS connect, nor a TLS one checked differently.
local function tls_pool_name(host, port, opts)
    return (port and (host .. ":" .. port) or host) .. "/" .. driver.tls_identity(opts, "/")
end
_M.tls_pool_name = tls_pool_name

-- connect(host, port, opts?) / connect("unix:/path", opts?); opts as sock:connect's plus
-- ssl, ssl_verify, server_name, ssl_client_cert, ssl_client_priv_key: a new connection
-- then does the TLS handshake (a pooled one is still encrypted)
function _M.connect(self, ...)
    local host, port_or_opts, opts = ...
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    self._pipe = nil
    local o, port = opts, port_or_opts
    if type(port_or_opts) == "table" then
        o, port = port_or_opts, nil
    end
    if type(o) ~= "table" or not o.ssl then
        return driver.connect(self, ...)
    end
    if o.server_name ~= nil and type(o.server_name) ~= "string" then
        return nil, "bad server_name option: string expected, got " .. type(o.server_name)
    end
    if (o.ssl_client_cert == nil) ~= (o.ssl_client_priv_key == nil) then
        return nil, "ssl_client_cert and ssl_client_priv_key must be given together"
    end
    if not o.pool and type(host) == "string" then
        local copy = {}
        for k, v in pairs(o) do copy[k] = v end
        copy.pool = tls_pool_name(host, port, o)
        o = copy
    end
    local ok, err
    if port then
        ok, err = driver.connect(self, host, port, o)
    else
        ok, err = driver.connect(self, host, o)
    end
    if not ok then
        return nil, err
    end
    if sock:getreusedtimes() == 0 then
        local hok, herr = driver.ssl_handshake(sock, o)
        if not hok then
            driver.close(self)
            return nil, herr
        end
    end
    return ok
end

function _M.sslhandshake(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if self.state ~= STATE_IDLE then
        return nil, "not connected"
    end
    if not sock.sslhandshake then
        return nil, "sslhandshake not supported by this runtime"
    end
    local session, err = sock:sslhandshake(...)
    if not session then
        return fatal(self, err)
    end
    return session
end

function _M.set_keepalive(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if rawget(self, "_pipe") then
        return nil, "pipeline not committed"
    end
    return driver.set_keepalive(self, ...)
end

function _M.get_reused_times(self)
    return driver.get_reused_times(rawget(self, "sock"))
end

-- true after a timeout, transport or protocol error closed the connection
-- (not in lua-resty-memcached; used by resty.memcached.ring)
function _M.broken(self)
    return self.state == STATE_FATAL
end

function _M.close(self)
    if rawget(self, "sock") then
        self._pipe = nil
    end
    return driver.close(self)
end

--------------------------------------------------------------------------
-- retrieval

-- s is one or more decimal digits
local function digits(s)
    local n = #s
    if n == 0 then
        return false
    end
    for i = 1, n do
        local c = byte(s, i)
        if c < 48 or c > 57 then
            return false
        end
    end
    return true
end

-- "VALUE <key> <flags> <bytes>[ <cas>]" (the cas with with_cas): key (when want_key),
-- flags, bytes, cas as strings; nil for any other line. Plain finds and subs, which the JIT
-- compiles (string.match is a call out of the trace, and more work).
local function value_line(line, with_cas, want_key)
    if sub(line, 1, 6) ~= "VALUE " then
        return nil
    end
    local s1 = find(line, " ", 7, true)
    if not s1 or s1 == 7 then
        return nil
    end
    local s2 = find(line, " ", s1 + 1, true)
    if not s2 then
        return nil
    end
    local flags, len, cas = sub(line, s1 + 1, s2 - 1), nil, nil
    if with_cas then
        local s3 = find(line, " ", s2 + 1, true)
        if not s3 then
            return nil
        end
        len, cas = sub(line, s2 + 1, s3 - 1), sub(line, s3 + 1)
        if not digits(cas) then
            return nil
        end
    else
        len = sub(line, s2 + 1)
    end
    if not digits(flags) or not digits(len) then
        return nil
    end
    return want_key and sub(line, 7, s1 - 1) or true, flags, len, cas
end

-- one "VALUE key flags len [cas]" item (its header line already read), or END; returns
-- status ("value" | "end"), key, data, flags, cas  -- or nil, err
local function item_from_line(self, sock, line, with_cas)
    if line == "END" then
        return "end"
    end
    local key, flags, len, cas = value_line(line, with_cas, true)
    if not key then
        if is_server_error(line) then
            return nil, line
        end
        return fatal(self, "bad reply: " .. sub(line, 1, 200))
    end
    local n = driver.parse_len(len, self.max_value_size)
    if not n then
        return fatal(self, "value too large: " .. sub(len, 1, 20) .. " bytes")
    end
    local data, err = read_data(self, sock, n)
    if not data then
        return nil, err
    end
    return "value", key, data, tonumber(flags), cas
end

local function read_item(self, sock, with_cas)
    local line, err = sock:receive()
    if not line then
        return fatal(self, err)
    end
    return item_from_line(self, sock, line, with_cas)
end

-- The rest of a reply line whose first bytes (head) were read with the value before it:
-- the line as sock:receive() gives it (CRs dropped); nil, err.
local function rest_of_line(self, sock, head)
    local lf = find(head, "\n", 1, true)
    if not lf then
        local rest, err = sock:receive()
        if not rest then
            return fatal(self, err)
        end
        return gsub(head, "\r", "") .. rest
    end
    local line = gsub(sub(head, 1, lf - 1), "\r", "")
    if lf < #head then
        -- bytes of a further reply were read with it: the stream cannot be trusted
        return fatal(self, "bad reply: " .. sub(line, 1, 200) .. " (bare LF)")
    end
    return line
end

-- the reply to a get/gets of one key: "value", data, flags, cas; nil (a miss); nil, err.
-- The usual reply (a miss, or one VALUE then END) is read here in two reads (the header
-- line, then the data with its CRLF and the END line); anything else is judged by
-- item_from_line, as in a multi-get reply.
local function single_get_reader(self, sock, with_cas)
    local line, err = sock:receive()
    if not line then
        return fatal(self, err)
    end
    if line == "END" then
        return nil
    end
    local _, flags, len, cas = value_line(line, with_cas, false)
    local n = flags and #len <= 15 and tonumber(len)
    local data
    if n and n <= self.max_value_size then
        local partial
        data, err, partial = sock:receive(n + 7)     -- <data>\r\nEND\r\n
        if not data then
            -- a wrong terminator is reported as such, also when the reply stops after it
            if partial and #partial >= n + 2
               and (byte(partial, n + 1) ~= 13 or byte(partial, n + 2) ~= 10) then
                return fatal(self, "bad value terminator")
            end
            return fatal(self, err)
        end
        if byte(data, n + 1) ~= 13 or byte(data, n + 2) ~= 10 then
            return fatal(self, "bad value terminator")
        end
        local tail = sub(data, n + 3)
        data = sub(data, 1, n)
        flags = tonumber(flags)
        if tail == "END\r\n" then
            return "value", data, flags, cas
        end
        line, err = rest_of_line(self, sock, tail)
        if not line then
            return nil, err
        end
    else
        local st, key
        st, key, data, flags, cas = item_from_line(self, sock, line, with_cas)
        if not st then
            return nil, key
        end
        line, err = sock:receive()
        if not line then
            return fatal(self, err)
        end
    end
    if line ~= "END" then
        local st2
        st2, err = item_from_line(self, sock, line, with_cas)
        if not st2 then
            return nil, err
        end
        return fatal(self, "bad reply: more than one value for one key")
    end
    return "value", data, flags, cas
end

local function get_single(self, key, with_cas)
    local pipe = rawget(self, "_pipe")
    local k, err = escaped_key(self, key)
    if not k then
        if pipe then
            return nil, err
        elseif with_cas then
            return nil, nil, nil, err
        end
        return nil, nil, err
    end
    local st, data, flags, cas = run(self, (with_cas and "gets " or "get ") .. k .. "\r\n",
                                     single_get_reader, with_cas)
    if pipe then
        if st then
            return true
        end
        return nil, data
    end
    if st == "value" then
        if with_cas then
            return data, flags, cas, nil
        end
        return data, flags, nil
    end
    -- miss: st == nil and data == nil; error: data is the message
    if with_cas then
        return nil, nil, nil, data
    end
    return nil, nil, data
end

local function multi_get_reader(self, sock, with_cas, nbatches)
    local results = new_tab(0, 16)
    local unescape = self.unescape_key
    local server_err
    local ends = 0
    while ends < nbatches do
        local st, key, data, flags, cas = read_item(self, sock, with_cas)
        if not st then
            if self.state == STATE_FATAL then
                return nil, key
            end
            -- a server error line ends that batch's reply
            server_err = server_err or key
            ends = ends + 1
        elseif st == "end" then
            ends = ends + 1
        else
            if with_cas then
                results[unescape(key)] = { data, flags, cas }
            else
                results[unescape(key)] = { data, flags }
            end
        end
    end
    if server_err then
        return nil, server_err
    end
    return results
end

local function get_multi(self, keys, with_cas)
    local nkeys = #keys
    local sock, err = check(self)
    if not sock then
        return nil, err
    end
    if nkeys == 0 then
        if rawget(self, "_pipe") then
            return nil, "empty key list"
        end
        return {}
    end
    local cmd = with_cas and "gets" or "get"
    local req = new_tab(nkeys * 2 + 8, 0)
    local n, nb = 0, 0
    for i = 1, nkeys do
        local k
        k, err = escaped_key(self, keys[i])
        if not k then
            return nil, err
        end
        if (i - 1) % MULTI_GET_BATCH == 0 then
            if i > 1 then
                n = n + 1
                req[n] = "\r\n"
            end
            n = n + 1
            req[n] = cmd
            nb = nb + 1
        end
        req[n + 1] = " "
        req[n + 2] = k
        n = n + 2
    end
    req[n + 1] = "\r\n"
    return run(self, req, multi_get_reader, with_cas, nb)
end

function _M.get(self, key)
    if type(key) == "table" then
        return get_multi(self, key, false)
    end
    return get_single(self, key, false)
end

function _M.gets(self, key)
    if type(key) == "table" then
        return get_multi(self, key, true)
    end
    return get_single(self, key, true)
end

--------------------------------------------------------------------------
-- storage and the one-line commands

-- the words a one-line reply may be besides the one its command wants (NOT_STORED, EXISTS,
-- NOT_FOUND, the server errors): the connection is still in step after them. Any other line
-- (an empty one, a word of another command, garbage) is a protocol error and closes the
-- connection -- the reply that belonged there may still be on its way.
local OTHER_WORDS = { NOT_STORED = true, EXISTS = true, NOT_FOUND = true }

local function bad_line(self, line)
    return fatal(self, "bad reply: " .. sub(line, 1, 200))
end

-- a reply of one line: 1 when it equals `want`, nil + the line for another reply word
local function line_reader(self, sock, want)
    local line, err = sock:receive()
    if not line then
        return fatal(self, err)
    end
    if line == want then
        return 1
    end
    if OTHER_WORDS[line] or is_server_error(line) then
        return nil, line
    end
    return bad_line(self, line)
end

local function value_size(value)
    if type(value) ~= "table" then
        return #value
    end
    local n = 0
    for i = 1, #value do
        local v = value[i]
        local t = type(v)
        if t == "table" then
            n = n + value_size(v)
        elseif t == "string" then
            n = n + #v
        elseif t == "number" then
            n = n + #tostring(v)
        elseif t == "boolean" then
            n = n + #tostring(v)
        else
            error("bad value piece type: " .. t, 4)
        end
    end
    return n
end

-- a string value up to this size goes out in one string with its command line (one copy
-- of a small value is cheaper than the runtime walking an array); a bigger one, or an
-- array of pieces, is sent as a piece of its own, not copied
local INLINE_VALUE_MAX = 4096

local function store(self, cmd, key, value, exptime, flags, cas_unique)
    local k, err = escaped_key(self, key)
    if not k then
        return nil, err
    end
    local tv = type(value)
    if tv == "number" or tv == "boolean" then
        value = tostring(value)
        tv = "string"
    elseif tv ~= "string" and tv ~= "table" then
        return nil, "bad value type: " .. tv
    end
    local size = tv == "string" and #value or value_size(value)
    flags, exptime = tonumber(flags) or 0, tonumber(exptime) or 0
    local req
    if not cas_unique and tv == "string" and size <= INLINE_VALUE_MAX then
        -- the usual set: one concatenation, one string
        req = cmd .. " " .. k .. " " .. flags .. " " .. exptime .. " " .. size .. "\r\n"
              .. value .. "\r\n"
    else
        local head = cmd .. " " .. k .. " " .. flags .. " " .. exptime .. " " .. size
        if cas_unique then
            head = head .. " " .. cas_unique
        end
        if tv == "string" and size <= INLINE_VALUE_MAX then
            req = head .. "\r\n" .. value .. "\r\n"
        else
            req = { head, "\r\n", value, "\r\n" }   -- an array of pieces is sent as it is
        end
    end
    return run(self, req, line_reader, "STORED")
end

function _M.set(self, key, value, exptime, flags)
    return store(self, "set", key, value, exptime, flags)
end

function _M.add(self, key, value, exptime, flags)
    return store(self, "add", key, value, exptime, flags)
end

function _M.replace(self, key, value, exptime, flags)
    return store(self, "replace", key, value, exptime, flags)
end

function _M.append(self, key, value, exptime, flags)
    return store(self, "append", key, value, exptime, flags)
end

function _M.prepend(self, key, value, exptime, flags)
    return store(self, "prepend", key, value, exptime, flags)
end

function _M.cas(self, key, value, cas_unique, exptime, flags)
    if not match(tostring(cas_unique), "^%d+$") then
        return nil, "bad cas_unique"
    end
    return store(self, "cas", key, value, exptime, flags, tostring(cas_unique))
end

function _M.touch(self, key, exptime)
    local k, err = escaped_key(self, key)
    if not k then
        return nil, err
    end
    return run(self, "touch " .. k .. " " .. (tonumber(exptime) or 0) .. "\r\n", line_reader,
               "TOUCHED")
end

function _M.delete(self, key)
    local k, err = escaped_key(self, key)
    if not k then
        return nil, err
    end
    return run(self, "delete " .. k .. "\r\n", line_reader, "DELETED")
end

local function number_reader(self, sock)
    local line, err = read_line(self, sock)
    if not line then
        return nil, err
    end
    if match(line, "^%d+$") then
        return line
    end
    if line == "NOT_FOUND" or is_server_error(line) then
        return nil, line
    end
    return bad_line(self, line)
end

local function incr_decr(self, cmd, key, delta)
    local k, err = escaped_key(self, key)
    if not k then
        return nil, err
    end
    delta = tostring(delta)
    if not match(delta, "^%d+$") then
        return nil, "bad delta: " .. sub(delta, 1, 30)
    end
    return run(self, cmd .. " " .. k .. " " .. delta .. "\r\n", number_reader)
end

function _M.incr(self, key, delta)
    return incr_decr(self, "incr", key, delta)
end

function _M.decr(self, key, delta)
    return incr_decr(self, "decr", key, delta)
end

function _M.flush_all(self, time)
    local req
    if time then
        if not tonumber(time) then
            return nil, "bad time"
        end
        req = line("flush_all", tonumber(time))
    else
        req = "flush_all\r\n"
    end
    return run(self, req, line_reader, "OK")
end

local function stats_reader(self, sock)
    local lines = new_tab(64, 0)
    local n = 0
    while true do
        local line, err = read_line(self, sock)
        if not line then
            return nil, err
        end
        if line == "END" then
            return lines
        end
        if is_server_error(line) then
            return nil, line
        end
        if sub(line, 1, 5) ~= "STAT " and sub(line, 1, 5) ~= "ITEM " then
            return fatal(self, "bad reply: " .. sub(line, 1, 200))
        end
        n = n + 1
        lines[n] = line
    end
end

function _M.stats(self, args)
    local req
    if args then
        args = tostring(args)
        if find(args, "[%z\1-\31\127]") then
            return nil, "bad stats arguments"
        end
        req = line("stats", args)
    else
        req = "stats\r\n"
    end
    return run(self, req, stats_reader)
end

local function version_reader(self, sock)
    local line, err = read_line(self, sock)
    if not line then
        return nil, err
    end
    local ver = match(line, "^VERSION (.+)$")
    if ver then
        return ver
    end
    if is_server_error(line) then
        return nil, line
    end
    return bad_line(self, line)
end

function _M.version(self)
    return run(self, "version\r\n", version_reader)
end

function _M.verbosity(self, level)
    level = tonumber(level)
    if not level then
        return nil, "bad level"
    end
    return run(self, line("verbosity", level), line_reader, "OK")
end

function _M.quit(self)
    local sock, err = check(self)
    if not sock then
        return nil, err
    end
    local bytes
    bytes, err = sock:send("quit\r\n")
    -- the server closes the connection: it cannot be pooled any more
    sock:close()
    self.state = nil
    if not bytes then
        return nil, err
    end
    return 1
end

--------------------------------------------------------------------------
-- meta commands (memcached >= 1.6)
--
-- flags: an array of flag tokens ({"v", "f", "c", "T30", "Oabc"}) or one
-- string ("v f c T30"). With the "b" flag the key is sent base64-encoded
-- (the driver encodes it) and a returned "k" flag is decoded.
-- Returns a result table { status = "VA"|"HD"|"EN"|"NS"|"EX"|"NF"|"MN",
-- value = <data for VA>, flags = { c = "...", f = "...", W = true, ... } },
-- or nil, err (a server error line or a transport failure).

local function parse_flags(flags)
    local t = type(flags)
    if flags == nil then
        return {}
    end
    local out = {}
    if t == "string" then
        for tok in gmatch(flags, "%S+") do
            out[#out + 1] = tok
        end
    elseif t == "table" then
        for i = 1, #flags do
            out[i] = tostring(flags[i])
        end
    else
        return nil, "bad flags type: " .. t
    end
    for i = 1, #out do
        local tok = out[i]
        if not find(tok, "^%a") or find(tok, "[%z\1-\32\127]") then
            return nil, "bad meta flag: " .. sub(tok, 1, 30)
        end
    end
    return out
end

local function meta_key(self, key, flags)
    local b64 = false
    for i = 1, #flags do
        if flags[i] == "b" then
            b64 = true
            break
        end
    end
    if type(key) ~= "string" then
        if type(key) ~= "number" then
            return nil, "bad key type: " .. type(key)
        end
        key = tostring(key)
    end
    if b64 then
        key = encode_base64(key)
    else
        key = self.escape_key(key)
    end
    local ok, err = valid_key(key)
    if not ok then
        return nil, err
    end
    return key, b64
end

local META_STATUS = { HD = true, EN = true, NS = true, EX = true, NF = true,
                      MN = true, VA = true }

local meta_parse

local function meta_reader(self, sock, b64, quiet)
    local line, err = read_line(self, sock)
    if not line then
        return nil, err
    end
    if not quiet then
        return meta_parse(self, sock, line, b64)
    end
    -- "q" suppresses the common answer (EN for mg, HD for the others); the
    -- mn sent after the command marks the end of the reply
    if line == "MN" then
        return { status = quiet == "mg" and "EN" or "HD", flags = {} }
    end
    local res
    res, err = meta_parse(self, sock, line, b64)
    if not res and self.state == STATE_FATAL then
        return nil, err
    end
    local mn, err2 = read_line(self, sock)
    if not mn then
        return nil, err2
    end
    if mn ~= "MN" then
        return fatal(self, "bad reply: expected MN, got " .. sub(mn, 1, 60))
    end
    return res, err
end

meta_parse = function(self, sock, line, b64)
    local err
    local status = sub(line, 1, 2)
    if not META_STATUS[status] or (#line > 2 and byte(line, 3) ~= 32) then
        if is_server_error(line) then
            return nil, line
        end
        return fatal(self, "bad reply: " .. sub(line, 1, 200))
    end
    local res = { status = status, flags = {} }
    local rest = sub(line, 4)
    if status == "VA" then
        local len
        len, rest = match(rest, "^(%d+)(.*)$")
        local n = len and driver.parse_len(len, self.max_value_size)
        if not n then
            return fatal(self, "bad VA size: " .. sub(line, 1, 60))
        end
        local data
        data, err = read_data(self, sock, n)
        if not data then
            return nil, err
        end
        res.value = data
    end
    local rflags = res.flags
    for tok in gmatch(rest, "%S+") do
        local f = sub(tok, 1, 1)
        local v = sub(tok, 2)
        rflags[f] = v ~= "" and v or true
    end
    if rflags.k and rflags.k ~= true then
        if b64 then
            rflags.k = decode_base64(rflags.k) or rflags.k
        else
            rflags.k = self.unescape_key(rflags.k)
        end
    end
    return res
end

local function meta_cmd(self, cmd, key, flags, value)
    local fl, err = parse_flags(flags)
    if not fl then
        return nil, err
    end
    local k, b64 = meta_key(self, key, fl)
    if not k then
        return nil, b64
    end
    local req = { cmd, " ", k }
    if value ~= nil then
        req[4] = " "
        req[5] = value_size(value)
    end
    for i = 1, #fl do
        req[#req + 1] = " "
        req[#req + 1] = fl[i]
    end
    req[#req + 1] = "\r\n"
    if value ~= nil then
        req[#req + 1] = value
        req[#req + 1] = "\r\n"
    end
    local quiet = false
    for i = 1, #fl do
        if fl[i] == "q" then
            quiet = cmd
            req[#req + 1] = "mn\r\n"
            break
        end
    end
    return run(self, req, meta_reader, b64, quiet)
end

function _M.meta_get(self, key, flags)
    return meta_cmd(self, "mg", key, flags)
end

function _M.meta_set(self, key, value, flags)
    local tv = type(value)
    if tv == "number" or tv == "boolean" then
        value = tostring(value)
    elseif tv ~= "string" and tv ~= "table" then
        return nil, "bad value type: " .. tv
    end
    return meta_cmd(self, "ms", key, flags, value)
end

function _M.meta_delete(self, key, flags)
    return meta_cmd(self, "md", key, flags)
end

function _M.meta_arithmetic(self, key, flags)
    return meta_cmd(self, "ma", key, flags)
end

function _M.meta_noop(self)
    return run(self, "mn\r\n", meta_reader, false)
end

--------------------------------------------------------------------------
-- pipelining: commands queue their request and reply reader; commit sends
-- everything in one write and reads the replies in order. Each result is
-- an array of that command's return values ({1}, {nil, "NOT_STORED"},
-- {value, flags}, ...), with the count in field n.

function _M.init_pipeline(self, n)
    local sock, err = check(self)
    if not sock then
        return nil, err
    end
    n = tonumber(n) or 4
    self._pipe = { n = 0, reqs = new_tab(n, 0), readers = new_tab(n, 0),
                   a1 = new_tab(n, 0), a2 = new_tab(n, 0) }
    return 1
end

function _M.cancel_pipeline(self)
    self._pipe = nil
end

local function pack(...)
    return { n = select("#", ...), ... }
end

function _M.commit_pipeline(self)
    local pipe = rawget(self, "_pipe")
    if not pipe then
        return nil, "no pipeline"
    end
    self._pipe = nil
    local sock, err = check(self)
    if not sock then
        return nil, err
    end
    local n = pipe.n
    if n == 0 then
        return {}
    end
    local bytes
    bytes, err = sock:send(pipe.reqs)
    if not bytes then
        return fatal(self, err)
    end
    local results = new_tab(n, 0)
    local readers, a1, a2 = pipe.readers, pipe.a1, pipe.a2
    for i = 1, n do
        local r = pack(readers[i](self, sock, a1[i] or nil, a2[i] or nil))
        if self.state == STATE_FATAL then
            return nil, r[2]
        end
        if readers[i] == single_get_reader then
            -- shape it like get()/gets(): value, flags[, cas], err
            if r[1] == "value" then
                if a1[i] then
                    r = { r[2], r[3], r[4], n = 3 }
                else
                    r = { r[2], r[3], n = 2 }
                end
            elseif a1[i] then
                r = { nil, nil, nil, r[2], n = 4 }
            else
                r = { nil, nil, r[2], n = 3 }
            end
        end
        results[i] = r
    end
    return results
end

return _M
