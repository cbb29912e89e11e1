-- resty.redis.cluster: a Redis Cluster client on top of resty.redis. It learns the slot map
-- with CLUSTER SLOTS, routes each command by the CRC16 slot of its key (hash tags honoured),
-- follows MOVED (and refreshes the map) and ASK, retries on another node after a connection
-- failure (failover), pools connections per node, and pipelines across nodes.
-- See redis/README.md for the API.

local redis = require "resty.redis"
local ngx = ngx
local bit = require "bit"
local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local byte, sub, find, lower, match = string.byte, string.sub, string.find, string.lower, string.match
local type, tonumber, tostring, select, pairs, ipairs = type, tonumber, tostring, select, pairs, ipairs
local setmetatable, rawget, rawset, error = setmetatable, rawget, rawset, error
local unpack = unpack or table.unpack
local spawn, wait, sleep = ngx.thread.spawn, ngx.thread.wait, ngx.sleep

local _M = { _VERSION = "0.1.0" }

local NSLOTS = 16384

-- CRC16-CCITT (XModem), the cluster key hash
local crc_tab = {}
for i = 0, 255 do
    local crc = lshift(i, 8)
    for _ = 1, 8 do
        if band(crc, 0x8000) ~= 0 then
            crc = bxor(lshift(crc, 1), 0x1021)
        else
            crc = lshift(crc, 1)
        end
    end
    crc_tab[i] = band(crc, 0xffff)
end

local function crc16(s)
    local crc = 0
    for i = 1, #s do
        crc = bxor(band(lshift(crc, 8), 0xffff), crc_tab[bxor(rshift(crc, 8), byte(s, i))])
    end
    return crc
end

-- The hash slot of a key: only the part inside the first non-empty {...} counts.
function _M.keyslot(key)
    key = tostring(key)
    local s = find(key, "{", 1, true)
    if s then
        local e = find(key, "}", s + 1, true)
        if e and e > s + 1 then
            key = sub(key, s + 1, e - 1)
        end
    end
    return crc16(key) % NSLOTS
end
local keyslot = _M.keyslot

-- commands that carry no key: they go to any node
local KEYLESS = {
    ping = true, echo = true, info = true, time = true, cluster = true, command = true,
    config = true, dbsize = true, flushall = true, flushdb = true, randomkey = true,
    publish = true, script = true, readonly = true, readwrite = true, auth = true,
    hello = true, client = true, lastsave = true, memory = true, ["function"] = true,
}

-- the argument holding the key: commands with the key after numkeys
local function key_of(cmd, args)
    if KEYLESS[cmd] then
        return nil
    end
    if cmd == "eval" or cmd == "evalsha" or cmd == "eval_ro" or cmd == "evalsha_ro"
       or cmd == "fcall" or cmd == "fcall_ro" then
        if tonumber(args[2]) and tonumber(args[2]) > 0 then
            return args[3]
        end
        return nil
    end
    if cmd == "xread" or cmd == "xreadgroup" then
        for i = 1, #args do
            if lower(tostring(args[i])) == "streams" then
                return args[i + 1]
            end
        end
        return nil
    end
    return args[1]
end

local mt

-- opts: nodes = {{host, port} | "host:port", ...} (seeds), connect_timeout, send_timeout,
-- read_timeout (ms; or timeout for all three), keepalive_timeout, pool_size, username,
-- password, max_redirects (default 5), retry_delay (ms, the first TRYAGAIN back-off,
-- default 50, doubling up to 1 s), and for TLS to every node: ssl, ssl_verify,
-- server_name, ssl_client_cert, ssl_client_priv_key (as resty.redis' connect options)
function _M.new(_, opts)
    if type(opts) ~= "table" or type(opts.nodes) ~= "table" or #opts.nodes == 0 then
        error("bad argument: opts.nodes (a list of seed nodes) required", 2)
    end
    local seeds = {}
    for i, n in ipairs(opts.nodes) do
        if type(n) == "string" then
            local h, p = match(n, "^(.+):(%d+)$")
            seeds[i] = { h, tonumber(p) }
        else
            seeds[i] = { n[1] or n.host, tonumber(n[2] or n.port) }
        end
    end
    local t = opts.timeout or 1000
    return setmetatable({
        seeds = seeds,
        slots = false,             -- [slot] = "host:port"
        masters = false,           -- "host:port" -> {host, port}
        reqs = false,              -- the queued pipeline
        connect_timeout = opts.connect_timeout or t,
        send_timeout = opts.send_timeout or t,
        read_timeout = opts.read_timeout or t,
        keepalive_timeout = opts.keepalive_timeout or 60000,
        pool_size = opts.pool_size or 32,
        username = opts.username or false,
        password = opts.password or false,
        max_redirects = opts.max_redirects or 5,
        -- the TLS connect options, or false (any missing field would be a command: __index)
        tls = opts.ssl and {
            ssl = true, ssl_verify = opts.ssl_verify, server_name = opts.server_name,
            ssl_client_cert = opts.ssl_client_cert, ssl_client_priv_key = opts.ssl_client_priv_key,
        } or false,
        stale = true,
        refreshes = 0,
        no_shards = false,         -- the nodes do not know CLUSTER SHARDS (before Redis 7)
        map_source = false,        -- "shards" or "slots": how the map was loaded last
        retry_delay = (opts.retry_delay or 50) / 1000,   -- TRYAGAIN back-off: doubles, <= 1 s
        retries = 0,               -- TRYAGAIN / CLUSTERDOWN retries so far (for tests)
    }, mt)
end

local function node_connect(self, host, port)
    local red = redis:new()
    red:set_timeouts(self.connect_timeout, self.send_timeout, self.read_timeout)
    local copts = {
        pool_size = self.pool_size,
        username = self.username or nil, password = self.password or nil,
    }
    local tls = self.tls
    if tls then
        for k, v in pairs(tls) do copts[k] = v end
    end
    -- "cluster:" + resty.redis' pool name (host:port[/user][/ssl/...]): plain and TLS
    -- connections, and different TLS settings, never share a pool
    copts.pool = "cluster:" .. redis.pool_name(host, port, copts)
    local ok, err = red:connect(host, port, copts)
    if not ok then
        return nil, err
    end
    return red
end

local function release(self, red)
    red:set_keepalive(self.keepalive_timeout, self.pool_size)
end

local function split_addr(addr)
    local h, p = match(addr, "^(.+):(%d+)$")
    return h, tonumber(p)
end

-- the fields of a CLUSTER SHARDS entry (a flat key/value array in RESP2, a map in RESP3)
local function as_hash(t)
    if type(t) ~= "table" then
        return nil
    end
    if t[1] ~= nil then
        return redis.array_to_hash(nil, t)
    end
    return t
end

-- slots, masters from a CLUSTER SHARDS reply (Redis 7); nil when it does not parse. host is
-- the node asked, for a master that reports no address.
local function from_shards(self, res, host)
    local slots, masters = {}, {}
    for _, shard in ipairs(res) do
        shard = as_hash(shard)
        if not shard or type(shard.slots) ~= "table" or type(shard.nodes) ~= "table" then
            return nil
        end
        local addr
        for _, node in ipairs(shard.nodes) do
            node = as_hash(node)
            if node and node.role == "master" and node.health ~= "fail" then
                local ip = node.endpoint
                if ip == nil or ip == "" or ip == "?" or ip == ngx.null then ip = node.ip end
                if ip == nil or ip == "" or ip == ngx.null then ip = host end
                local port = tonumber(self.tls and node["tls-port"] or node.port)
                if port then
                    addr = ip .. ":" .. port
                    masters[addr] = { ip, port }
                end
                break
            end
        end
        local ranges = shard.slots
        if addr then
            for i = 1, #ranges - 1, 2 do
                for sl = tonumber(ranges[i]), tonumber(ranges[i + 1]) do slots[sl] = addr end
            end
        end
    end
    return slots, masters
end

-- slots, masters from a CLUSTER SLOTS reply
local function from_slots(res, host)
    local slots, masters = {}, {}
    for _, range in ipairs(res) do
        local m = range[3]
        local h = m[1]
        if h == "" or h == ngx.null or h == "?" then h = host end
        local addr = h .. ":" .. m[2]
        masters[addr] = { h, tonumber(m[2]) }
        for sl = range[1], range[2] do slots[sl] = addr end
    end
    return slots, masters
end

-- Loads the slot map from the first node (known masters first, then seeds) that answers:
-- CLUSTER SHARDS (Redis 7), or CLUSTER SLOTS on a server that does not know SHARDS.
-- self.map_source tells which one was used last ("shards" or "slots").
function _M.refresh(self)
    local candidates = {}
    if self.masters then
        for _, m in pairs(self.masters) do candidates[#candidates + 1] = m end
    end
    for _, s in ipairs(self.seeds) do candidates[#candidates + 1] = s end
    local last_err = "no nodes"
    for _, node in ipairs(candidates) do
        local red, err = node_connect(self, node[1], node[2])
        if red then
            local res, slots, masters, source
            if not self.no_shards then
                res, err = red:cluster("shards")
                if type(res) == "table" then
                    slots, masters = from_shards(self, res, node[1])
                    source = "shards"
                    if not slots then
                        err = "bad CLUSTER SHARDS reply"
                    end
                elseif res == false and type(err) == "string"
                       and (find(err, "unknown subcommand", 1, true)
                            or find(err, "unknown command", 1, true)) then
                    -- before Redis 7: remembered, SHARDS is not asked again
                    self.no_shards = true
                end
            end
            if self.no_shards then
                res, err = red:cluster("slots")
                if type(res) == "table" then
                    slots, masters = from_slots(res, node[1])
                    source = "slots"
                end
            end
            if slots then
                release(self, red)
                self.slots, self.masters, self.stale = slots, masters, false
                self.refreshes = self.refreshes + 1
                self.map_source = source
                return true
            end
            red:close()
        end
        last_err = tostring(node[1]) .. ":" .. tostring(node[2]) .. ": " .. tostring(err)
    end
    return nil, "failed to load the cluster slot map: " .. last_err
end

local function any_master(self)
    for addr in pairs(self.masters) do
        return addr
    end
end

local function node_for(self, key)
    if self.stale or not self.slots then
        local ok, err = self:refresh()
        if not ok then return nil, err end
    end
    if key == nil then
        return any_master(self)
    end
    local addr = self.slots[keyslot(key)]
    if not addr then
        return nil, "slot " .. keyslot(key) .. " not served"
    end
    return addr
end

-- Runs one command on a node, following redirections.
local function run(self, cmd, args, nargs)
    local addr, err = node_for(self, key_of(cmd, args))
    if not addr then return nil, err end
    local asking = false
    local delay = self.retry_delay
    for attempt = 0, self.max_redirects do
        local host, port = split_addr(addr)
        local red
        red, err = node_connect(self, host, port)
        if not red then
            -- the node may be gone (failover): reload the map and try again
            self.stale = true
            sleep(0.05)
            addr, err = node_for(self, key_of(cmd, args))
            if not addr then return nil, err end
        else
            local res
            if asking then
                red:init_pipeline(2)
                red:asking()
                red[cmd](red, unpack(args, 1, nargs))
                local r
                r, err = red:commit_pipeline()
                if r then
                    res = r[2]
                    if type(res) == "table" and res[1] == false then
                        res, err = false, res[2]
                    end
                end
            else
                res, err = red[cmd](red, unpack(args, 1, nargs))
            end
            if res ~= nil then release(self, red) end
            asking = false
            if res == false and type(err) == "string" then
                local kind, slot, to = match(err, "^(%u+) (%d+) (%S+)$")
                if kind == "MOVED" then
                    if self.slots then self.slots[tonumber(slot)] = to end
                    self.stale = true       -- reload the whole map before the next command
                    addr = to
                elseif kind == "ASK" then
                    asking, addr = true, to
                elseif sub(err, 1, 8) == "TRYAGAIN" or sub(err, 1, 11) == "CLUSTERDOWN" then
                    -- a multi-key command on a slot being migrated, or a cluster without a
                    -- majority: wait (doubling, at most 1 s) and try again; the server's
                    -- error is returned when the retries run out
                    if attempt == self.max_redirects then
                        return res, err
                    end
                    self.retries = self.retries + 1
                    sleep(delay)
                    delay = delay * 2
                    if delay > 1 then delay = 1 end
                else
                    return res, err
                end
            elseif err ~= nil then
                return res, err
            else
                return res          -- one value, as resty.redis
            end
        end
    end
    return nil, "too many redirections: " .. tostring(err)
end

function _M.init_pipeline(self)
    self.reqs = {}
end

function _M.cancel_pipeline(self)
    self.reqs = false
end

-- Groups the queued commands by node, runs one pipeline per node (in parallel light threads),
-- then re-runs singly the commands that were redirected; results come in the caller's order.
function _M.commit_pipeline(self)
    local reqs = rawget(self, "reqs")
    if not reqs then
        return nil, "no pipeline"
    end
    self.reqs = false
    local groups, order = {}, {}
    for i, r in ipairs(reqs) do
        local addr, err = node_for(self, key_of(r[1], r[2]))
        if not addr then return nil, err end
        local g = groups[addr]
        if not g then
            g = {}
            groups[addr] = g
            order[#order + 1] = addr
        end
        g[#g + 1] = i
    end
    local results = {}
    local function run_group(addr)
        local g = groups[addr]
        local host, port = split_addr(addr)
        local red, err = node_connect(self, host, port)
        if not red then return nil, err end
        red:init_pipeline(#g)
        for _, i in ipairs(g) do
            local r = reqs[i]
            red[r[1]](red, unpack(r[2], 1, r[3]))
        end
        local res
        res, err = red:commit_pipeline()
        if not res then return nil, err end
        release(self, red)
        for j, i in ipairs(g) do results[i] = res[j] end
        return true
    end
    local threads = {}
    for k, addr in ipairs(order) do
        threads[k] = spawn(run_group, addr)
    end
    for k = 1, #threads do
        local ok, res = wait(threads[k])
        if not ok or not res then
            -- a node failed: reload the map; its commands are re-run one by one below
            self.stale = true
        end
    end
    for i, r in ipairs(reqs) do
        local v = results[i]
        local redirected = v == nil or (type(v) == "table" and v[1] == false and type(v[2]) == "string"
            and (match(v[2], "^MOVED ") or match(v[2], "^ASK ") or match(v[2], "^TRYAGAIN")))
        if redirected then
            local res, err = run(self, r[1], r[2], r[3])
            if res == nil then return nil, err end
            if res == false then res = { false, err } end
            results[i] = res
        end
    end
    return results
end

mt = {
    __index = function(_, name)
        local f = _M[name]
        if f ~= nil then return f end
        if type(name) ~= "string" or sub(name, 1, 1) == "_" then return nil end
        local cmd = lower(name)
        f = function(self, ...)
            local nargs = select("#", ...)
            local reqs = rawget(self, "reqs")
            if reqs then
                reqs[#reqs + 1] = { cmd, { ... }, nargs }
                return true
            end
            return run(self, cmd, { ... }, nargs)
        end
        rawset(_M, name, f)
        return f
    end,
}

return _M
