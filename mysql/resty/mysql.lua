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
local driver = require "resty.cosocket.driver"
local bytes = require "resty.cosocket.bytes"
local bit = require "bit"
local ffi = require "ffi"
local band, bor, bxor, lshift = bit.band, bit.bor, bit.bxor, bit.lshift
local byte, char, sub, find, rep, format, gsub =
    string.byte, string.char, string.sub, string.find, string.rep, string.format, string.gsub
local concat = table.concat
local type, tonumber, tostring, setmetatable, getmetatable, rawget, error, pairs, select =
    type, tonumber, tostring, setmetatable, getmetatable, rawget, error, pairs, select
local floor = math.floor
local ffi_copy, ffi_string, ffi_cast, ffi_istype = ffi.copy, ffi.string, ffi.cast, ffi.istype

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
local COM_STMT_PREPARE = 0x16
local COM_STMT_EXECUTE = 0x17
local COM_STMT_CLOSE = 0x19
local COM_STMT_RESET = 0x1a

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
local UNSIGNED_FLAG = 0x20

local MAX_CHUNK = 0xffffff                     -- payload bytes per wire packet
local DEFAULT_MAX_PACKET = 1024 * 1024         -- as lua-resty-mysql: 1 MB
local CLIENT_MAX_PACKET = 0x40000000           -- what the handshake announces (1 GB)
local TWO53 = 2 ^ 53
local TWO63 = 2 ^ 63
local DEFAULT_MAX_STMTS = 64                   -- cached prepared statements per connection

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

-- the prepared-statement cache of each connection (see "statement cache" below), by the
-- socket's fd: { pool, by_sql = { [sql] = stmt }, n, tick, max, pending = { ids }, db }
local stmt_caches = {}

local function drop_stmt_cache(self)
    local cache = rawget(self, "_stmts")
    if cache then
        cache.dead = true
        cache.db = nil
        local fd = self._fd
        if fd and stmt_caches[fd] == cache then
            stmt_caches[fd] = nil
        end
        self._stmts = nil
    end
end

--------------------------------------------------------------------------
-- byte helpers

-- little-endian integers and length-encoded values (lenenc_str: false for NULL)
local u16, u24, u32 = bytes.u16le, bytes.u24le, bytes.u32le
local p24, p32 = bytes.p24le, bytes.p32le
local lenenc, lenenc_str, p_lenenc_str = bytes.lenenc, bytes.lenenc_str, bytes.p_lenenc_str
local fail, failed_to = driver.fail, driver.failed_to

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
    drop_stmt_cache(self)
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
            return fatal(self, failed_to("receive packet header", err))
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
                return fatal(self, failed_to("read packet content", err))
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
        return fatal(self, failed_to("send packet", err))
    end
    return bytes
end

-- COM_STMT_CLOSE has no answer: the closes queued while the connection was busy or pooled
-- go out in front of the next command
local function send_pending_closes(self)
    local cache = self._stmts
    local pending = cache and cache.pending
    if not pending then
        return true
    end
    cache.pending = nil
    local out = new_tab(#pending, 0)
    for i = 1, #pending do
        out[i] = "\5\0\0\0" .. char(COM_STMT_CLOSE) .. p32(pending[i])
    end
    local bytes, err = self.sock:send(out)
    if not bytes then
        return fatal(self, failed_to("send packet", err))
    end
    return true
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

-- binary protocol (COM_STMT_EXECUTE rows): decoder(data, pos, len, col, ptr) -> value, next
-- position (nil: malformed). The values are those the text protocol gives for the column.
pcall(ffi.cdef, [[
union cosocket_mysql_num { int64_t i; uint64_t u; double d; float f; unsigned char b[8]; };
]])
local numbuf = ffi.new("union cosocket_mysql_num")
local LITTLE_ENDIAN = ffi.abi("le")

local function bin_tiny(data, pos, len, col)
    if pos > len then return nil end
    local v = byte(data, pos)
    if v >= 128 and not col.unsigned then v = v - 256 end
    return v, pos + 1
end

local function bin_short(data, pos, len, col)
    if pos + 1 > len then return nil end
    local v = u16(data, pos)
    if v >= 32768 and not col.unsigned then v = v - 65536 end
    return v, pos + 2
end

local function bin_long(data, pos, len, col)
    if pos + 3 > len then return nil end
    local v = u32(data, pos)
    if v >= 2147483648 and not col.unsigned then v = v - 4294967296 end
    return v, pos + 4
end

local function load8(ptr, pos)
    ffi_copy(numbuf.b, ptr + (pos - 1), 8)
end

local function bin_longlong(data, pos, len, col, ptr)
    if pos + 7 > len then return nil end
    local lo, hi = u32(data, pos), u32(data, pos + 4)
    if col.unsigned then
        if hi < 2097152 then                          -- < 2^53
            return hi * 4294967296 + lo, pos + 8
        end
        load8(ptr, pos)
        local s = tostring(numbuf.u)
        return sub(s, 1, -4), pos + 8                  -- "...ULL"
    end
    if hi >= 2147483648 then hi = hi - 4294967296 end
    local v = hi * 4294967296 + lo
    if v < TWO53 and v > -TWO53 then
        return v, pos + 8
    end
    load8(ptr, pos)
    local s = tostring(numbuf.i)
    return sub(s, 1, -3), pos + 8                      -- "...LL"
end

-- FLOAT: the server's text form has 6 significant digits (FLT_DIG): 0.1 and not 0.1000000015
local function bin_float(data, pos, len, col, ptr)
    if pos + 3 > len then return nil end
    ffi_copy(numbuf.b, ptr + (pos - 1), 4)
    return tonumber(format("%.6g", numbuf.f)), pos + 4
end

local function bin_double(data, pos, len, col, ptr)
    if pos + 7 > len then return nil end
    load8(ptr, pos)
    return tonumber(numbuf.d), pos + 8
end

local function bin_string(data, pos, len)
    local v, e = lenenc_str(data, pos, len)
    if not v then return nil end
    return v, e
end

-- fractional seconds as the text protocol shows them: the column's decimals (fsp) digits
local function frac(us, decimals)
    if decimals == 0 then
        return ""
    end
    if decimals > 6 then                              -- not fixed (an expression)
        if us == 0 then return "" end
        decimals = 6
    end
    return "." .. sub(format("%06d", us), 1, decimals)
end

local TYPE_DATE = 0x0a

local function bin_datetime(data, pos, len, col)
    local n = byte(data, pos)
    if not n or (n ~= 0 and n ~= 4 and n ~= 7 and n ~= 11) or pos + n > len then
        return nil
    end
    local y, mo, d, h, mi, s, us = 0, 0, 0, 0, 0, 0, 0
    if n >= 4 then
        y, mo, d = u16(data, pos + 1), byte(data, pos + 3), byte(data, pos + 4)
    end
    if n >= 7 then
        h, mi, s = byte(data, pos + 5, pos + 7)
    end
    if n == 11 then
        us = u32(data, pos + 8)
    end
    if col.type == TYPE_DATE then
        return format("%04d-%02d-%02d", y, mo, d), pos + 1 + n
    end
    return format("%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, s)
           .. frac(us, col.decimals), pos + 1 + n
end

local function bin_time(data, pos, len, col)
    local n = byte(data, pos)
    if not n or (n ~= 0 and n ~= 8 and n ~= 12) or pos + n > len then
        return nil
    end
    local neg, days, h, mi, s, us = 0, 0, 0, 0, 0, 0
    if n >= 8 then
        neg, days = byte(data, pos + 1), u32(data, pos + 2)
        h, mi, s = byte(data, pos + 6, pos + 8)
    end
    if n == 12 then
        us = u32(data, pos + 9)
    end
    return format("%s%02d:%02d:%02d", neg == 1 and "-" or "", days * 24 + h, mi, s)
           .. frac(us, col.decimals), pos + 1 + n
end

local function bin_null(data, pos)
    return null, pos
end

local BINARY_DECODERS = {
    [0x01] = bin_tiny, [0x02] = bin_short, [0x0d] = bin_short,   -- TINY, SHORT, YEAR
    [0x03] = bin_long, [0x09] = bin_long,                         -- LONG, INT24
    [0x08] = bin_longlong, [0x04] = bin_float, [0x05] = bin_double,
    [0x06] = bin_null,
    [0x07] = bin_datetime, [0x0a] = bin_datetime, [0x0c] = bin_datetime,   -- TIMESTAMP, DATE,
    [0x0e] = bin_datetime,                                        -- DATETIME, NEWDATE
    [0x0b] = bin_time,
    -- everything else (DECIMAL, strings, blobs, BIT, ENUM, SET, JSON, GEOMETRY): a string
}

--------------------------------------------------------------------------
-- authentication

-- s XOR key, the key repeated as needed (the hashes XORed here have the same length)
local function xor_str(s, key)
    local n = #key
    local out = new_tab(#s, 0)
    for i = 1, #s do
        out[i] = char(bxor(byte(s, i), byte(key, (i - 1) % n + 1)))
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
    -- the password in clear text: only over TLS (MariaDB's PAM, LDAP ... plugins ask for it)
    mysql_clear_password = function(self, password)
        if self._ssl then
            return password .. "\0"
        end
        return nil, "mysql_clear_password is refused without TLS"
    end,
}

-- MySQL's SHA-256 plugins (mysql/resty/mysql/crypto.lua). Without TLS the full
-- authentication sends the password XOR the scramble, RSA-OAEP encrypted with the server's
-- public key, which is asked for first (caching_sha2: "\2", sha256_password: "\1").
local function rsa_password(password, scramble, pem)
    return require("resty.mysql.crypto").rsa_oaep_encrypt(
        pem, xor_str(password .. "\0", sub(scramble, 1, 20)))
end

local function caching_sha2_scramble(password, scramble)
    if password == "" then
        return ""
    end
    local sha256 = require("resty.mysql.crypto").sha256
    local p1 = sha256(password)
    local p2 = sha256(p1)
    return xor_str(p1, sha256(p2 .. sub(scramble, 1, 20)))
end
_M._caching_sha2_scramble = caching_sha2_scramble

AUTH.caching_sha2_password = function(self, password, scramble)
    return caching_sha2_scramble(password, scramble)
end

AUTH["caching_sha2_password:more"] = function(self, password, scramble, data)
    if self._auth_state == "key requested" then
        self._auth_state = nil
        return rsa_password(password, scramble, data)
    end
    if data == "\3" then                   -- fast authentication succeeded: OK follows
        return false
    end
    if data == "\4" then                   -- full authentication: the password itself
        if self._ssl then
            return password .. "\0"
        end
        self._auth_state = "key requested"
        return "\2"
    end
    return nil, "unexpected caching_sha2_password packet"
end

AUTH.sha256_password = function(self, password, scramble)
    if password == "" then
        return "\0"
    end
    if self._ssl then
        return password .. "\0"
    end
    self._auth_state = "key requested"
    return "\1"
end

AUTH["sha256_password:more"] = function(self, password, scramble, data)
    if self._auth_state == "key requested" then
        self._auth_state = nil
        return rsa_password(password, scramble, data)
    end
    return nil, "unexpected sha256_password packet"
end

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
            -- the plugin's data as sent: the 20-byte scramble plugins (native, the sha2
            -- ones) take their 20 bytes and so ignore the NUL the server puts after them;
            -- client_ed25519's nonce is 32 raw random bytes, any of which may be 0
            scramble = sub(data, pos)
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

    if opts.ssl then
        if band(caps, CLIENT_SSL) == 0 then
            return fatal(self, "ssl disabled on server")
        end
        -- SSLRequest: the first 32 bytes of the handshake response with CLIENT_SSL, then
        -- the TLS handshake; the real response follows over TLS
        client = bor(client, CLIENT_SSL)
        local ok, e = send_packet(self, concat({ p32(client), p32(CLIENT_MAX_PACKET),
                                                 char(charset), rep("\0", 23) }))
        if not ok then
            return nil, e
        end
        local hok, herr = driver.ssl_handshake(self.sock, opts)
        if not hok then
            return fatal(self, herr)
        end
        self._ssl = true
    end

    self._auth_state = nil
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
        if opts.server_name ~= nil and type(opts.server_name) ~= "string" then
            return nil, "bad server_name option: string expected, got " .. type(opts.server_name)
        end
        if (opts.ssl_client_cert == nil) ~= (opts.ssl_client_priv_key == nil) then
            return nil, "ssl_client_cert and ssl_client_priv_key must be given together"
        end
    end
    self._ssl = nil
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
    -- the default pool name: "<user>:<database>:<host>:<port>" or "<user>:<database>:<path>"
    -- as lua-resty-mysql's, then for TLS ":ssl:<server_name>:<verify>[:<client cert>]"
    -- (<verify>: "verify", "noverify" or "default" when ssl_verify is not given; the client
    -- certificate as the md5 of its PEM text or its object's address), so a plain pooled
    -- connection never serves a TLS connect, nor a TLS one checked differently
    local tls = ""
    if opts.ssl and not pool then
        tls = ":" .. driver.tls_identity(opts, ":")
    end
    if path then
        pool = pool or (user .. ":" .. database .. ":" .. path .. tls)
        sock_opts.pool = pool
        ok, err = sock:connect("unix:" .. path, sock_opts)
    else
        if type(host) ~= "string" then
            return nil, "bad host: string expected, got " .. type(host)
        end
        pool = pool or (user .. ":" .. database .. ":" .. host .. ":" .. port .. tls)
        sock_opts.pool = pool
        ok, err = sock:connect(host, port, sock_opts)
    end
    if not ok then
        return fail("connect", err)
    end
    self._pool = pool

    -- the statement cache: found again by fd for a connection taken from the pool
    local fd = sock.getfd and sock:getfd() or nil
    if fd and fd < 0 then fd = nil end
    self._fd = fd
    local max_stmts = opts.max_prepared_statements or DEFAULT_MAX_STMTS
    local reused = sock:getreusedtimes()
    local cache = reused and reused > 0 and fd and stmt_caches[fd]
    if not cache or cache.pool ~= pool or cache.dead then
        cache = { pool = pool, by_sql = {}, n = 0, tick = 0 }
        if fd then
            stmt_caches[fd] = cache
        end
    end
    cache.max = max_stmts
    cache.db = self
    self._stmts = cache

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
    local cache = self._stmts
    if cache then
        if self._fd then
            cache.db = nil          -- kept for the next connect() that gets this connection
        else
            -- no sock:getfd() (ngx_lua): the next user could not find the cache, so the
            -- statements are closed now rather than leaked on the server
            for sql, stmt in pairs(cache.by_sql) do
                stmt._closed = true
                cache.by_sql[sql] = nil
                local pending = cache.pending or {}
                pending[#pending + 1] = stmt.id
                cache.pending = pending
            end
            local ok, err = send_pending_closes(self)
            if not ok then
                return nil, err
            end
            drop_stmt_cache(self)
        end
        self._stmts = nil
    end
    return sock:setkeepalive(...)
end

function _M.get_reused_times(self)
    return driver.get_reused_times(rawget(self, "sock"))
end

function _M.close(self)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local state = self.state
    self.state = nil
    drop_stmt_cache(self)
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
    local ok, err0 = send_pending_closes(self)
    if not ok then
        return nil, err0
    end
    self._seq = 255
    self._binary = false
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
    local flags = u16(data, pos + 7)
    return { name = name, type = ftype, charsetnr = u16(data, pos), flags = flags,
             decimals = byte(data, pos + 9), unsigned = band(flags, UNSIGNED_FLAG) ~= 0,
             conv = CONVERTERS[ftype], bin = BINARY_DECODERS[ftype] or bin_string }
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

-- a binary-protocol row: 0x00, a NULL bitmap (offset 2), the non-NULL values
local function parse_binary_row(data, cols, ncols, compact)
    local len = #data
    if byte(data, 1) ~= 0 then return nil end
    local pos = 2 + floor((ncols + 9) / 8)
    if pos > len + 1 then return nil end
    local ptr = ffi_cast("const unsigned char *", data)
    local row = compact and new_tab(ncols, 0) or new_tab(0, ncols)
    for i = 1, ncols do
        local bitpos = i + 1
        local v
        if band(byte(data, 2 + floor(bitpos / 8)), lshift(1, bitpos % 8)) ~= 0 then
            v = null
        else
            local col = cols[i]
            v, pos = col.bin(data, pos, len, col, ptr)
            if v == nil then return nil end
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
    local parse = self._binary and parse_binary_row or parse_row
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
        local row = parse(data, cols, ncols, compact)
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
        return nil, failed_to("send query", err)
    end
    return _M.read_result(self, est_nrows)
end

--------------------------------------------------------------------------
-- server-side prepared statements
--
-- Statement cache: each connection has a table { by_sql = { [sql] = stmt }, ... } that
-- lives as long as the server connection, not the Lua object: set_keepalive() leaves it in
-- stmt_caches under the socket's fd, and connect() takes it back when the pool hands out
-- the connection again (getreusedtimes() > 0, same fd, same pool name). A pooled
-- connection keeps its fd open, so no other connection can have that fd meanwhile; every
-- new connection (reused times 0) starts a fresh cache under its fd. Without sock:getfd()
-- (ngx_lua 0.10.23 has none) set_keepalive() closes the statements instead.

local stmt_methods = {}
local stmt_mt = { __index = stmt_methods }

local function evict(cache)
    local oldest, old_sql
    for sql, stmt in pairs(cache.by_sql) do
        if not oldest or stmt._used < oldest._used then
            oldest, old_sql = stmt, sql
        end
    end
    if oldest then
        cache.by_sql[old_sql] = nil
        cache.n = cache.n - 1
        oldest._closed = true
        local pending = cache.pending or {}
        pending[#pending + 1] = oldest.id
        cache.pending = pending
    end
end

-- the answer to COM_STMT_PREPARE: stmt or nil, err, errno, sqlstate
local function read_prepare(self, sql)
    local data, err = recv_packet(self)
    if not data then
        return nil, err
    end
    local first = byte(data, 1)
    if first == 0xff then
        self.state = STATE_CONNECTED
        return server_error(self, data)
    end
    if first ~= 0x00 or #data < 12 then
        return fatal(self, "malformed prepare response")
    end
    local id, ncols, nparams = u32(data, 2), u16(data, 6), u16(data, 8)
    local warnings = u16(data, 11)
    local cols = new_tab(ncols, 0)
    for pass = 1, 2 do
        local n = pass == 1 and nparams or ncols
        if n > 0 then
            for i = 1, n + 1 do
                data, err = recv_packet(self)
                if not data then
                    return nil, err
                end
                if i <= n then
                    local col = parse_field(data)
                    if not col then
                        return fatal(self, "malformed field packet")
                    end
                    if pass == 2 then cols[i] = col end
                elseif not is_eof(data) then
                    return fatal(self, "bad packet after field packets: expected EOF")
                end
            end
        end
    end
    self.state = STATE_CONNECTED
    return setmetatable({ id = id, sql = sql, nparams = nparams, ncols = ncols,
                          columns = cols, warning_count = warnings }, stmt_mt)
end

function _M.prepare(self, sql)
    if type(sql) ~= "string" then
        return nil, "bad sql: string expected, got " .. type(sql)
    end
    local cache = self._stmts
    if self.state ~= STATE_CONNECTED or not cache then
        return nil, "cannot prepare in the current context: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    local tick = cache.tick + 1
    cache.tick = tick
    local stmt = cache.by_sql[sql]
    if stmt then
        stmt._used = tick
        return stmt
    end
    local ok, err = send_pending_closes(self)
    if not ok then
        return nil, err
    end
    self._seq = 255
    ok, err = send_packet(self, char(COM_STMT_PREPARE) .. sql)
    if not ok then
        return nil, failed_to("send query", err)
    end
    self.state = STATE_COMMAND_SENT
    local errno, sqlstate
    stmt, err, errno, sqlstate = read_prepare(self, sql)
    if not stmt then
        return nil, err, errno, sqlstate
    end
    -- the LRU one goes when the cache is full (its close is sent with the next command)
    if cache.n >= cache.max then
        evict(cache)
    end
    stmt._cache = cache
    stmt._used = tick
    cache.by_sql[sql] = stmt
    cache.n = cache.n + 1
    return stmt
end

-- one parameter: type (2 bytes), value bytes; or nil, err. nil and ngx.null are NULL
-- (flagged in the bitmap, type NULL).
local function encode_param(v)
    local t = type(v)
    if t == "string" then
        return "\254\0", p_lenenc_str(v)
    elseif t == "number" then
        if v == floor(v) and v >= -TWO63 and v < TWO63 then
            numbuf.i = v
            return "\8\0", ffi_string(numbuf.b, 8)      -- LONGLONG
        end
        numbuf.d = v
        return "\5\0", ffi_string(numbuf.b, 8)          -- DOUBLE
    elseif t == "boolean" then
        return "\1\0", v and "\1" or "\0"             -- TINY
    elseif t == "cdata" then
        if ffi_istype("uint64_t", v) then
            numbuf.u = v
            return "\8\128", ffi_string(numbuf.b, 8)    -- LONGLONG UNSIGNED
        elseif ffi_istype("int64_t", v) then
            numbuf.i = v
            return "\8\0", ffi_string(numbuf.b, 8)
        end
    end
    return nil, "unsupported parameter type " .. t
end

-- the stmt of this connection for stmt_or_sql: stmt or nil, err, errno, sqlstate
local function get_stmt(self, stmt)
    if type(stmt) == "string" then
        return _M.prepare(self, stmt)
    end
    if getmetatable(stmt) ~= stmt_mt then
        return nil, "bad statement: statement object or SQL string expected"
    end
    if stmt._closed then
        return nil, "statement closed"
    end
    local cache = self._stmts
    if not cache or stmt._cache ~= cache then
        return nil, "statement not prepared on this connection"
    end
    cache.tick = cache.tick + 1
    stmt._used = cache.tick
    return stmt
end

function _M.send_execute(self, stmt, ...)
    if self.state ~= STATE_CONNECTED then
        return nil, "cannot send query in the current context: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    if not LITTLE_ENDIAN then
        return nil, "prepared statements need a little-endian machine"
    end
    local err, errno, sqlstate
    stmt, err, errno, sqlstate = get_stmt(self, stmt)
    if not stmt then
        return nil, err, errno, sqlstate
    end
    local nparams = stmt.nparams
    local nargs = select("#", ...)
    if nargs ~= nparams then
        return nil, "wrong number of parameters: the statement has " .. nparams .. ", got "
                    .. nargs
    end
    local pkt = { char(COM_STMT_EXECUTE), p32(stmt.id), "\0", "\1\0\0\0" }
    if nparams > 0 then
        local nbytes = floor((nparams + 7) / 8)
        local bitmap = new_tab(nbytes, 0)
        for i = 1, nbytes do bitmap[i] = 0 end
        local types = new_tab(nparams, 0)
        local values = new_tab(nparams, 0)
        for i = 1, nparams do
            local v = select(i, ...)
            if v == nil or v == null then
                local k = floor((i - 1) / 8) + 1
                bitmap[k] = bor(bitmap[k], lshift(1, (i - 1) % 8))
                types[i] = "\6\0"
                values[i] = ""
            else
                local t, val = encode_param(v)
                if not t then
                    return nil, "bad parameter #" .. i .. ": " .. val
                end
                types[i], values[i] = t, val
            end
        end
        for k = 1, nbytes do bitmap[k] = char(bitmap[k]) end
        pkt[5] = concat(bitmap)
        pkt[6] = "\1"                                  -- new params bound: types follow
        pkt[7] = concat(types)
        pkt[8] = concat(values)
    end
    local ok
    ok, err = send_pending_closes(self)
    if not ok then
        return nil, err
    end
    self._seq = 255
    self._binary = true
    local bytes
    bytes, err = send_packet(self, concat(pkt))
    if not bytes then
        return nil, err
    end
    self.state = STATE_COMMAND_SENT
    return bytes
end

-- execute(stmt_or_sql, ...): rows / OK table / "again" exactly as query(); a SQL string is
-- prepared through the cache first
function _M.execute(self, stmt, ...)
    local bytes, err, errno, sqlstate = _M.send_execute(self, stmt, ...)
    if not bytes then
        if errno then
            return nil, err, errno, sqlstate
        end
        return nil, failed_to("execute", err)
    end
    return _M.read_result(self)
end

_M.query_params = _M.execute

function _M.stmt_close(self, stmt)
    if getmetatable(stmt) ~= stmt_mt then
        return nil, "bad statement: statement object expected"
    end
    if stmt._closed then
        return nil, "statement already closed"
    end
    stmt._closed = true
    local cache = stmt._cache
    if cache.by_sql[stmt.sql] == stmt then
        cache.by_sql[stmt.sql] = nil
        cache.n = cache.n - 1
    end
    if cache.dead then
        return 1            -- the server connection is gone, and its statements with it
    end
    local pending = cache.pending or {}
    pending[#pending + 1] = stmt.id
    cache.pending = pending
    local db = cache.db
    if db and db.state == STATE_CONNECTED then
        local ok, err = send_pending_closes(db)
        if not ok then
            return nil, err
        end
    end
    return 1
end

-- COM_STMT_RESET: 1 or nil, err, errno, sqlstate
function _M.stmt_reset(self, stmt)
    if self.state ~= STATE_CONNECTED then
        return nil, "cannot send query in the current context: "
                    .. (STATE_NAMES[self.state] or "nil")
    end
    local err
    stmt, err = get_stmt(self, stmt)
    if not stmt then
        return nil, err
    end
    local ok
    ok, err = send_pending_closes(self)
    if not ok then
        return nil, err
    end
    self._seq = 255
    ok, err = send_packet(self, char(COM_STMT_RESET) .. p32(stmt.id))
    if not ok then
        return nil, err
    end
    local data
    data, err = recv_packet(self)
    if not data then
        return nil, err
    end
    local first = byte(data, 1)
    if first == 0xff then
        return server_error(self, data)
    end
    if first ~= 0x00 then
        return fatal(self, "malformed OK packet")
    end
    return 1
end

function stmt_methods.close(stmt)
    return _M.stmt_close(nil, stmt)
end

local function stmt_db(stmt)
    local db = stmt._cache and stmt._cache.db
    if not db or stmt._closed then
        return nil, stmt._closed and "statement closed" or "connection not in use"
    end
    return db
end

function stmt_methods.execute(stmt, ...)
    local db, err = stmt_db(stmt)
    if not db then
        return nil, err
    end
    return _M.execute(db, stmt, ...)
end

function stmt_methods.reset(stmt)
    local db, err = stmt_db(stmt)
    if not db then
        return nil, err
    end
    return _M.stmt_reset(db, stmt)
end

--------------------------------------------------------------------------
-- escaping (the server must not run with NO_BACKSLASH_ESCAPES, and the connection
-- character set must be ASCII-compatible: utf8mb4, latin1, ...; never use it with big5,
-- sjis, gbk and such, where a multibyte character can end in a backslash byte)

local SQL_ESCAPES = {
    ["\0"] = "\\0", ["\b"] = "\\b", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r",
    ["\26"] = "\\Z", ["\""] = "\\\"", ["'"] = "\\'", ["\\"] = "\\\\",
}

local function quote_sql_str_lua(s)
    if type(s) ~= "string" then
        error("bad argument #1 to 'quote_sql_str' (string expected, got " .. type(s) .. ")", 2)
    end
    return "'" .. gsub(s, "[%z\b\t\n\r\26\"'\\]", SQL_ESCAPES) .. "'"
end

_M.quote_sql_str = ngx.quote_sql_str or quote_sql_str_lua
_M._quote_sql_str_lua = quote_sql_str_lua

-- for prepared statements and tests
_M._send_packet = send_packet
_M._recv_packet = recv_packet
_M._parse_err = parse_err
_M._fatal = fatal
_M.STATE_CONNECTED = STATE_CONNECTED
_M.STATE_COMMAND_SENT = STATE_COMMAND_SENT

return _M
