-- resty.redis for cosocket: a drop-in for lua-resty-redis (same names, arguments and return
-- values), with RESP3 (red:hello(3)). Written for this project; see redis/README.md for the
-- reply mapping and the differences.

local driver = require "resty.cosocket.driver"

local ngx = ngx
local tcp = ngx.socket.tcp
local null = ngx.null
local byte, sub, find, lower, str_fmt = string.byte, string.sub, string.find, string.lower, string.format
local floor = math.floor
local type, tonumber, tostring, select = type, tonumber, tostring, select
local setmetatable, rawget, rawset, pairs, error = setmetatable, rawget, rawset, pairs, error
local tab_remove, concat = table.remove, table.concat

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new or type(new_tab) ~= "function" then
    new_tab = function() return {} end
end

local _M = { _VERSION = "0.1.0" }

-- redis' own limits: proto-max-bulk-len is 512 MB; no sane reply has more elements than this
local MAX_BULK = 512 * 1024 * 1024
local MAX_ELEMS = 1024 * 1024 * 1024
local PREALLOC_MAX = 1024
local BIG_INT = 1e14            -- tostring() switches to %.14g exponents from here
local MAX_INT = 2 ^ 63

-- commands allowed on a RESP2 connection in subscribed state
local SUB_ALLOWED = {
    subscribe = true, psubscribe = true, ssubscribe = true,
    unsubscribe = true, punsubscribe = true, sunsubscribe = true,
    ping = true, quit = true, reset = true,
}
local MESSAGE_KINDS = { message = true, pmessage = true, smessage = true }
-- command names in lower case, memoized (the hot path looks at every command's name)
local LOWER = setmetatable({}, { __index = function(t, k)
    local v = lower(k)
    t[k] = v
    return v
end })

local mt

function _M.new(self)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    -- every field the methods set is here from the start, false when unset: storing nil
    -- into a key the table lacks adds it, and the table's next resize drops it again, so
    -- clearing absent fields on every connect cost three table resizes per connect
    return setmetatable({ _sock = sock, _subscribed = false, _nchan = 0, _npat = 0,
                          _resp = 2, _rbuf = "", _rpos = 1, _in_multi = false,
                          _buffered = false, _reqs = false }, mt)
end

function _M.register_module_prefix(mod)
    _M[mod] = function(self)
        self._module_prefix = mod
        return self
    end
end

function _M.set_timeout(self, timeout)
    local sock = rawget(self, "_sock")
    if not sock then
        error("not initialized", 2)
    end
    sock:settimeout(timeout)
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    local sock = rawget(self, "_sock")
    if not sock then
        error("not initialized", 2)
    end
    sock:settimeouts(connect_timeout, send_timeout, read_timeout)
end

local do_cmd

-- The pool a connection goes to when the caller names none: "<host>:<port>" or
-- "<unix-socket-path>", then "/<username>" and "/<db>" when given, then for TLS
-- "/ssl/<server_name>/<verify>[/<client cert>]" (<verify>: "verify", "noverify" or "default"
-- for no ssl_verify, i.e. the runtime's default; the client certificate as the md5 of its PEM
-- text, or its object's address). So a plain connection never goes to an ssl connect, nor a
-- TLS one checked against another name, verification setting or client identity.
function _M.pool_name(host, port, opts)
    local pool = port and (host .. ":" .. port) or host
    if not opts then
        return pool
    end
    local password = opts.password
    if password == "" then password = nil end
    local username = password and opts.username or nil
    if username and username ~= "" then
        pool = pool .. "/" .. username
    end
    if opts.db ~= nil then
        pool = pool .. "/" .. tostring(opts.db)
    end
    if opts.ssl then
        pool = pool .. "/" .. driver.tls_identity(opts, "/")
    end
    return pool
end

local function check_tls_opts(opts)
    local v = opts.server_name
    if v ~= nil and type(v) ~= "string" then
        return "bad server_name option: string expected, got " .. type(v)
    end
    local cert, key = opts.ssl_client_cert, opts.ssl_client_priv_key
    if (cert == nil) ~= (key == nil) then
        return "ssl_client_cert and ssl_client_priv_key must be given together"
    end
    return nil
end

function _M.connect(self, host, port_or_opts, opts)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local unix, port
    unix, port, opts = driver.connect_args(host, port_or_opts, opts)

    local username, password, db, ssl
    if opts then
        password = opts.password
        if password == "" then password = nil end
        username = password and opts.username or nil
        if username == "" then username = nil end
        db = opts.db
        ssl = opts.ssl and true or false
        if ssl then
            local why = check_tls_opts(opts)
            if why then
                return nil, why
            end
        end
        if (username or db or ssl) and not opts.pool then
            -- a connection authenticated as a user, on a database or over TLS gets a pool
            -- of its own (see pool_name)
            local copy = {}
            for k, v in pairs(opts) do copy[k] = v end
            copy.pool = _M.pool_name(host, port, opts)
            opts = copy
        end
    end

    self._subscribed, self._nchan, self._npat = false, 0, 0
    self._in_multi, self._buffered, self._reqs, self._resp = false, false, false, 2
    self._rbuf, self._rpos = "", 1

    local ok, err = driver.connect_sock(sock, host, unix, port, opts)
    if not ok then
        return nil, err
    end

    local fresh = sock:getreusedtimes() == 0
    if ssl and fresh then
        -- a pooled TLS connection is still encrypted: only a new one shakes hands
        local hok, herr = driver.ssl_handshake(sock, opts)
        if not hok then
            sock:close()
            return nil, herr
        end
    end

    if (password or db) and fresh then
        local res
        if password then
            if username then
                res, err = do_cmd(self, "auth", username, password)
            else
                res, err = do_cmd(self, "auth", password)
            end
            if not res then
                sock:close()
                return nil, "failed to authenticate: " .. tostring(err)
            end
        end
        if db then
            res, err = do_cmd(self, "select", db)
            if not res then
                sock:close()
                return nil, "failed to select database " .. tostring(db) .. ": " .. tostring(err)
            end
        end
    end
    return ok
end

function _M.set_keepalive(self, ...)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    if rawget(self, "_subscribed") then
        return nil, "subscribed state"
    end
    if rawget(self, "_in_multi") then
        return nil, "in transaction"
    end
    if self._rpos <= #self._rbuf then
        -- bytes the server sent that no command asked for (as the socket's own check)
        return nil, "unread data in buffer"
    end
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    return driver.get_reused_times(rawget(self, "_sock"))
end

function _M.close(self)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    self._subscribed = false
    self._rbuf, self._rpos = "", 1
    return sock:close()
end

---------------------------------------------------------------------------------------------
-- reading replies

-- Closes the connection: after a timeout in the middle of a reply or a malformed reply the
-- stream position is unknown, so the connection must never be reused.
local function fatal(self, sock, err)
    self._rbuf, self._rpos = "", 1
    sock:close()
    return nil, err
end

local function bad(self, sock, what, line)
    return fatal(self, sock, "protocol error: " .. what .. ": " .. driver.excerpt(line))
end

local function read_len(line)
    -- a whole-number length after the type byte, "-1" allowed (no pattern match: hot path)
    local n = tonumber(sub(line, 2))
    if not n or n ~= floor(n) or n < -1 then
        return nil
    end
    return n
end

-- Replies are read through a buffer of this object's own: sock:receiveany() takes whatever has
-- arrived (a whole GET reply, or a whole pipeline's, in one call) and lines and bulk strings are
-- cut from it in Lua. Fields: _rbuf (a string), _rpos (the index of its first unread byte).
local RECV_MAX = 65536
local MAX_LINE = 16 * 1024 * 1024     -- a status/error/number line longer than this is refused

-- the line at buf[pos..e] (e: its LF) without its CRLF (a lone LF ends a line too, as
-- receive("*l") does); the buffer position moves past it
local function line_at(self, buf, pos, e)
    self._rpos = e + 1
    if e > pos and byte(buf, e - 1) == 13 then
        return sub(buf, pos, e - 2)
    end
    return sub(buf, pos, e - 1)
end

-- a line without its CRLF or LF
local function chomp(line)
    local n = #line
    if n > 1 and byte(line, n - 1) == 13 then
        return sub(line, 1, n - 2)
    end
    return sub(line, 1, n - 1)
end

-- a line longer than one read: the pieces kept in a table (linear in the line's length)
local function read_line_long(self, sock, parts, np, size)
    while true do
        local data, err = sock:receiveany(RECV_MAX)
        if not data then
            -- kept: after a timeout while subscribed the connection stays usable
            self._rbuf, self._rpos = concat(parts, "", 1, np), 1
            return nil, err
        end
        local e = find(data, "\n", 1, true)
        if e then
            np = np + 1
            parts[np] = sub(data, 1, e)
            self._rbuf, self._rpos = data, e + 1
            return chomp(concat(parts, "", 1, np))
        end
        size = size + #data
        np = np + 1
        parts[np] = data
        if size > MAX_LINE then
            self._rbuf, self._rpos = sub(concat(parts, "", 1, np < 3 and np or 3), 1, 64), 1
            return nil, "line too long", true
        end
    end
end

-- the line is not all buffered (at a GET's reply, nothing is): read (a separate function, as
-- a loop in read_line would keep the JIT from compiling its callers' loops)
local function read_line_more(self, sock)
    local buf, pos = self._rbuf, self._rpos
    local data, err = sock:receiveany(RECV_MAX)
    if not data then
        return nil, err                 -- nothing consumed
    end
    local e = find(data, "\n", 1, true)
    if pos > #buf then
        self._rbuf = data
        if e then
            return line_at(self, data, 1, e)
        end
        return read_line_long(self, sock, { data }, 1, #data)
    end
    local head = sub(buf, pos)
    if e then
        self._rbuf, self._rpos = data, e + 1
        return chomp(head .. sub(data, 1, e))
    end
    return read_line_long(self, sock, { head, data }, 2, #head + #data)
end

local function read_line(self, sock)
    local buf, pos = self._rbuf, self._rpos
    local e = find(buf, "\n", pos, true)
    if not e then
        return read_line_more(self, sock)
    end
    return line_at(self, buf, pos, e)
end

-- exactly n bytes; nil, err
local function read_n(self, sock, n)
    local buf, pos = self._rbuf, self._rpos
    local avail = #buf - pos + 1
    if avail >= n then
        self._rpos = pos + n
        return sub(buf, pos, pos + n - 1)
    end
    -- the rest in one exact read (a large value is not grown chunk by chunk)
    local rest, err = sock:receive(n - avail)
    if not rest then
        return nil, err
    end
    self._rbuf, self._rpos = "", 1
    if avail > 0 then
        return sub(buf, pos) .. rest
    end
    return rest
end

local read_value

local function read_bulk(self, sock, line, len)
    if len > MAX_BULK then
        return bad(self, sock, "bulk length too large", line)
    end
    local buf, pos = self._rbuf, self._rpos
    local last = pos + len          -- the index of the CR after the data
    if last + 1 <= #buf then
        -- fast path: the whole string and its CRLF are buffered
        if byte(buf, last) ~= 13 or byte(buf, last + 1) ~= 10 then
            return bad(self, sock, "bulk string not terminated by CRLF", line)
        end
        self._rpos = last + 2
        return sub(buf, pos, last - 1)
    end
    local data, err = read_n(self, sock, len + 2)
    if not data then
        return fatal(self, sock, err)
    end
    if byte(data, len + 1) ~= 13 or byte(data, len + 2) ~= 10 then
        return bad(self, sock, "bulk string not terminated by CRLF", line)
    end
    return sub(data, 1, len)
end

local function read_elems(self, sock, line, n, pairs_of)
    if n > MAX_ELEMS then
        return bad(self, sock, "too many elements", line)
    end
    local total = pairs_of and n * 2 or n
    local vals = new_tab(total < PREALLOC_MAX and total or PREALLOC_MAX, 0)
    for i = 1, total do
        local res, err = read_value(self, sock, false)
        if res == nil then
            return nil, err
        end
        if res == false and err then
            -- an error nested in an array (EXEC, EVAL): a valid value, as {false, err}
            res = { false, err }
        end
        vals[i] = res
    end
    return vals
end

local function to_double(s)
    local d = tonumber(s)
    if d then return d end
    s = lower(s)
    if s == "inf" or s == "+inf" then return math.huge end
    if s == "-inf" then return -math.huge end
    if s == "nan" or s == "-nan" then return 0 / 0 end
    return nil
end

-- Returns value; or false, err for a server error; or nil, err for a transport or protocol
-- error (the connection then is closed, except a read timeout before the first byte of a reply
-- while subscribed). A third result `true` flags a RESP3 push frame.
read_value = function(self, sock, top)
    local line, err, too_long = read_line(self, sock)
    if not line then
        if too_long then
            return bad(self, sock, err, sub(self._rbuf, self._rpos, self._rpos + 40))
        end
        if not (top and err == "timeout" and rawget(self, "_subscribed")) then
            return fatal(self, sock, err)
        end
        return nil, err
    end
    local t = byte(line)
    if t == 36 then                                     -- $ bulk
        local len = read_len(line)
        if not len then return bad(self, sock, "bad bulk length", line) end
        if len < 0 then return null end
        return read_bulk(self, sock, line, len)
    elseif t == 43 then                                 -- + status
        return sub(line, 2)
    elseif t == 58 then                                 -- : integer
        local n = tonumber(sub(line, 2))
        if not n then return bad(self, sock, "bad integer", line) end
        return n
    elseif t == 42 then                                 -- * array
        local n = read_len(line)
        if not n then return bad(self, sock, "bad array length", line) end
        if n < 0 then return null end
        return read_elems(self, sock, line, n, false)
    elseif t == 45 then                                 -- - error
        return false, sub(line, 2)
    -- RESP3
    elseif t == 37 or t == 124 then                     -- % map, | attribute
        local n = read_len(line)
        if not n or n < 0 then return bad(self, sock, "bad map length", line) end
        local kv, rerr = read_elems(self, sock, line, n, true)
        if not kv then return nil, rerr end
        local map = new_tab(0, n < PREALLOC_MAX and n or PREALLOC_MAX)
        for i = 1, 2 * n, 2 do
            map[kv[i]] = kv[i + 1]
        end
        if t == 37 then
            return map
        end
        -- an attribute: out-of-band data about the value that follows
        self._attributes = map
        return read_value(self, sock, false)
    elseif t == 126 then                                -- ~ set
        local n = read_len(line)
        if not n or n < 0 then return bad(self, sock, "bad set length", line) end
        return read_elems(self, sock, line, n, false)
    elseif t == 62 then                                 -- > push
        local n = read_len(line)
        if not n or n < 0 then return bad(self, sock, "bad push length", line) end
        local vals, rerr = read_elems(self, sock, line, n, false)
        if not vals then return nil, rerr end
        return vals, nil, true
    elseif t == 95 then                                 -- _ null
        if line ~= "_" then return bad(self, sock, "bad null", line) end
        return null
    elseif t == 44 then                                 -- , double
        local d = to_double(sub(line, 2))
        if not d then return bad(self, sock, "bad double", line) end
        return d
    elseif t == 35 then                                 -- # boolean
        if line == "#t" then return true end
        if line == "#f" then return false end
        return bad(self, sock, "bad boolean", line)
    elseif t == 40 then                                 -- ( big number, kept exact as a string
        if not line:find("^%([-+]?%d+$") then return bad(self, sock, "bad big number", line) end
        return sub(line, 2)
    elseif t == 61 or t == 33 then                      -- = verbatim, ! blob error
        local len = read_len(line)
        if not len or len < 0 then return bad(self, sock, "bad length", line) end
        local data, rerr = read_bulk(self, sock, line, len)
        if not data then return nil, rerr end
        if t == 33 then
            return false, data
        end
        -- "txt:" / "mkd:" format prefix dropped
        if sub(data, 4, 4) == ":" then
            return sub(data, 5)
        end
        return data
    end
    if line == "" then
        return bad(self, sock, "empty reply line", line)
    end
    return bad(self, sock, "unknown reply type", line)
end

---------------------------------------------------------------------------------------------
-- requests

-- "*<n+1>\r\n$<#name>\r\n<name>\r\n": a command's first line and its name, per argument count
-- (up to HEAD_CACHE) and name
local HEAD_CACHE = 16
local HEADS = {}
for i = 0, HEAD_CACHE do HEADS[i] = {} end

local function head(name, n)
    local t = HEADS[n]
    local h = t and t[name]
    if not h then
        h = "*" .. (n + 1) .. "\r\n$" .. #name .. "\r\n" .. name .. "\r\n"
        if t then t[name] = h end
    end
    return h
end

-- "$<len>\r\n" for the lengths of short strings
local LEN_CACHE = 1024
local LENS = new_tab(LEN_CACHE, 0)
for i = 0, LEN_CACHE do LENS[i] = "$" .. i .. "\r\n" end

local function len_line(len)
    return LENS[len] or ("$" .. len .. "\r\n")
end

-- requests up to this size are sent as one string, longer ones as a table of pieces (a large
-- value is not copied)
local CONCAT_MAX = 16 * 1024
local PIPE_CONCAT_MAX = 256     -- pipelines of up to this many short requests: one string

local function to_arg(arg, i, name)
    local typ = type(arg)
    if typ == "string" then
        return arg
    end
    if typ == "number" then
        if arg == floor(arg) and (arg >= BIG_INT or arg <= -BIG_INT)
           and arg < MAX_INT and arg > -MAX_INT then
            return str_fmt("%.0f", arg)
        end
        return tostring(arg)
    end
    if typ == "table" then
        error("bad argument #" .. i .. " to '" .. name .. "': table given", 4)
    end
    return tostring(arg)
end

-- the request for name and the n arguments in args: a string, or a table of strings
local function gen_req(name, args, n)
    local req = new_tab(1 + 3 * n, 0)
    req[1] = head(name, n)
    local total = #req[1]
    local j = 2
    for i = 1, n do
        local arg = to_arg(args[i], i, name)
        local len = #arg
        req[j], req[j + 1], req[j + 2] = len_line(len), arg, "\r\n"
        j = j + 3
        total = total + len
    end
    if total <= CONCAT_MAX then
        return concat(req, "", 1, j - 1)
    end
    return req
end

-- the same for one or two arguments given directly (GET, SET ...): no table
local function gen_req1(name, a1)
    a1 = to_arg(a1, 1, name)
    local l1 = #a1
    if l1 <= CONCAT_MAX then
        return head(name, 1) .. len_line(l1) .. a1 .. "\r\n"
    end
    return { head(name, 1), len_line(l1), a1, "\r\n" }
end

local function gen_req2(name, a1, a2)
    a1, a2 = to_arg(a1, 1, name), to_arg(a2, 2, name)
    local l1, l2 = #a1, #a2
    if l1 + l2 <= CONCAT_MAX then
        return head(name, 2) .. len_line(l1) .. a1 .. "\r\n" .. len_line(l2) .. a2 .. "\r\n"
    end
    return { head(name, 2), len_line(l1), a1, "\r\n", len_line(l2), a2, "\r\n" }
end

local function buffer_push(self, msg)
    local buf = rawget(self, "_buffered")
    if not buf then
        buf = {}
        self._buffered = buf
    end
    buf[#buf + 1] = msg
end

local function track_sub(self, res)
    if type(res) ~= "table" then return end
    local kind = res[1]
    if kind == "subscribe" or kind == "ssubscribe" then
        self._nchan = self._nchan + 1
    elseif kind == "psubscribe" then
        self._npat = self._npat + 1
    elseif kind == "unsubscribe" or kind == "sunsubscribe" then
        if self._nchan > 0 then self._nchan = self._nchan - 1 end
    elseif kind == "punsubscribe" then
        if self._npat > 0 then self._npat = self._npat - 1 end
    else
        return
    end
    if res[3] == 0 then
        self._subscribed = false
    end
end

-- Reads the reply to a command; messages and RESP3 pushes that arrive first are buffered
-- for read_reply. want_kind: for (un)subscribe, the push/array kind that answers it.
local function read_reply_for(self, sock, want_kind)
    local res, err, push = read_value(self, sock, false)
    if type(res) ~= "table" then
        if err ~= nil then
            return res, err
        end
        return res
    end
    local kind = res[1]
    if want_kind and kind == want_kind then
        return res
    end
    if push or (rawget(self, "_subscribed") and MESSAGE_KINDS[kind]) then
        buffer_push(self, res)
        -- no loop here: a loop would keep the JIT from compiling the callers' loops
        return read_reply_for(self, sock, want_kind)
    end
    return res
end

-- what a command's reply changes in the connection's state
local AFTER = {
    multi = function(self, res)
        if res then self._in_multi = true end
    end,
    exec = function(self) self._in_multi = false end,
    discard = function(self) self._in_multi = false end,
    hello = function(self, res)
        if type(res) == "table" then
            local proto = res.proto or res[6]
            if proto then self._resp = tonumber(proto) end
        end
    end,
    reset = function(self, res)
        if res then
            self._subscribed, self._nchan, self._npat, self._in_multi, self._resp =
                false, 0, 0, false, 2
        end
    end,
}

-- Sends the request of command name and reads its reply. The results are those of the
-- reply: one value, or two for a server error (false, err) or a failure (nil, err), as
-- lua-resty-redis; in a pipeline the request is queued and nothing is returned.
local function run_req(self, sock, name, lname, req)
    local reqs = rawget(self, "_reqs")
    if reqs then
        reqs[#reqs + 1] = req
        return
    end

    local bytes, err = sock:send(req)
    if not bytes then
        sock:close()
        return nil, err
    end
    local res
    res, err = read_reply_for(self, sock, nil)
    local after = AFTER[lname]
    if after then
        after(self, res)
    end
    if err ~= nil then
        return res, err
    end
    return res
end

-- the command's name with the module prefix of red:json() applied, its lower case; or
-- nil, nil, err when it cannot run now
local function cmd_name(self, name)
    local prefix = rawget(self, "_module_prefix")
    if prefix then
        self._module_prefix = nil
        name = prefix .. "." .. name
    end
    local lname = LOWER[name]
    if rawget(self, "_subscribed") and rawget(self, "_resp") == 2 and not SUB_ALLOWED[lname] then
        return nil, nil, "cannot run '" .. name .. "' in subscribed state: only (p)subscribe, "
                         .. "(p)unsubscribe, ping, quit and reset are allowed"
    end
    return name, lname
end

local function do_cmd_args(self, name, args, nargs)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local lname, err
    name, lname, err = cmd_name(self, name)
    if not name then
        return nil, err
    end
    return run_req(self, sock, name, lname, gen_req(name, args, nargs))
end

do_cmd = function(self, name, ...)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local lname, err
    if rawget(self, "_module_prefix") == nil and not rawget(self, "_subscribed") then
        lname = LOWER[name]
    else
        name, lname, err = cmd_name(self, name)
        if not name then
            return nil, err
        end
    end
    local n = select("#", ...)
    local req
    if n == 1 then
        req = gen_req1(name, ...)
    elseif n == 2 then
        req = gen_req2(name, ...)
    elseif n == 0 then
        req = head(name, 0)
    else
        req = gen_req(name, { ... }, n)
    end
    return run_req(self, sock, name, lname, req)
end

function _M.read_reply(self)
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local buf = rawget(self, "_buffered")
    if buf then
        local msg = tab_remove(buf, 1)
        if #buf == 0 then self._buffered = false end
        return msg
    end
    if not rawget(self, "_subscribed") and rawget(self, "_resp") ~= 3 then
        return nil, "not subscribed"
    end
    local res, err = read_value(self, sock, true)
    track_sub(self, res)
    return res, err
end

local function subscribe_cmd(cmd, unsub)
    local count_field = (cmd == "punsubscribe") and "_npat" or "_nchan"
    return function(self, ...)
        local sock = rawget(self, "_sock")
        if not sock then
            return nil, "not initialized"
        end
        if rawget(self, "_reqs") then
            return nil, "cannot " .. cmd .. " in a pipeline"
        end
        local nargs = select("#", ...)
        local nreplies = nargs
        if unsub then
            if not rawget(self, "_subscribed") then
                return nil, "not subscribed"
            end
            if nargs == 0 then
                nreplies = rawget(self, count_field)
                if nreplies < 1 then nreplies = 1 end
            end
        elseif nargs == 0 then
            error("wrong number of arguments for '" .. cmd .. "'", 2)
        end
        local was = rawget(self, "_subscribed")
        if not unsub then
            self._subscribed = true
        end
        local bytes, err = sock:send(gen_req(cmd, { ... }, nargs))
        if not bytes then
            sock:close()
            return nil, err
        end
        local results = nreplies > 1 and new_tab(nreplies, 0) or nil
        local res
        for i = 1, nreplies do
            res, err = read_reply_for(self, sock, cmd)
            if not res then
                if res == false then
                    self._subscribed = was
                end
                return res, err
            end
            track_sub(self, res)
            if results then results[i] = res end
        end
        if unsub then
            return results or res, nil   -- two values, as lua-resty-redis' unsubscribe
        end
        return results or res
    end
end

_M.subscribe = subscribe_cmd("subscribe", false)
_M.psubscribe = subscribe_cmd("psubscribe", false)
_M.ssubscribe = subscribe_cmd("ssubscribe", false)
_M.unsubscribe = subscribe_cmd("unsubscribe", true)
_M.punsubscribe = subscribe_cmd("punsubscribe", true)
_M.sunsubscribe = subscribe_cmd("sunsubscribe", true)

function _M.hmset(self, hashname, ...)
    if select("#", ...) == 1 then
        local t = ...
        if type(t) ~= "table" then
            error("table expected, got " .. type(t), 2)
        end
        local args, n = { hashname }, 1
        for k, v in pairs(t) do
            args[n + 1], args[n + 2] = k, v
            n = n + 2
        end
        return do_cmd_args(self, "hmset", args, n)
    end
    return do_cmd(self, "hmset", hashname, ...)
end

function _M.array_to_hash(self, t)
    local n = #t
    local h = new_tab(0, n / 2)
    for i = 1, n, 2 do
        h[t[i]] = t[i + 1]
    end
    return h
end

function _M.init_pipeline(self, n)
    self._reqs = new_tab(n or 4, 0)
end

function _M.cancel_pipeline(self)
    self._reqs = false
end

function _M.commit_pipeline(self)
    local reqs = rawget(self, "_reqs")
    if not reqs then
        return nil, "no pipeline"
    end
    self._reqs = false
    local sock = rawget(self, "_sock")
    if not sock then
        return nil, "not initialized"
    end
    local n = #reqs
    if n == 0 then
        return {}
    end
    -- short requests are strings: one string for the socket (a large value stays a piece)
    local data = reqs
    if n <= PIPE_CONCAT_MAX then
        local all_strings = true
        for i = 1, n do
            if type(reqs[i]) ~= "string" then
                all_strings = false
                break
            end
        end
        if all_strings then
            data = concat(reqs, "", 1, n)
        end
    end
    local bytes, err = sock:send(data)
    if not bytes then
        sock:close()
        return nil, err
    end
    local vals = new_tab(n, 0)
    for i = 1, n do
        local res, rerr = read_reply_for(self, sock, nil)
        if res == nil then
            return nil, rerr
        end
        if res == false and rerr then
            res = { false, rerr }
        end
        vals[i] = res
    end
    return vals
end

-- RESP3 attributes (the `|` frame) seen with the last reply, or nil
function _M.get_attributes(self)
    return rawget(self, "_attributes")
end

-- Any other name is a redis command: red:xadd(...), red:object("encoding", k) ... The method is
-- made on first use and kept in _M, so later calls find it by a plain table lookup.
setmetatable(_M, {
    __index = function(_, name)
        if type(name) ~= "string" or sub(name, 1, 1) == "_" then
            return nil
        end
        local f = function(self, ...)
            return do_cmd(self, name, ...)
        end
        rawset(_M, name, f)
        return f
    end,
})
mt = { __index = _M }

return _M
