-- resty.mysql.stmt_cache: the prepared statements of each server connection, by SQL text,
-- for resty.mysql (see "Statement cache" in mysql/README.md).
--
-- A cache lives as long as the server connection, not the Lua object: set_keepalive()
-- leaves it here under the socket's fd, and connect() takes it back when the pool hands out
-- the connection again (getreusedtimes() > 0, same fd, same pool name). A pooled
-- connection keeps its fd open, so no other connection can have that fd meanwhile; every
-- new connection (reused times 0) starts a fresh cache under its fd. Without sock:getfd()
-- (ngx_lua 0.10.23 has none) set_keepalive() closes the statements instead.
--
-- A cache: { pool, by_sql = { [sql] = stmt }, n, tick, max, pending = { ids }, db, dead }.
-- COM_STMT_CLOSE has no answer, so closing a statement only queues its id in `pending`; the
-- ids go out in front of the connection's next command (resty.mysql.packet's
-- send_pending_closes).

local pairs, rawget = pairs, rawget

local _M = { _VERSION = "0.1.0" }

-- the cache of each connection by the socket's fd
local caches = {}

-- the connection is gone: its cache (and its statements) with it
function _M.drop(self)
    local cache = rawget(self, "_stmts")
    if cache then
        cache.dead = true
        cache.db = nil
        local fd = self._fd
        if fd and caches[fd] == cache then
            caches[fd] = nil
        end
        self._stmts = nil
    end
end

-- after sock:connect: the cache left under this fd by the pooled connection the socket is
-- (same pool name), else a new one; self._fd, self._stmts set
function _M.attach(self, sock, pool, max, reused)
    local fd = sock.getfd and sock:getfd() or nil
    if fd and fd < 0 then fd = nil end
    self._fd = fd
    local cache = reused and reused > 0 and fd and caches[fd]
    if not cache or cache.pool ~= pool or cache.dead then
        cache = { pool = pool, by_sql = {}, n = 0, tick = 0 }
        if fd then
            caches[fd] = cache
        end
    end
    cache.max = max
    cache.db = self
    self._stmts = cache
end

-- queues COM_STMT_CLOSE for a statement id
local function queue_close(cache, id)
    local pending = cache.pending or {}
    pending[#pending + 1] = id
    cache.pending = pending
end
_M.queue_close = queue_close

-- every statement closed and queued (set_keepalive without getfd)
function _M.close_all(cache)
    for sql, stmt in pairs(cache.by_sql) do
        stmt._closed = true
        cache.by_sql[sql] = nil
        queue_close(cache, stmt.id)
    end
end

-- a use of the cache: the new tick (stmt._used of the statements used at it)
function _M.tick(cache)
    local tick = cache.tick + 1
    cache.tick = tick
    return tick
end

-- the least recently used statement closed and queued
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
        queue_close(cache, oldest.id)
    end
end

-- a newly prepared statement in the cache; the LRU one goes when the cache is full (its
-- close is sent with the next command)
function _M.insert(cache, sql, stmt, tick)
    if cache.n >= cache.max then
        evict(cache)
    end
    stmt._cache = cache
    stmt._used = tick
    cache.by_sql[sql] = stmt
    cache.n = cache.n + 1
end

-- a statement out of its cache (closed by the caller)
function _M.remove(cache, stmt)
    if cache.by_sql[stmt.sql] == stmt then
        cache.by_sql[stmt.sql] = nil
        cache.n = cache.n - 1
    end
end

return _M
