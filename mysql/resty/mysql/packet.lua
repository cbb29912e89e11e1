-- resty.mysql.packet: the MySQL client/server packets for resty.mysql -- the connection
-- states, reading and writing logical packets (sequence ids, 16 MB chunks, max_packet_size),
-- and the generic OK, ERR and EOF packets.
--
-- Connection safety: a timeout, a transport error, a malformed or oversized packet or a
-- server that killed the connection closes the socket (fatal); the object then answers
-- nil, "not connected"/"closed" until connect() is called again, so a connection that is
-- mid-result never goes back to the pool.

local driver = require "resty.cosocket.driver"
local bytes = require "resty.cosocket.bytes"
local stmt_cache = require "resty.mysql.stmt_cache"

local type, rawget, pcall, require = type, rawget, pcall, require
local byte, char, sub, find = string.byte, string.char, string.sub, string.find
local concat = table.concat

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new or type(new_tab) ~= "function" then
    new_tab = function() return {} end
end

local u16, u24 = bytes.u16le, bytes.u24le
local p24, p32 = bytes.p24le, bytes.p32le
local lenenc, lenenc_str = bytes.lenenc, bytes.lenenc_str
local failed_to = driver.failed_to
local drop_stmt_cache = stmt_cache.drop

local _M = { _VERSION = "0.1.0", new_tab = new_tab }

-- connection states (nil: not connected)
local STATE_CONNECTED = 1       -- idle: nothing in flight, may be pooled
local STATE_COMMAND_SENT = 2    -- a command was sent and its results are not all read
local STATE_NAMES = { [STATE_CONNECTED] = "connected", [STATE_COMMAND_SENT] = "command sent" }
_M.STATE_CONNECTED, _M.STATE_COMMAND_SENT = STATE_CONNECTED, STATE_COMMAND_SENT

-- lua-resty-mysql's refusal of a call in the wrong state: "cannot <what> in the current
-- context: <state>"
function _M.state_error(self, what)
    return nil, "cannot " .. what .. " in the current context: "
                .. (STATE_NAMES[self.state] or "nil")
end

-- the state name for set_keepalive's refusal
function _M.state_name(self)
    return STATE_NAMES[self.state] or "nil"
end

local COM_STMT_CLOSE = 0x19
local MAX_CHUNK = 0xffffff                     -- payload bytes per wire packet
local SERVER_MORE_RESULTS_EXISTS = 8
_M.SERVER_MORE_RESULTS_EXISTS = SERVER_MORE_RESULTS_EXISTS

-- a NUL-terminated string at i: the string, the position after the NUL; nil without a NUL
function _M.cstr(s, i)
    local e = find(s, "\0", i, true)
    if not e then return nil end
    return sub(s, i, e - 1), e + 1
end

-- closes the connection (never pooled) and drops its statement cache: nil, err
local function fatal(self, err)
    local sock = rawget(self, "sock")
    self.state = nil
    drop_stmt_cache(self)
    if sock then
        sock:close()
    end
    return nil, err
end
_M.fatal = fatal

-- one logical packet (wire packets of 0xffffff bytes joined): payload or nil, err.
-- The size is checked against max_packet_size before the payload is read.
function _M.recv_packet(self)
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
-- payload that is an exact multiple of it): bytes sent or nil, err
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
    local sent, err = self.sock:send(out)
    if not sent then
        return fatal(self, failed_to("send packet", err))
    end
    return sent
end
_M.send_packet = send_packet

-- a command: its first packet (sequence id 0)
function _M.send_command(self, payload)
    self._seq = 255
    return send_packet(self, payload)
end

-- the COM_STMT_CLOSEs queued in the statement cache (they have no answer) go out in front
-- of the next command: true or nil, err
function _M.send_pending_closes(self)
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
    local sent, err = self.sock:send(out)
    if not sent then
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
_M.parse_err = parse_err

-- an ERR packet as a result: nil, msg, errno, sqlstate
function _M.server_error(self, data)
    local msg, errno, sqlstate = parse_err(data)
    -- the server ends the connection after these: never pool it
    if errno == 1927 or errno == 1053 or errno == 2013 or errno == 1152 then
        fatal(self, msg)
    end
    return nil, msg, errno, sqlstate
end

-- an OK packet: table or nil
function _M.parse_ok(data)
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

function _M.is_eof(data)
    return byte(data, 1) == 0xfe and #data < 9
end

return _M
