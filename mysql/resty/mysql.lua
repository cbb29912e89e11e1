-- resty.mysql for cosocket: a MySQL / MariaDB client, drop-in for lua-resty-mysql (same
-- method names, arguments and return values). Written for this project from the protocol
-- documentation; see mysql/README.md for the type mapping, the differences and the modules
-- under resty/mysql/ this one is built from. This file is the public API: the object, its
-- connection (connect, pools, close) and COM_QUERY.
--
-- Connection safety: a timeout, a transport error, a malformed or oversized packet or a
-- server that killed the connection closes the socket; the object then answers
-- nil, "not connected"/"closed" until connect() is called again, so a connection that is
-- mid-result never goes back to the pool. set_keepalive() is refused unless the
-- connection is idle (STATE_CONNECTED: every result of the last command was read).

local ngx = ngx
local driver = require "resty.cosocket.driver"
local packet = require "resty.mysql.packet"
local stmt_cache = require "resty.mysql.stmt_cache"
local handshake = require "resty.mysql.handshake"
local auth = require "resty.mysql.auth"
local result = require "resty.mysql.result"
local prepared = require "resty.mysql.prepared"
local quote = require "resty.mysql.quote"

local tcp = ngx.socket.tcp
local type, setmetatable, rawget, error = type, setmetatable, rawget, error
local char = string.char

local fail, failed_to, tls_identity = driver.fail, driver.failed_to, driver.tls_identity
local get_reused_times = driver.get_reused_times
local send_command, send_pending_closes = packet.send_command, packet.send_pending_closes
local state_error, state_name = packet.state_error, packet.state_name
local STATE_CONNECTED, STATE_COMMAND_SENT = packet.STATE_CONNECTED, packet.STATE_COMMAND_SENT
local attach_stmt_cache, drop_stmt_cache = stmt_cache.attach, stmt_cache.drop
local close_all_stmts = stmt_cache.close_all
local do_handshake, restore_handshake = handshake.handshake, handshake.restore
local read_result = result.read_result

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local COM_QUIT = 0x01
local COM_QUERY = 0x03

local DEFAULT_MAX_PACKET = 1024 * 1024         -- as lua-resty-mysql: 1 MB
local DEFAULT_MAX_STMTS = 64                   -- cached prepared statements per connection

function _M.new(self)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ sock = sock, _seq = 0, _max_packet_size = DEFAULT_MAX_PACKET }, mt)
end

-- as the socket's (lua-resty-mysql's return values, not driver.set_timeout's 1)
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
        tls = ":" .. tls_identity(opts, ":")
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
    local reused = sock:getreusedtimes()
    attach_stmt_cache(self, sock, pool, opts.max_prepared_statements or DEFAULT_MAX_STMTS,
                      reused)

    if reused and reused > 0 then
        restore_handshake(self, pool)
        self.state = STATE_CONNECTED
        return 1
    end

    self._seq = 255              -- the greeting is packet 0
    local res, e, errno, sqlstate = do_handshake(self, opts, pool)
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
        return nil, "cannot be reused in the current connection state: " .. state_name(self)
    end
    self.state = nil
    local cache = self._stmts
    if cache then
        if self._fd then
            cache.db = nil          -- kept for the next connect() that gets this connection
        else
            -- no sock:getfd() (ngx_lua): the next user could not find the cache, so the
            -- statements are closed now rather than leaked on the server
            close_all_stmts(cache)
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
    return get_reused_times(rawget(self, "sock"))
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
        send_command(self, char(COM_QUIT))
    end
    return sock:close()
end

function _M.server_ver(self)
    return self._server_ver
end

function _M.set_compact_arrays(self, value)
    self.compact = value and true or false
end

local function send_query(self, query)
    if self.state ~= STATE_CONNECTED then
        return state_error(self, "send query")
    end
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local ok, err0 = send_pending_closes(self)
    if not ok then
        return nil, err0
    end
    self._binary = false
    local sent, err = send_command(self, char(COM_QUERY) .. query)
    if not sent then
        return nil, err
    end
    self.state = STATE_COMMAND_SENT
    return sent
end
_M.send_query = send_query

_M.read_result = read_result

function _M.query(self, query, est_nrows)
    local sent, err = send_query(self, query)
    if not sent then
        return nil, failed_to("send query", err)
    end
    return read_result(self, est_nrows)
end

-- server-side prepared statements (resty/mysql/prepared.lua)
_M.prepare = prepared.prepare
_M.send_execute = prepared.send_execute
_M.execute = prepared.execute
_M.query_params = prepared.execute
_M.stmt_close = prepared.stmt_close
_M.stmt_reset = prepared.stmt_reset

_M.quote_sql_str = quote.quote_sql_str

-- for tests
_M._quote_sql_str_lua = quote.quote_sql_str_lua
_M._caching_sha2_scramble = auth.caching_sha2_scramble
_M._auth_plugins = auth.plugins
_M._send_packet = packet.send_packet
_M._recv_packet = packet.recv_packet
_M._parse_err = packet.parse_err
_M._fatal = packet.fatal
_M.STATE_CONNECTED = STATE_CONNECTED
_M.STATE_COMMAND_SENT = STATE_COMMAND_SENT

return _M
