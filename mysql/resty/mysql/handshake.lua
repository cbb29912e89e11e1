-- resty.mysql.handshake: the connection phase of resty.mysql on a new connection -- the
-- server's greeting, the SSLRequest and TLS handshake (ssl = true), the handshake response
-- and the authentication exchange (auth switch, a plugin's more-data packets) until the OK.
-- The plugins' answers are in resty.mysql.auth.

local driver = require "resty.cosocket.driver"
local bytes = require "resty.cosocket.bytes"
local bit = require "bit"
local packet = require "resty.mysql.packet"
local auth = require "resty.mysql.auth"

local tostring, setmetatable = tostring, setmetatable
local byte, char, sub, rep = string.byte, string.char, string.sub, string.rep
local concat = table.concat
local band, bor = bit.band, bit.bor

local u16, p32 = bytes.u16le, bytes.p32le
local cstr, fatal, parse_err = packet.cstr, packet.fatal, packet.parse_err
local recv_packet, send_packet = packet.recv_packet, packet.send_packet
local AUTH, auth_response, native_password = auth.plugins, auth.response, auth.native_password
local ssl_handshake = driver.ssl_handshake

local _M = { _VERSION = "0.1.0" }

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

local CLIENT_MAX_PACKET = 0x40000000           -- what the handshake announces (1 GB)

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

-- a connection taken back from the pool: what its handshake found
function _M.restore(self, pool)
    local info = pool_info[pool]
    if info then
        self._server_ver, self._protocol_ver = info[1], info[2]
        self._server_capabilities, self._server_lang = info[3], info[4]
    end
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
            return fatal(self, "bad authentication packet: "
                               .. (first and "first byte " .. first or "empty"))
        end
    end
    return fatal(self, "too many authentication round trips")
end

-- the connection phase on a new connection (self._seq 255: the greeting is packet 0):
-- true, or nil, err[, errno, sqlstate] with the connection closed
function _M.handshake(self, opts, pool)
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
        local hok, herr = ssl_handshake(self.sock, opts)
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

return _M
