-- resty.mysql.result: the results of a command for resty.mysql -- an OK packet, an ERR, or a
-- result set (column definitions, rows until the EOF; "again" when more results follow).
-- Rows come in the text protocol (COM_QUERY: the values as strings, converted by column
-- type, see "Type mapping" in mysql/README.md) or, after COM_STMT_EXECUTE, in the binary
-- protocol (resty.mysql.binary).

local ngx = ngx
local bytes = require "resty.cosocket.bytes"
local bit = require "bit"
local packet = require "resty.mysql.packet"
local binary = require "resty.mysql.binary"

local tonumber = tonumber
local byte, sub = string.byte, string.sub
local band = bit.band
local null = ngx.null

local u16, lenenc, lenenc_str = bytes.u16le, bytes.lenenc, bytes.lenenc_str
local new_tab, fatal, server_error = packet.new_tab, packet.fatal, packet.server_error
local recv_packet, parse_ok, is_eof = packet.recv_packet, packet.parse_ok, packet.is_eof
local state_error = packet.state_error
local STATE_CONNECTED, STATE_COMMAND_SENT = packet.STATE_CONNECTED, packet.STATE_COMMAND_SENT
local SERVER_MORE_RESULTS_EXISTS = packet.SERVER_MORE_RESULTS_EXISTS
local binary_decoder, parse_binary_row = binary.decoder, binary.parse_row

local _M = { _VERSION = "0.1.0" }

local UNSIGNED_FLAG = 0x20
local TWO53 = 2 ^ 53

--------------------------------------------------------------------------
-- text-protocol values

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
-- packets of a result set

-- a column definition: { name, type, charsetnr, flags, decimals, unsigned, conv (the text
-- value's converter), bin (the binary value's decoder) } or nil when malformed
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
             conv = CONVERTERS[ftype], bin = binary_decoder(ftype) }
end
_M.parse_field = parse_field

-- a text-protocol row: length-encoded strings (0xfb: NULL); the row (an array when compact,
-- else by column name) or nil when malformed
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

-- the next result of the command sent (send_query, send_execute): rows or the OK table
-- ([, "again"] when more results follow), or nil, err, errno, sqlstate
function _M.read_result(self, est_nrows)
    if self.state ~= STATE_COMMAND_SENT then
        return state_error(self, "read result")
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

return _M
