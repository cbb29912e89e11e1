-- resty.memcached.ring: a client for several memcached servers.
--
-- Keys are placed with ketama consistent hashing, compatible with
-- libmemcached's ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED): each server
-- gets 160 points (scaled by its weight); point strings are "host:port-i"
-- ("host-i" on port 11211), each MD5 digest gives four little-endian 32-bit
-- points; a key goes to the first point >= the first four bytes of MD5(key),
-- little-endian, wrapping around.
--
-- Each server has its own connection pool (the cosocket pool keyed by
-- host:port). A server that fails at the transport level (connect refused,
-- timeout, closed, protocol error) is marked dead for dead_timeout seconds:
-- it leaves the continuum, its keys go to the next servers, and the
-- operation is retried once there. After dead_timeout it is put back and
-- tried again.
--
-- opts.ssl (with ssl_verify, server_name, ssl_client_cert, ssl_client_priv_key) connects
-- to every server over TLS, with resty.memcached's connect options (TLS pools are kept
-- apart from plain ones).
--
-- opts.points_per_server (default 160, ketama-compatible) can be raised for
-- a more even spread: with 160 points three servers may get up to ~20% more
-- or less than a third of the keys, with 1600 within ~8%; any other value
-- places keys differently from other ketama clients.

local ngx = ngx
local memcached = require "resty.memcached"
local md5_bin = ngx.md5_bin
local now, update_time = ngx.now, ngx.update_time
local spawn, wait = ngx.thread.spawn, ngx.thread.wait
local type, tostring, tonumber, error = type, tostring, tonumber, error
local setmetatable, ipairs, pairs = setmetatable, ipairs, pairs
local byte, match, floor = string.byte, string.match, math.floor
local sort = table.sort

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local POINTS_PER_SERVER = 160       -- libmemcached ketama
local POINTS_PER_HASH = 4

local function u32le(d, i)
    local b0, b1, b2, b3 = byte(d, i, i + 3)
    return b0 + b1 * 256 + b2 * 65536 + b3 * 16777216
end

function _M.hash(key)
    return u32le(md5_bin(key), 1)
end

local function parse_server(s)
    local host, port, weight
    if type(s) == "string" then
        host, port = match(s, "^(.+):(%d+)$")
        if not host then
            host, port = s, 11211
        end
        weight = 1
    elseif type(s) == "table" then
        host, port, weight = s[1] or s.host, s[2] or s.port or 11211, s.weight or s[3] or 1
    end
    port, weight = tonumber(port), tonumber(weight)
    if type(host) ~= "string" or not port or not weight or weight <= 0 then
        error("bad server entry: " .. tostring(s), 3)
    end
    return { host = host, port = port, weight = weight,
             name = host .. ":" .. port, dead_until = nil, failures = 0 }
end

-- the continuum over the live servers: sorted arrays of points and owners
local function build(self)
    local live, total = {}, 0
    local t = now()
    for _, srv in ipairs(self.servers) do
        if not srv.dead_until or srv.dead_until <= t then
            srv.dead_until = nil
            live[#live + 1] = srv
            total = total + srv.weight
        end
    end
    local pts = {}
    for _, srv in ipairs(live) do
        local pct = srv.weight / total
        local per_server = floor(pct * self.points_per_server / POINTS_PER_HASH * #live
                                 + 0.0000000001) * POINTS_PER_HASH
        local prefix = srv.port == 11211 and srv.host or srv.name
        for i = 0, per_server / POINTS_PER_HASH - 1 do
            local d = md5_bin(prefix .. "-" .. i)
            for k = 0, POINTS_PER_HASH - 1 do
                pts[#pts + 1] = { u32le(d, k * 4 + 1), srv }
            end
        end
    end
    sort(pts, function(a, b) return a[1] < b[1] end)
    local points, owners = {}, {}
    for i = 1, #pts do
        points[i], owners[i] = pts[i][1], pts[i][2]
    end
    self.points, self.owners, self.nlive = points, owners, #live
    local next_check
    for _, srv in ipairs(self.servers) do
        if srv.dead_until and (not next_check or srv.dead_until < next_check) then
            next_check = srv.dead_until
        end
    end
    self.next_check = next_check
end

local function maybe_revive(self)
    local nc = self.next_check
    if nc then
        update_time()
        if now() >= nc then
            build(self)
        end
    end
end

-- the server for a key (nil when every server is dead)
local function pick(self, key)
    local points = self.points
    local n = #points
    if n == 0 then
        return nil
    end
    local h = u32le(md5_bin(key), 1)
    local lo, hi = 1, n + 1
    while lo < hi do
        local mid = floor((lo + hi) / 2)
        if points[mid] < h then
            lo = mid + 1
        else
            hi = mid
        end
    end
    if lo > n then
        lo = 1
    end
    return self.owners[lo]
end

function _M.new(opts)
    if type(opts) ~= "table" or type(opts.servers) ~= "table" or #opts.servers == 0 then
        error("bad argument #1: a table with a non-empty servers array expected", 2)
    end
    local servers = {}
    for i, s in ipairs(opts.servers) do
        servers[i] = parse_server(s)
    end
    local connect_opts
    if opts.ssl then
        connect_opts = { ssl = true, ssl_verify = opts.ssl_verify, server_name = opts.server_name,
                         ssl_client_cert = opts.ssl_client_cert,
                         ssl_client_priv_key = opts.ssl_client_priv_key }
    end
    local self = setmetatable({
        servers = servers,
        timeout = opts.timeout or 1000,
        connect_timeout = opts.connect_timeout,
        keepalive_timeout = opts.keepalive_timeout or 60000,
        pool_size = opts.pool_size or 30,
        dead_timeout = opts.dead_timeout or 5,
        points_per_server = opts.points_per_server or POINTS_PER_SERVER,
        key_transform = opts.key_transform,
        max_value_size = opts.max_value_size,
        connect_opts = connect_opts,
    }, mt)
    build(self)
    return self
end

-- the name ("host:port") of the server a key goes to now
function _M.server_for(self, key)
    maybe_revive(self)
    local srv = pick(self, tostring(key))
    return srv and srv.name
end

function _M.mark_dead(self, name, err)
    for _, srv in ipairs(self.servers) do
        if srv.name == name then
            update_time()
            srv.dead_until = now() + self.dead_timeout
            srv.last_err = err
            build(self)
            return true
        end
    end
    return nil, "no such server"
end

-- { name = { alive = bool, last_err = ... } }
function _M.status(self)
    maybe_revive(self)
    local out = {}
    for _, srv in ipairs(self.servers) do
        out[srv.name] = { alive = srv.dead_until == nil, last_err = srv.last_err }
    end
    return out
end

local function connect(self, srv)
    local memc, err = memcached:new{ key_transform = self.key_transform,
                                     max_value_size = self.max_value_size }
    if not memc then
        return nil, err
    end
    if self.connect_timeout then
        memc:set_timeouts(self.connect_timeout, self.timeout, self.timeout)
    else
        memc:set_timeout(self.timeout)
    end
    local ok
    ok, err = memc:connect(srv.host, srv.port, self.connect_opts)
    if not ok then
        return nil, "failed to connect to " .. srv.name .. ": " .. tostring(err)
    end
    return memc
end

local function release(self, memc)
    if memc:broken() then
        return
    end
    local ok = memc:set_keepalive(self.keepalive_timeout, self.pool_size)
    if not ok then
        memc:close()
    end
end

-- how many values each method returns (what resty.memcached returns)
local NRET = { get = 3, gets = 4 }

local function failure(method, err)
    if method == "gets" then
        return nil, nil, nil, err
    elseif method == "get" then
        return nil, nil, err
    end
    return nil, err
end

-- runs method on the key's server; on a transport failure marks the
-- server dead and retries once on the key's new server
local function call(self, method, key, a1, a2, a3, a4)
    maybe_revive(self)
    local skey = tostring(key)
    local nret = NRET[method] or 2
    local last_err
    for _ = 1, 2 do
        local srv = pick(self, skey)
        if not srv then
            break
        end
        local memc, err = connect(self, srv)
        if memc then
            local r1, r2, r3, r4 = memc[method](memc, key, a1, a2, a3, a4)
            if not memc:broken() then
                release(self, memc)
                if nret == 2 then
                    if r2 == nil then
                        return r1
                    end
                    return r1, r2
                elseif nret == 3 then
                    return r1, r2, r3
                end
                return r1, r2, r3, r4
            end
            -- the error is the last value
            err = srv.name .. ": " .. tostring(nret == 2 and r2 or nret == 3 and r3 or r4)
        end
        last_err = err
        self:mark_dead(srv.name, err)
    end
    return failure(method, last_err or "no live memcached server")
end

function _M.get(self, key)
    if type(key) == "table" then
        return self:get_multi(key)
    end
    return call(self, "get", key)
end

function _M.gets(self, key)
    if type(key) == "table" then
        return self:get_multi(key, true)
    end
    return call(self, "gets", key)
end

for _, m in ipairs{ "set", "add", "replace", "append", "prepend", "cas", "touch",
                    "delete", "incr", "decr", "meta_get", "meta_set",
                    "meta_delete", "meta_arithmetic" } do
    _M[m] = function(self, key, a1, a2, a3, a4)
        return call(self, m, key, a1, a2, a3, a4)
    end
end

local function fetch(self, srv, keys, with_cas)
    local memc, err = connect(self, srv)
    if not memc then
        return nil, err, true
    end
    local res
    if with_cas then
        res, err = memc:gets(keys)
    else
        res, err = memc:get(keys)
    end
    if memc:broken() then
        return nil, srv.name .. ": " .. tostring(err), true
    end
    release(self, memc)
    return res, err, false
end

-- get_multi(keys[, with_cas]) -> results { key = {value, flags[, cas]} }, errs
-- The keys are split by server and fetched concurrently (one light thread
-- per server). Keys of a server that fails are fetched again from their new
-- servers. errs is nil, or a table { "host:port" = err } of what failed.
function _M.get_multi(self, keys, with_cas)
    maybe_revive(self)
    local results, errs = {}, nil
    local pending = keys
    for _ = 1, 2 do
        local groups, order = {}, {}
        for i = 1, #pending do
            local key = pending[i]
            local srv = pick(self, tostring(key))
            if not srv then
                errs = errs or {}
                errs["*"] = "no live memcached server"
                return results, errs
            end
            local g = groups[srv]
            if not g then
                g = {}
                groups[srv] = g
                order[#order + 1] = srv
            end
            g[#g + 1] = key
        end
        local threads = {}
        for i, srv in ipairs(order) do
            if i < #order then
                threads[i] = spawn(fetch, self, srv, groups[srv], with_cas)
            end
        end
        local retry = {}
        for i, srv in ipairs(order) do
            local ok, res, err, failed
            if threads[i] then
                ok, res, err, failed = wait(threads[i])
                if not ok then
                    res, err, failed = nil, res, true
                end
            else
                res, err, failed = fetch(self, srv, groups[srv], with_cas)
            end
            if res then
                for k, v in pairs(res) do
                    results[k] = v
                end
            else
                errs = errs or {}
                errs[srv.name] = err
                if failed then
                    self:mark_dead(srv.name, err)
                    local g = groups[srv]
                    for j = 1, #g do
                        retry[#retry + 1] = g[j]
                    end
                end
            end
        end
        if #retry == 0 then
            break
        end
        pending = retry
    end
    return results, errs
end

return _M
