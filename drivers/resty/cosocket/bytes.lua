-- resty.cosocket.bytes: packing and unpacking of fixed-size integers and MySQL-style
-- length-encoded integers and strings, for binary protocols. Pure Lua + LuaJIT `bit`; works
-- on this runtime and inside OpenResty. Moved here from the drivers (dns, websocket, mysql).
-- See drivers/README.md.
--
-- Readers take the string and a 1-based position and do not check the length: the caller
-- checks that the bytes are there (a short string gives an error on `nil + number`).
-- Writers take a non-negative whole number and return a string of the bytes.

local bit = require "bit"
local band, rshift = bit.band, bit.rshift
local byte, char, sub = string.byte, string.char, string.sub
local floor = math.floor

local _M = { _VERSION = "0.1.0" }

local TWO32 = 4294967296

-- big endian (network order): dns, websocket

function _M.u16be(s, i)
    local a, b = byte(s, i, i + 1)
    return a * 256 + b
end

function _M.u32be(s, i)
    local a, b, c, d = byte(s, i, i + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- exact below 2^53 (a Lua number); the caller rejects the top bit where the protocol does
function _M.u64be(s, i)
    local n = 0
    for k = i, i + 7 do
        n = n * 256 + byte(s, k)
    end
    return n
end

function _M.p16be(n)
    return char(rshift(n, 8), band(n, 0xff))
end

function _M.p32be(n)
    return char(band(rshift(n, 24), 0xff), band(rshift(n, 16), 0xff),
                band(rshift(n, 8), 0xff), band(n, 0xff))
end

-- the top 32 bits by division: bit operations are 32-bit
function _M.p64be(n)
    local hi, lo = floor(n / TWO32), n % TWO32
    return char(band(rshift(hi, 24), 0xff), band(rshift(hi, 16), 0xff),
                band(rshift(hi, 8), 0xff), band(hi, 0xff),
                band(rshift(lo, 24), 0xff), band(rshift(lo, 16), 0xff),
                band(rshift(lo, 8), 0xff), band(lo, 0xff))
end

-- little endian: mysql

local function u16le(s, i)
    local a, b = byte(s, i, i + 1)
    return a + b * 256
end
_M.u16le = u16le

local function u24le(s, i)
    local a, b, c = byte(s, i, i + 2)
    return a + b * 256 + c * 65536
end
_M.u24le = u24le

local function u32le(s, i)
    local a, b, c, d = byte(s, i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end
_M.u32le = u32le

function _M.p16le(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff))
end

function _M.p24le(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff), band(floor(n / 65536), 0xff))
end

function _M.p32le(n)
    return char(band(n, 0xff), band(floor(n / 256), 0xff), band(floor(n / 65536), 0xff),
                band(floor(n / 16777216), 0xff))
end

-- A length-encoded integer at i of s (len: how far s may be read, normally #s):
-- value, next position; value false for the NULL marker 0xfb; nil when it runs past len or
-- starts with 0xff (not a length).
local function lenenc(s, i, len)
    local c = byte(s, i)
    if not c or i > len then return nil end
    if c < 0xfb then return c, i + 1 end
    if c == 0xfb then return false, i + 1 end
    if c == 0xfc then
        if i + 2 > len then return nil end
        return u16le(s, i + 1), i + 3
    end
    if c == 0xfd then
        if i + 3 > len then return nil end
        return u24le(s, i + 1), i + 4
    end
    if c == 0xfe then
        if i + 8 > len then return nil end
        return u32le(s, i + 1) + u32le(s, i + 5) * TWO32, i + 9
    end
    return nil
end
_M.lenenc = lenenc

-- A length-encoded string at i: the string, next position; false for NULL; nil when the
-- length or the string runs past len.
function _M.lenenc_str(s, i, len)
    local n, pos = lenenc(s, i, len)
    if not n then return n, pos end
    local e = pos + n - 1
    if e > len then return nil end
    return sub(s, pos, e), e + 1
end

-- the length-encoded form of n (0 <= n < 2^53)
function _M.p_lenenc(n)
    if n < 0xfb then
        return char(n)
    elseif n < 0x10000 then
        return "\252" .. _M.p16le(n)
    elseif n < 0x1000000 then
        return "\253" .. _M.p24le(n)
    end
    return "\254" .. _M.p32le(n % TWO32) .. _M.p32le(floor(n / TWO32))
end

function _M.p_lenenc_str(s)
    return _M.p_lenenc(#s) .. s
end

return _M
