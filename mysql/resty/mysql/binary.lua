-- resty.mysql.binary: the binary protocol's values for resty.mysql -- the rows of
-- COM_STMT_EXECUTE decoded to exactly what the text protocol gives for the same column
-- (see "Prepared statements" in mysql/README.md), and the parameters of COM_STMT_EXECUTE
-- encoded from Lua values.

local ngx = ngx
local bytes = require "resty.cosocket.bytes"
local bit = require "bit"
local ffi = require "ffi"
local packet = require "resty.mysql.packet"

local type, tonumber, tostring, pcall, select = type, tonumber, tostring, pcall, select
local byte, char, sub, format = string.byte, string.char, string.sub, string.format
local concat = table.concat
local floor = math.floor
local band, bor, lshift = bit.band, bit.bor, bit.lshift
local ffi_copy, ffi_string, ffi_cast, ffi_istype = ffi.copy, ffi.string, ffi.cast, ffi.istype
local null = ngx.null

local u16, u32 = bytes.u16le, bytes.u32le
local lenenc_str, p_lenenc_str = bytes.lenenc_str, bytes.p_lenenc_str
local new_tab = packet.new_tab

local _M = { _VERSION = "0.1.0" }

local TWO53 = 2 ^ 53
local TWO63 = 2 ^ 63

pcall(ffi.cdef, [[
union cosocket_mysql_num { int64_t i; uint64_t u; double d; float f; unsigned char b[8]; };
]])
local numbuf = ffi.new("union cosocket_mysql_num")

-- the values are copied in and out of numbuf in the machine's order, the wire's is little
-- endian
_M.LITTLE_ENDIAN = ffi.abi("le")

--------------------------------------------------------------------------
-- values of a row: decoder(data, pos, len, col, ptr) -> value, next position (nil:
-- malformed); ptr is data as a const unsigned char *

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

-- the decoder of a column type (a column definition's `bin`)
function _M.decoder(ftype)
    return BINARY_DECODERS[ftype] or bin_string
end

-- a binary-protocol row: 0x00, a NULL bitmap (offset 2), the non-NULL values; the row
-- (an array when compact, else by column name) or nil when malformed
function _M.parse_row(data, cols, ncols, compact)
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

--------------------------------------------------------------------------
-- parameters

-- one parameter: type (2 bytes), value bytes; or nil, err
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

-- the nparams values of COM_STMT_EXECUTE (the caller checked select("#", ...) == nparams):
-- the NULL bitmap, the types, the values; or nil, err. nil and ngx.null are NULL (flagged in
-- the bitmap, type NULL).
function _M.encode_params(nparams, ...)
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
    return concat(bitmap), concat(types), concat(values)
end

return _M
