-- resty.mysql.prepared: server-side prepared statements for resty.mysql -- COM_STMT_PREPARE
-- through the connection's statement cache (resty.mysql.stmt_cache), COM_STMT_EXECUTE
-- (parameters encoded and rows decoded by resty.mysql.binary, results read as query's),
-- COM_STMT_CLOSE and COM_STMT_RESET, and the statement objects' methods. The functions take
-- the resty.mysql object; resty.mysql publishes them as its methods.

local bytes = require "resty.cosocket.bytes"
local driver = require "resty.cosocket.driver"
local packet = require "resty.mysql.packet"
local stmt_cache = require "resty.mysql.stmt_cache"
local result = require "resty.mysql.result"
local binary = require "resty.mysql.binary"

local type, setmetatable, getmetatable, select = type, setmetatable, getmetatable, select
local byte, char = string.byte, string.char
local concat = table.concat

local u16, u32, p32 = bytes.u16le, bytes.u32le, bytes.p32le
local failed_to = driver.failed_to
local new_tab, fatal, server_error = packet.new_tab, packet.fatal, packet.server_error
local recv_packet, send_command, is_eof = packet.recv_packet, packet.send_command, packet.is_eof
local send_pending_closes, state_error = packet.send_pending_closes, packet.state_error
local STATE_CONNECTED, STATE_COMMAND_SENT = packet.STATE_CONNECTED, packet.STATE_COMMAND_SENT
local cache_tick, cache_insert = stmt_cache.tick, stmt_cache.insert
local cache_remove, queue_close = stmt_cache.remove, stmt_cache.queue_close
local parse_field, read_result = result.parse_field, result.read_result
local encode_params, LITTLE_ENDIAN = binary.encode_params, binary.LITTLE_ENDIAN

local _M = { _VERSION = "0.1.0" }

local COM_STMT_PREPARE = 0x16
local COM_STMT_EXECUTE = 0x17
local COM_STMT_RESET = 0x1a

local stmt_methods = {}
local stmt_mt = { __index = stmt_methods }

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

-- the statement for sql from the cache, else prepared: stmt or nil, err, errno, sqlstate
local function prepare(self, sql)
    if type(sql) ~= "string" then
        return nil, "bad sql: string expected, got " .. type(sql)
    end
    local cache = self._stmts
    if self.state ~= STATE_CONNECTED or not cache then
        return state_error(self, "prepare")
    end
    local tick = cache_tick(cache)
    local stmt = cache.by_sql[sql]
    if stmt then
        stmt._used = tick
        return stmt
    end
    local ok, err = send_pending_closes(self)
    if not ok then
        return nil, err
    end
    ok, err = send_command(self, char(COM_STMT_PREPARE) .. sql)
    if not ok then
        return nil, failed_to("send query", err)
    end
    self.state = STATE_COMMAND_SENT
    local errno, sqlstate
    stmt, err, errno, sqlstate = read_prepare(self, sql)
    if not stmt then
        return nil, err, errno, sqlstate
    end
    cache_insert(cache, sql, stmt, tick)
    return stmt
end
_M.prepare = prepare

-- the stmt of this connection for stmt_or_sql: stmt or nil, err, errno, sqlstate
local function get_stmt(self, stmt)
    if type(stmt) == "string" then
        return prepare(self, stmt)
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
    stmt._used = cache_tick(cache)
    return stmt
end

local function send_execute(self, stmt, ...)
    if self.state ~= STATE_CONNECTED then
        return state_error(self, "send query")
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
        local bitmap, types, values = encode_params(nparams, ...)
        if not bitmap then
            return nil, types
        end
        pkt[5] = bitmap
        pkt[6] = "\1"                                  -- new params bound: types follow
        pkt[7] = types
        pkt[8] = values
    end
    local ok
    ok, err = send_pending_closes(self)
    if not ok then
        return nil, err
    end
    self._binary = true
    local sent
    sent, err = send_command(self, concat(pkt))
    if not sent then
        return nil, err
    end
    self.state = STATE_COMMAND_SENT
    return sent
end
_M.send_execute = send_execute

-- execute(stmt_or_sql, ...): rows / OK table / "again" exactly as query(); a SQL string is
-- prepared through the cache first
local function execute(self, stmt, ...)
    local sent, err, errno, sqlstate = send_execute(self, stmt, ...)
    if not sent then
        if errno then
            return nil, err, errno, sqlstate
        end
        return nil, failed_to("execute", err)
    end
    return read_result(self)
end
_M.execute = execute

local function stmt_close(self, stmt)
    if getmetatable(stmt) ~= stmt_mt then
        return nil, "bad statement: statement object expected"
    end
    if stmt._closed then
        return nil, "statement already closed"
    end
    stmt._closed = true
    local cache = stmt._cache
    cache_remove(cache, stmt)
    if cache.dead then
        return 1            -- the server connection is gone, and its statements with it
    end
    queue_close(cache, stmt.id)
    local db = cache.db
    if db and db.state == STATE_CONNECTED then
        local ok, err = send_pending_closes(db)
        if not ok then
            return nil, err
        end
    end
    return 1
end
_M.stmt_close = stmt_close

-- COM_STMT_RESET: 1 or nil, err, errno, sqlstate
local function stmt_reset(self, stmt)
    if self.state ~= STATE_CONNECTED then
        return state_error(self, "send query")
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
    ok, err = send_command(self, char(COM_STMT_RESET) .. p32(stmt.id))
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
_M.stmt_reset = stmt_reset

--------------------------------------------------------------------------
-- statement objects: the methods run on whichever object holds the connection now

function stmt_methods.close(stmt)
    return stmt_close(nil, stmt)
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
    return execute(db, stmt, ...)
end

function stmt_methods.reset(stmt)
    local db, err = stmt_db(stmt)
    if not db then
        return nil, err
    end
    return stmt_reset(db, stmt)
end

return _M
