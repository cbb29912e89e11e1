-- resty.redis.sentinel: finds the current master (or a replica) of a Sentinel-monitored
-- group and connects resty.redis to it; after a failover the next connect() follows the new
-- master; run() remembers the master and, on a READONLY reply (the node was demoted) or a
-- connection failure, finds it again through the sentinels and retries once.
-- See redis/README.md for the API.

local redis = require "resty.redis"
local ngx = ngx
local type, tonumber, tostring, ipairs, pairs, select = type, tonumber, tostring, ipairs, pairs, select
local setmetatable, error = setmetatable, error
local sub, lower = string.sub, string.lower
local sleep = ngx.sleep
local unpack = unpack or table.unpack

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

-- opts: sentinels = {{host, port}, ...}, master_name, role ("master" default, or "replica"),
-- timeout (ms, default 1000), sentinel_username / sentinel_password (AUTH on the sentinels),
-- username / password / db (for the data nodes), keepalive_timeout, pool_size,
-- failover_wait (ms to keep asking while no master answers, default 5000), master_ttl (ms
-- run() reuses the master found, default 0: it asks every time); TLS: ssl,
-- ssl_verify, server_name, ssl_client_cert, ssl_client_priv_key for the data nodes (as
-- resty.redis' connect options), sentinel_ssl = true to use them for the sentinels too
function _M.new(_, opts)
    if type(opts) ~= "table" or type(opts.sentinels) ~= "table" or #opts.sentinels == 0 then
        error("bad argument: opts.sentinels required", 2)
    end
    if type(opts.master_name) ~= "string" then
        error("bad argument: opts.master_name required", 2)
    end
    local sentinels = {}
    for i, s in ipairs(opts.sentinels) do
        sentinels[i] = { s[1] or s.host, tonumber(s[2] or s.port) }
    end
    return setmetatable({
        sentinels = sentinels,
        master_name = opts.master_name,
        role = opts.role or "master",
        timeout = opts.timeout or 1000,
        sentinel_username = opts.sentinel_username,
        sentinel_password = opts.sentinel_password,
        username = opts.username, password = opts.password, db = opts.db,
        keepalive_timeout = opts.keepalive_timeout or 60000,
        pool_size = opts.pool_size or 32,
        failover_wait = opts.failover_wait or 5000,
        master_ttl = opts.master_ttl or 0,
        master_addr = false,       -- {host, port, until} of the master connect() last found
        readonly_retries = 0,      -- run()s retried after a READONLY reply (for tests)
        tls = opts.ssl and {
            ssl = true, ssl_verify = opts.ssl_verify, server_name = opts.server_name,
            ssl_client_cert = opts.ssl_client_cert, ssl_client_priv_key = opts.ssl_client_priv_key,
        } or nil,
        sentinel_tls = opts.sentinel_ssl and {
            ssl = true, ssl_verify = opts.ssl_verify, server_name = opts.server_name,
            ssl_client_cert = opts.ssl_client_cert, ssl_client_priv_key = opts.ssl_client_priv_key,
        } or nil,
    }, mt)
end

local function connect_node(self, host, port, username, password, db, tls)
    local red = redis:new()
    red:set_timeout(self.timeout)
    local copts = { username = username, password = password, db = db }
    if tls then
        for k, v in pairs(tls) do copts[k] = v end
    end
    local ok, err = red:connect(host, port, copts)
    if not ok then
        return nil, err
    end
    return red
end

-- Asks the sentinels in turn; a sentinel that answers moves to the front of the list.
local function ask(self, ...)
    local last = "no sentinels"
    for i, s in ipairs(self.sentinels) do
        local red, err = connect_node(self, s[1], s[2], self.sentinel_username,
                                      self.sentinel_password, nil, self.sentinel_tls)
        if red then
            local res
            res, err = red:sentinel(...)
            if res ~= nil then
                red:set_keepalive(self.keepalive_timeout, self.pool_size)
                if i > 1 then
                    table.remove(self.sentinels, i)
                    table.insert(self.sentinels, 1, s)
                end
                if res == false then
                    return nil, "sentinel " .. s[1] .. ":" .. s[2] .. ": " .. tostring(err)
                end
                return res
            end
        end
        last = s[1] .. ":" .. s[2] .. ": " .. tostring(err)
    end
    return nil, "no sentinel answered: " .. last
end

-- The current master's address: host, port; nil, err.
function _M.get_master(self)
    local res, err = ask(self, "get-master-addr-by-name", self.master_name)
    if not res then
        return nil, err
    end
    if res == ngx.null then
        return nil, "unknown master " .. self.master_name
    end
    return res[1], tonumber(res[2])
end

-- The replicas that are up: a list of {host, port}.
function _M.get_replicas(self)
    local res, err = ask(self, "replicas", self.master_name)
    if not res then
        return nil, err
    end
    local list = {}
    for _, r in ipairs(res) do
        local h = r
        if r[1] ~= nil then h = redis.array_to_hash(nil, r) end
        local flags = h.flags or ""
        if not flags:find("s_down", 1, true) and not flags:find("o_down", 1, true)
           and not flags:find("disconnected", 1, true) then
            list[#list + 1] = { h.ip, tonumber(h.port) }
        end
    end
    return list
end

local function now_ms()
    ngx.update_time()
    return ngx.now() * 1000
end

-- A connected resty.redis to the master (checked with ROLE, so a demoted node that a sentinel
-- still names is not used) or, with role = "replica", to a random replica (the master when none
-- is up). While a failover is under way it keeps asking for up to failover_wait ms.
function _M.connect(self)
    local deadline = now_ms() + self.failover_wait
    local err
    repeat
        local host, port
        if self.role == "replica" then
            local list
            list, err = self:get_replicas()
            if list and #list > 0 then
                local r = list[math.random(#list)]
                host, port = r[1], r[2]
            end
        end
        if not host then
            host, port = self:get_master()
            if not host then err = port end
        end
        if host then
            local red
            red, err = connect_node(self, host, port, self.username, self.password, self.db, self.tls)
            if red then
                if self.role == "replica" then
                    return red
                end
                local role
                role, err = red:role()
                if type(role) == "table" and role[1] == "master" then
                    self.master_addr = { host, port, now_ms() + self.master_ttl }
                    return red
                end
                red:close()
                err = host .. ":" .. port .. " is not a master (" .. tostring(role and role[1] or err) .. ")"
            end
        end
        sleep(0.1)
    until now_ms() >= deadline
    return nil, "failed to connect to " .. self.role .. " of " .. self.master_name .. ": " .. tostring(err)
end

-- Runs one command on the master (or a replica) and hands the connection back to the pool.
-- By default every run() asks the sentinels (connect()). With opts.master_ttl (ms) the
-- master's address is reused for that long after a connect(), so a run() costs one round trip
-- on a pooled connection (no sentinel query, no ROLE) -- at the price of writing to a master
-- that a failover has replaced but not yet demoted. Either way, when the node answers
-- READONLY (it was demoted to a replica) or cannot be reached, the address is forgotten, the
-- master found again through the sentinels (connect(), ROLE-checked) and the command retried
-- once; a second READONLY is returned as it is (false, "READONLY ...").
function _M.run(self, cmd, ...)
    local nargs = select("#", ...)
    local args = { ... }
    local method = lower(cmd)
    local res, err
    for attempt = 1, 2 do
        local red
        local known = attempt == 1 and self.role == "master" and self.master_addr
        if known and known[3] <= now_ms() then
            known = false
        end
        if known then
            red = connect_node(self, known[1], known[2], self.username, self.password, self.db,
                               self.tls)
            if not red then
                self.master_addr = false
            end
        end
        if not red then
            red, err = self:connect()
            if not red then
                return nil, err
            end
        end
        res, err = red[method](red, unpack(args, 1, nargs))
        if res ~= nil then
            red:set_keepalive(self.keepalive_timeout, self.pool_size)
        end
        local demoted = res == false and type(err) == "string" and sub(err, 1, 8) == "READONLY"
        if res ~= nil and not demoted then
            if err ~= nil then
                return res, err
            end
            return res              -- one value, as resty.redis
        end
        -- READONLY or a transport error: find the master again
        self.master_addr = false
        if demoted then
            self.readonly_retries = self.readonly_retries + 1
        end
    end
    return res, err
end

return _M
