-- resty.mysql.auth: the authentication plugins of resty.mysql -- what the client answers to
-- a server's scramble (and to the plugin's further packets) for mysql_native_password,
-- mysql_clear_password, caching_sha2_password, sha256_password and client_ed25519. The
-- exchange itself (handshake response, auth switch, more-data packets) is in
-- resty.mysql.handshake.
--
-- A plugin is plugins[name](self, password, scramble) -> the response, or nil, err; a plugin
-- with more rounds has plugins[name .. ":more"](self, password, scramble, data) -> the next
-- response, false (nothing to send, read on) or nil, err. self._ssl (the connection is
-- encrypted) and self._auth_state (a plugin's state between rounds) are the object's.

local ngx = ngx
local bit = require "bit"

local require, tostring = require, tostring
local byte, char, sub = string.byte, string.char, string.sub
local concat = table.concat
local bxor = bit.bxor
local sha1_bin = ngx.sha1_bin
local new_tab = require("resty.mysql.packet").new_tab

local _M = { _VERSION = "0.1.0" }

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
_M.native_password = native_password

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
_M.plugins = AUTH

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
_M.caching_sha2_scramble = caching_sha2_scramble

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

-- the first response of plugin: the response, or nil, err
function _M.response(self, plugin, password, scramble)
    local f = AUTH[plugin]
    if not f then
        return nil, "unsupported authentication plugin: " .. tostring(plugin)
    end
    return f(self, password, scramble)
end

return _M
