-- resty.mysql for cosocket: a MySQL / MariaDB client, drop-in for lua-resty-mysql (same
-- method names, arguments and return values). Written for this project from the protocol
-- documentation; see mysql/README.md for the type mapping and the differences.
--
-- Connection safety: a timeout, a transport error, a malformed or oversized packet or a
-- server that killed the connection closes the socket; the object then answers
-- nil, "not connected"/"closed" until connect() is called again, so a connection that is
-- mid-result never goes back to the pool. set_keepalive() is refused unless the
-- connection is idle (STATE_CONNECTED: every result of the last command was read).

local ngx = ngx
local tcp = ngx.socket.tcp
local null = ngx.null
local sha1_bin = ngx.sha1_bin
local bit = require "bit"
local band, bor, bxor = bit.band, bit.bor, bit.bxor
local byte, char, sub, find, rep = string.byte, string.char, string.sub, string.find, string.rep
local concat = table.concat
local type, tonumber, tostring, setmetatable, rawget, error, pairs =
    type, tonumber, tostring, setmetatable, rawget, error, pairs
local floor = math.floor

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new or type(new_tab) ~= "function" then
    new_tab = function() return {} end
end

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

-- connection states
local STATE_CONNECTED = 1       -- idle: nothing in flight, may be pooled
local STATE_COMMAND_SENT = 2    -- a command was sent and its results are not all read
local STATE_NAMES = { [STATE_CONNECTED] = "connected", [STATE_COMMAND_SENT] = "command sent" }

local COM_QUIT = 0x01
local COM_QUERY = 0x03

-- capability flags
local CLIENT_LONG_PASSWORD = 0x1
local CLIENT_FOUND_ROWS = 0x2
local CLIENT_LONG_FLAG = 0x4
local CLIENT_CONNECT_WITH_DB = 0x8
local CLIENT_PROTOCOL_41 = 0x200
local CLIENT_SSL = 0x800
local CLIENT_TRANSACTIONS = 0x2000
local CLIENT_SECURE_CONNECTION = 0x8000
local CLIENT_MULTI_STATEMENTS = 0x10000
local CLIENT_MULTI_RESULTS = 0x20000
local CLIENT_PS_MULTI_RESULTS = 0x40000
local CLIENT_PLUGIN_AUTH = 0x80000

local SERVER_MORE_RESULTS_EXISTS = 8

local MAX_CHUNK = 0xffffff                     -- payload bytes per wire packet
local DEFAULT_MAX_PACKET = 1024 * 1024         -- as lua-resty-mysql: 1 MB
local CLIENT_MAX_PACKET = 0x40000000           -- what the handshake announces (1 GB)
local TWO53 = 2 ^ 53

-- default collation id of each character set name (the handshake's charset byte)
local CHARSETS = {
    big5 = 1, dec8 = 3, cp850 = 4, hp8 = 6, koi8r = 7, latin1 = 8, latin2 = 9, swe7 = 10,
    ascii = 11, ujis = 12, sjis = 13, hebrew = 16, tis620 = 18, euckr = 19, koi8u = 22,
    gb2312 = 24, greek = 25, cp1250 = 26, gbk = 28, latin5 = 30, armscii8 = 32, utf8 = 33,
    utf8mb3 = 33, ucs2 = 35, cp866 = 36, keybcs2 = 37, macce = 38, macroman = 39, cp852 = 40,
    latin7 = 41, utf8mb4 = 45, cp1251 = 51, utf16 = 54, utf16le = 56, cp1256 = 57,
    cp1257 = 59, utf32 = 60, binary = 63, geostd8 = 92, cp932 = 95, eucjpms = 97,
    gb18030 = 248,
}

-- pool name -> { server_ver, protocol_ver, server_capabilities, server_lang }: what the
-- handshake taught us, for connections taken back from the pool (they skip it)
local pool_info = setmetatable({}, { __mode = "" })

--------------------------------------------------------------------------
-- byte helpers

local function u16(s, i)
    local a, b = byte(s, i, i + 1)
    return a + b * 256
end

local function u24(s, i)
    local a, b, c = byte(s, i, i + 2)
    return a + b * 256 + c * 65536
end

local function u32(s, i)
    local a, b, c, d = byte(s, i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

local function p16(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff))
end

local function p24(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff), band(floor(n / 65536), 0xff))
end

local function p32(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff), band(floor(n / 65536), 0xff),
                band(floor(n / 16777216), 0xff))
end

-- a length-encoded integer at i: value, next position; nil when it runs past the end
-- (or is the NULL marker 0xfb, returned as value false)
local function lenenc(s, i, len)
    local c = byte(s, i)
    if not c then return nil end
    if c < 0xfb then return c, i + 1 end
    if c == 0xfb then return false, i + 1 end
    if c == 0xfc then
        if i + 2 > len then return nil end
        return u16(s, i + 1), i + 3
    end
    if c == 0xfd then
        if i + 3 > len then return nil end
        return u24(s, i + 1), i + 4
    end
    if c == 0xfe then
        if i + 8 > len then return nil end
        return u32(s, i + 1) + u32(s, i + 5) * 4294967296, i + 9
    end
    return nil      -- 0xff is not a length
end

local function lenenc_str(s, i, len)
    local n, pos = lenenc(s, i, len)
    if not n then return nil, pos end       -- nil: malformed; false: NULL
    local e = pos + n - 1
    if e > len then return nil end
    return sub(s, pos, e), e + 1
end

local function cstr(s, i)
    local e = find(s, "\0", i, true)
    if not e then return nil end
    return sub(s, i, e - 1), e + 1
end

--------------------------------------------------------------------------
-- packets

local function fatal(self, err)
    local sock = rawget(self, "sock")
    self.state = nil
    if sock then
        sock:close()
    end
    return nil, err
end

-- one logical packet (wire packets of 0xffffff bytes joined): payload or nil, err.
-- The size is checked against max_packet_size before the payload is read.
local function recv_packet(self)
    local sock = self.sock
    local parts, total, n = nil, 0, 0
    local limit = self._max_packet_size
    while true do
        local hdr, err = sock:receive(4)
        if not hdr then
            return fatal(self, "failed to receive packet header: " .. err)
        end
        local len = u24(hdr, 1)
        local seq = byte(hdr, 4)
        local want = (self._seq + 1) % 256
        if seq ~= want then
            return fatal(self, "bad packet sequence number: got " .. seq .. ", expected " .. want)
        end
        self._seq = seq
        total = total + len
        if total > limit then
            return fatal(self, "packet size too big: " .. total .. " bytes (max_packet_size is "
                         .. limit .. ")")
        end
        local data = ""
        if len > 0 then
            data, err = sock:receive(len)
            if not data then
                return fatal(self, "failed to read packet content: " .. err)
            end
        end
        if len < MAX_CHUNK and not parts then
            return data
        end
        parts = parts or {}
        n = n + 1
        parts[n] = data
        if len < MAX_CHUNK then
            return concat(parts)
        end
    end
end

-- send payload as one logical packet (split in 0xffffff chunks, an empty packet ends a
-- payload that is an exact multiple of it)
local function send_packet(self, payload)
    local n = #payload
    local out, k, pos = {}, 0, 1
    repeat
        local chunk = n - pos + 1
        if chunk > MAX_CHUNK then chunk = MAX_CHUNK end
        local seq = (self._seq + 1) % 256
        self._seq = seq
        out[k + 1] = p24(chunk) .. char(seq)
        out[k + 2] = chunk == n and payload or sub(payload, pos, pos + chunk - 1)
        k = k + 2
        pos = pos + chunk
    until chunk < MAX_CHUNK
    local bytes, err = self.sock:send(out)
    if not bytes then
        return fatal(self, "failed to send packet: " .. err)
    end
    return bytes
end

-- an ERR packet: message, errno, sqlstate
local function parse_err(data)
    local len = #data
    if len < 3 then return "malformed error packet", nil, nil end
    local errno = u16(data, 2)
    local sqlstate
    local pos = 4
    if byte(data, 4) == 35 and len >= 9 then   -- '#'
        sqlstate = sub(data, 5, 9)
        pos = 10
    end
    return sub(data, pos), errno, sqlstate
end

-- an OK packet: table or nil
local function parse_ok(data)
    local len = #data
    local affected, insert_id, pos
    affected, pos = lenenc(data, 2, len)
    if not affected then return nil end
    insert_id, pos = lenenc(data, pos, len)
    if not insert_id or pos + 3 > len then return nil end
    local res = {
        affected_rows = affected,
        insert_id = insert_id,
        server_status = u16(data, pos),
        warning_count = u16(data, pos + 2),
    }
    -- the info text: a length-encoded string (MariaDB, MySQL), else the rest of the packet
    local msg, e = lenenc_str(data, pos + 4, len)
    if not msg or e ~= len + 1 then
        msg = sub(data, pos + 4)
    end
    if msg ~= "" then
        res.message = msg
    end
    return res
end

local function is_eof(data)
    return byte(data, 1) == 0xfe and #data < 9
end

--------------------------------------------------------------------------
-- types

local function to_int(v)
    return tonumber(v)
end

-- BIGINT: a number when it is exact as a double, else the decimal string
local function to_bigint(v)
    local n = tonumber(v)
    if n and n < TWO53 and n > -TWO53 then
        return n
    end
    return v
end

local CONVERTERS = {
    [0x01] = to_int,     -- TINY
    [0x02] = to_int,     -- SHORT
    [0x03] = to_int,     -- LONG
    [0x04] = to_int,     -- FLOAT
    [0x05] = to_int,     -- DOUBLE
    [0x08] = to_bigint,  -- LONGLONG
    [0x09] = to_int,     -- INT24
    [0x0d] = to_int,     -- YEAR
    -- DECIMAL (0x00) and NEWDECIMAL (0xf6) stay strings: exact
}

--------------------------------------------------------------------------
-- authentication

local function xor_str(a, b)
    local out = new_tab(#a, 0)
    for i = 1, #a do
        out[i] = char(bxor(byte(a, i), byte(b, i)))
    end
    return concat(out)
end

local function native_password(password, scramble)
    if password == "" then
        return ""
    end
    local s1 = sha1_bin(password)
    local s2 = sha1_bin(s1)
    return xor_str(s1, sha1_bin(scramble .. s2))
end

local AUTH = {
    mysql_native_password = function(self, password, scramble)
        return native_password(password, sub(scramble, 1, 20))
    end,
    mysql_clear_password = function()
        return nil, "mysql_clear_password is refused without TLS"
    end,
}

-- MariaDB's ed25519 plugin: the password is the signing seed (mysql/resty/mysql/ed25519.lua)
AUTH.client_ed25519 = function(self, password, scramble)
    return require("resty.mysql.ed25519").sign(password, scramble)
end

_M._auth_plugins = AUTH

local function auth_response(self, plugin, password, scramble)
    local f = AUTH[plugin]
    if not f then
        return nil, "unsupported authentication plugin: " .. tostring(plugin)
    end
    return f(self, password, scramble)
end

-- after the handshake response: OK, ERR, auth switch (0xfe) or more data (0x01)
local function auth_loop(self, plugin, password, scramble)
    for _ = 1, 8 do
        local data, err = recv_packet(self)
        if not data then
            return nil, err
        end
        local first = byte(data, 1)
        if first == 0x00 then
            return true
        elseif first == 0xff then
            local msg, errno, sqlstate = parse_err(data)
            fatal(self, msg)
            return nil, msg, errno, sqlstate
        elseif first == 0xfe then
            if #data == 1 then
                return fatal(self, "old password authentication (mysql_old_password) "
                             .. "is not supported")
            end
            local name, pos = cstr(data, 2)
            if not name then
                return fatal(self, "malformed auth switch request")
            end
            plugin = name
            scramble = sub(data, pos)
            if byte(scramble, -1) == 0 then
                scramble = sub(scramble, 1, -2)
            end
            self._auth_state = nil
            local resp, e = auth_response(self, plugin, password, scramble)
            if not resp then
                return fatal(self, e)
            end
            local ok, e2 = send_packet(self, resp)
            if not ok then return nil, e2 end
        elseif first == 0x01 then
            local f = AUTH[plugin .. ":more"]
            if not f then
                return fatal(self, "unexpected auth more-data packet for " .. plugin)
            end
            local resp, e = f(self, password, scramble, sub(data, 2))
            if resp == nil then
                return fatal(self, e)
            end
            if resp ~= false then       -- false: nothing to send, read on
                local ok, e2 = send_packet(self, resp)
                if not ok then return nil, e2 end
            end
        else
            return fatal(self, "bad authentication packet: first byte " .. first)
        end
    end
    return fatal(self, "too many authentication round trips")
end

--------------------------------------------------------------------------
-- the API

function _M.new(self)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ sock = sock, _seq = 0, _max_packet_size = DEFAULT_MAX_PACKET }, mt)
end

function _M.set_timeout(self, timeout)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:settimeout(timeout)
end

function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:settimeouts(connect_timeout, send_timeout, read_timeout)
end

local function handshake(self, opts, pool)
    local data, err = recv_packet(self)
    if not data then
        return nil, err
    end
    local first = byte(data, 1)
    if first == 0xff then
        local msg, errno, sqlstate = parse_err(data)
        fatal(self, msg)
        return nil, msg, errno, sqlstate
    end
    if first ~= 10 then
        return fatal(self, "unsupported protocol version " .. tostring(first))
    end
    local len = #data
    local ver, pos = cstr(data, 2)
    if not ver or pos + 30 > len then
        return fatal(self, "malformed handshake packet")
    end
    pos = pos + 4                                  -- connection id
    local scramble = sub(data, pos, pos + 7)
    pos = pos + 9                                  -- 8 bytes + filler
    local caps = u16(data, pos)
    local lang = byte(data, pos + 2)
    local status = u16(data, pos + 3)
    caps = caps + u16(data, pos + 5) * 65536
    local auth_len = byte(data, pos + 7)
    pos = pos + 18                                  -- + 10 reserved bytes
    local plugin = "mysql_native_password"
    if band(caps, CLIENT_SECURE_CONNECTION) ~= 0 then
        local n = auth_len - 8
        if n < 13 then n = 13 end
        local part2 = sub(data, pos, pos + n - 1)
        if byte(part2, -1) == 0 then
            part2 = sub(part2, 1, -2)
        end
        scramble = scramble .. part2
        pos = pos + n
        if band(caps, CLIENT_PLUGIN_AUTH) ~= 0 then
            plugin = cstr(data, pos) or sub(data, pos)
        end
    end
    self._server_ver = ver
    self._protocol_ver = first
    self._server_capabilities = caps
    self._server_lang = lang
    self._server_status = status
    pool_info[pool] = { ver, first, caps, lang }

    if band(caps, CLIENT_PROTOCOL_41) == 0 then
        return fatal(self, "the server does not speak protocol 4.1")
    end

    local user = opts.user or ""
    local password = opts.password or ""
    local database = opts.database or ""
    local charset = CHARSETS[opts.charset or "utf8mb4"]
    if not charset then
        return fatal(self, "unknown charset: " .. tostring(opts.charset))
    end

    local client = bor(CLIENT_LONG_PASSWORD, CLIENT_FOUND_ROWS, CLIENT_LONG_FLAG,
                       CLIENT_PROTOCOL_41, CLIENT_TRANSACTIONS, CLIENT_SECURE_CONNECTION,
                       CLIENT_MULTI_STATEMENTS, CLIENT_MULTI_RESULTS, CLIENT_PS_MULTI_RESULTS,
                       CLIENT_PLUGIN_AUTH)
    if database ~= "" then
        client = bor(client, CLIENT_CONNECT_WITH_DB)
    end
    client = band(client, bor(caps, CLIENT_LONG_PASSWORD, CLIENT_FOUND_ROWS))

    local resp, e = auth_response(self, plugin, password, scramble)
    if not resp then
        -- an unknown default plugin: answer with native; the server switches us
        plugin = "mysql_native_password"
        resp = native_password(password, sub(scramble, 1, 20))
    end
    if #resp > 250 then
        return fatal(self, "auth response too long")
    end
    local pkt = {
        p32(client), p32(CLIENT_MAX_PACKET), char(charset), rep("\0", 23),
        user, "\0", char(#resp), resp,
    }
    if database ~= "" then
        pkt[#pkt + 1] = database
        pkt[#pkt + 1] = "\0"
    end
    if band(caps, CLIENT_PLUGIN_AUTH) ~= 0 then
        pkt[#pkt + 1] = plugin
        pkt[#pkt + 1] = "\0"
    end
    local ok
    ok, e = send_packet(self, concat(pkt))
    if not ok then
        return nil, e
    end
    return auth_loop(self, plugin, password, scramble)
end

function _M.connect(self, opts)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if type(opts) ~= "table" then
        error("bad argument #1 opts: table expected, got " .. type(opts), 2)
    end
    if opts.ssl then
        return nil, "ssl not supported yet"
    end
    local max_packet_size = opts.max_packet_size or DEFAULT_MAX_PACKET
    self._max_packet_size = max_packet_size
    self.compact = opts.compact_arrays and true or false
    self.state = nil

    local database = opts.database or ""
    local user = opts.user or ""
    local pool = opts.pool
    local path = opts.path
    local host = opts.host
    local port = opts.port or 3306
    local ok, err
    local sock_opts = { pool_size = opts.pool_size, backlog = opts.backlog }
    if path then
        pool = pool or (user .. ":" .. database .. ":" .. path)
        sock_opts.pool = pool
        ok, err = sock:connect("unix:" .. path, sock_opts)
    else
        if type(host) ~= "string" then
            return nil, "bad host: string expected, got " .. type(host)
        end
        pool = pool or (user .. ":" .. database .. ":" .. host .. ":" .. port)
        sock_opts.pool = pool
        ok, err = sock:connect(host, port, sock_opts)
    end
    if not ok then
        return nil, "failed to connect: " .. err
    end
    self._pool = pool

    local reused = sock:getreusedtimes()
    if reused and reused > 0 then
        local info = pool_info[pool]
        if info then
            self._server_ver, self._protocol_ver = info[1], info[2]
            self._server_capabilities, self._server_lang = info[3], info[4]
        end
        self.state = STATE_CONNECTED
        return 1
    end

    self._seq = 255              -- the greeting is packet 0
    local res, e, errno, sqlstate = handshake(self, opts, pool)
    if not res then
        return nil, e, errno, sqlstate
    end
    self.state = STATE_CONNECTED
    return 1
end

function _M.set_keepalive(self, ...)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    if self.state ~= STATE_CONNECTED then
        return nil, "cannot be reused in the current connection state: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    self.state = nil
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    return sock:getreusedtimes()
end

function _M.close(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local state = self.state
    self.state = nil
    if state then
        self._seq = 255
        send_packet(self, char(COM_QUIT))
    end
    return sock:close()
end

function _M.server_ver(self)
    return self._server_ver
end

function _M.set_compact_arrays(self, value)
    self.compact = value and true or false
end

function _M.send_query(self, query)
    if self.state ~= STATE_CONNECTED then
        return nil, "cannot send query in the current context: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    self._seq = 255
    local bytes, err = send_packet(self, char(COM_QUERY) .. query)
    if not bytes then
        return nil, err
    end
    self.state = STATE_COMMAND_SENT
    return bytes
end

local function parse_field(data)
    local len = #data
    local pos = 1
    local s
    for _ = 1, 4 do                     -- catalog, schema, table, org_table
        s, pos = lenenc_str(data, pos, len)
        if not s then return nil end
    end
    local name
    name, pos = lenenc_str(data, pos, len)
    if not name then return nil end
    s, pos = lenenc_str(data, pos, len)  -- org_name
    if not s then return nil end
    pos = pos + 1                       -- length of the fixed fields (0x0c)
    if pos + 9 > len then return nil end
    local ftype = byte(data, pos + 6)
    return { name = name, type = ftype, charsetnr = u16(data, pos),
             flags = u16(data, pos + 7), conv = CONVERTERS[ftype] }
end

local function parse_row(data, cols, ncols, compact)
    local len = #data
    local row = compact and new_tab(ncols, 0) or new_tab(0, ncols)
    local pos = 1
    for i = 1, ncols do
        local c = byte(data, pos)
        if not c then return nil end
        local v
        if c == 0xfb then
            v = null
            pos = pos + 1
        else
            local n
            if c < 0xfb then
                n = c
                pos = pos + 1
            else
                n, pos = lenenc(data, pos, len)
                if not n then return nil end
            end
            local e = pos + n - 1
            if e > len then return nil end
            v = sub(data, pos, e)
            pos = e + 1
            local conv = cols[i].conv
            if conv then
                v = conv(v) or v
            end
        end
        if compact then
            row[i] = v
        else
            row[cols[i].name] = v
        end
    end
    if pos ~= len + 1 then return nil end
    return row
end

local function server_error(self, data)
    local msg, errno, sqlstate = parse_err(data)
    -- the server ends the connection after these: never pool it
    if errno == 1927 or errno == 1053 or errno == 2013 or errno == 1152 then
        fatal(self, msg)
    end
    return nil, msg, errno, sqlstate
end

function _M.read_result(self, est_nrows)
    if self.state ~= STATE_COMMAND_SENT then
        return nil, "cannot read result in the current context: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    local data, err = recv_packet(self)
    if not data then
        return nil, err
    end
    local first = byte(data, 1)
    if first == 0xff then
        self.state = STATE_CONNECTED
        return server_error(self, data)
    end
    if first == 0x00 then
        local res = parse_ok(data)
        if not res then
            return fatal(self, "malformed OK packet")
        end
        if band(res.server_status, SERVER_MORE_RESULTS_EXISTS) ~= 0 then
            return res, "again"
        end
        self.state = STATE_CONNECTED
        return res
    end
    if first == 0xfb then
        return fatal(self, "LOCAL INFILE requests are not supported")
    end
    local ncols = lenenc(data, 1, #data)
    if not ncols or ncols == 0 or ncols > 4096 then
        return fatal(self, "malformed result set header")
    end
    local cols = new_tab(ncols, 0)
    for i = 1, ncols do
        data, err = recv_packet(self)
        if not data then
            return nil, err
        end
        local col = parse_field(data)
        if not col then
            if byte(data, 1) == 0xff then
                return server_error(self, data)
            end
            return fatal(self, "malformed field packet")
        end
        cols[i] = col
    end
    data, err = recv_packet(self)
    if not data then
        return nil, err
    end
    if not is_eof(data) then
        return fatal(self, "bad packet after field packets: expected EOF")
    end
    local compact = self.compact
    local rows = new_tab(est_nrows or 4, 0)
    local n = 0
    while true do
        data, err = recv_packet(self)
        if not data then
            return nil, err
        end
        local c = byte(data, 1)
        if c == 0xfe and #data < 9 then
            if #data < 5 then
                return fatal(self, "malformed EOF packet")
            end
            local status = u16(data, 4)
            if band(status, SERVER_MORE_RESULTS_EXISTS) ~= 0 then
                return rows, "again"
            end
            self.state = STATE_CONNECTED
            return rows
        end
        if c == 0xff then
            self.state = STATE_CONNECTED
            return server_error(self, data)
        end
        local row = parse_row(data, cols, ncols, compact)
        if not row then
            return fatal(self, "malformed row packet")
        end
        n = n + 1
        rows[n] = row
    end
end

function _M.query(self, query, est_nrows)
    local bytes, err = _M.send_query(self, query)
    if not bytes then
        return nil, "failed to send query: " .. err
    end
    return _M.read_result(self, est_nrows)
end

-- for prepared statements and tests
_M._send_packet = send_packet
_M._recv_packet = recv_packet
_M._parse_err = parse_err
_M._fatal = fatal
_M.STATE_CONNECTED = STATE_CONNECTED
_M.STATE_COMMAND_SENT = STATE_COMMAND_SENT

return _M
