-- resty.dns.client: a caching stub resolver on top of resty.dns.resolver.
--
--   local client = require "resty.dns.client"
--   local c = assert(client.new{ resolv_conf = "/etc/resolv.conf", hosts = "/etc/hosts" })
--   local recs, err = c:resolve("www.example.com")          -- A and AAAA records
--   local recs, err = c:resolve("_sip._tcp.example.com", { qtype = c.TYPE_SRV })
--   local ip, err = c:toip("www.example.com")                -- one address, round-robin
--   local srv = client.pick_srv(recs)                        -- RFC 2782 weighted choice
--
-- Options of new() (all optional):
--   resolv_conf  path of a resolv.conf (default "/etc/resolv.conf"; false: none)
--   hosts        path of a hosts file (default "/etc/hosts"; false: none)
--   nameservers  overrides resolv.conf's nameserver lines ({"ip", {"ip", port}, ...})
--   search, ndots, timeout (ms), attempts, rotate   override resolv.conf's values
--   edns         EDNS0 payload size (default 1232; false: no EDNS)
--   neg_ttl      negative-cache TTL when the reply has no SOA (default 30 s)
--   max_ttl      cap on cached TTLs (default 86400 s)
--   stale_ttl    how long an expired entry is still served while one background refresh
--                runs (default 4 s; 0: never serve stale)
--   max_cname    longest CNAME chain followed (default 8)
--
-- Results: an array of records as resty.dns.resolver gives them (name, type, class, ttl,
-- section, address/target/...), only of the asked type, at the end of any CNAME chain; or
-- nil, err with err "<name>: name error" (NXDOMAIN, errcode 3), "<name>: no records"
-- (NODATA), "<name>: <errstr>" for other server errors, or the transport error.

local resolver = require "resty.dns.resolver"
local semaphore = require "ngx.semaphore"

local ngx = ngx
local now = ngx.now
local timer_at = ngx.timer.at
local log = ngx.log
local WARN = ngx.WARN
local io_open = io.open
local type, setmetatable, tonumber, pairs, ipairs =
    type, setmetatable, tonumber, pairs, ipairs
local sub, find, lower, gmatch, match, byte =
    string.sub, string.find, string.lower, string.gmatch, string.match, string.byte
local math_random = math.random
local insert = table.insert

local TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_SOA, TYPE_SRV =
    resolver.TYPE_A, resolver.TYPE_AAAA, resolver.TYPE_CNAME, resolver.TYPE_SOA,
    resolver.TYPE_SRV

local _M = {
    _VERSION = "0.1.0",
    TYPE_A = TYPE_A, TYPE_AAAA = TYPE_AAAA, TYPE_CNAME = TYPE_CNAME,
    TYPE_SRV = TYPE_SRV, TYPE_MX = resolver.TYPE_MX, TYPE_TXT = resolver.TYPE_TXT,
    TYPE_PTR = resolver.TYPE_PTR, TYPE_NS = resolver.TYPE_NS, TYPE_SOA = TYPE_SOA,
}
local mt = { __index = _M }


---------------------------------------------------------------------------
-- files

-- resolv.conf(5): nameserver, search, domain, options ndots/timeout/attempts/rotate
function _M.parse_resolv_conf(path)
    local f, err = io_open(path, "r")
    if not f then
        return nil, err
    end
    local conf = { nameservers = {}, search = nil, ndots = 1, timeout = 5,
                   attempts = 2, rotate = false }
    for line in f:lines() do
        line = match(line, "^([^#;]*)")
        local key, rest = match(line, "^%s*(%S+)%s*(.-)%s*$")
        if key == "nameserver" then
            local ip = match(rest, "^(%S+)")
            if ip then
                ip = match(ip, "^([^%%]+)")     -- drop an IPv6 zone id
                insert(conf.nameservers, ip)
            end
        elseif key == "search" or key == "domain" then
            local list = {}
            for d in gmatch(rest, "%S+") do
                insert(list, lower((match(d, "^(.-)%.?$"))))
            end
            conf.search = list               -- the last search/domain line wins
        elseif key == "options" then
            for opt in gmatch(rest, "%S+") do
                local k, v = match(opt, "^([%w%-]+):(%d+)$")
                v = tonumber(v)
                if k == "ndots" then
                    conf.ndots = v > 15 and 15 or v
                elseif k == "timeout" then
                    conf.timeout = v < 1 and 1 or v
                elseif k == "attempts" then
                    conf.attempts = v < 1 and 1 or (v > 5 and 5 or v)
                elseif opt == "rotate" then
                    conf.rotate = true
                end
            end
        end
    end
    f:close()
    return conf
end


-- hosts(5): "address name aliases..."; the first address per name and family wins
function _M.parse_hosts(path)
    local f, err = io_open(path, "r")
    if not f then
        return nil, err
    end
    local hosts = {}
    for line in f:lines() do
        line = match(line, "^([^#]*)")
        local addr, names = match(line, "^%s*(%S+)%s+(.-)%s*$")
        if addr then
            local family = find(addr, ":", 1, true) and "ipv6"
                           or (match(addr, "^%d+%.%d+%.%d+%.%d+$") and "ipv4")
            if family then
                addr = match(addr, "^([^%%]+)")
                for name in gmatch(names, "%S+") do
                    name = lower(name)
                    local e = hosts[name]
                    if not e then
                        e = {}
                        hosts[name] = e
                    end
                    if not e[family] then
                        e[family] = addr
                    end
                end
            end
        end
    end
    f:close()
    return hosts
end


---------------------------------------------------------------------------
-- construction

function _M.new(opts)
    opts = opts or {}
    local conf
    local conf_path = opts.resolv_conf
    if conf_path == nil then
        conf_path = "/etc/resolv.conf"
    end
    if conf_path then
        conf = _M.parse_resolv_conf(conf_path)
    end
    conf = conf or { nameservers = {}, ndots = 1, timeout = 5, attempts = 2 }

    local hosts = {}
    local hosts_path = opts.hosts
    if hosts_path == nil then
        hosts_path = "/etc/hosts"
    end
    if hosts_path then
        hosts = _M.parse_hosts(hosts_path) or {}
    end

    local nameservers = opts.nameservers or conf.nameservers
    if not nameservers or #nameservers == 0 then
        return nil, "no nameservers specified"
    end

    local timeout = opts.timeout or conf.timeout * 1000
    local attempts = opts.attempts or conf.attempts
    local rotate = opts.rotate
    if rotate == nil then
        rotate = conf.rotate
    end
    local edns = opts.edns
    if edns == nil then
        edns = 1232
    end

    local r, err = resolver:new{ nameservers = nameservers, timeout = timeout,
                                 retrans = attempts * #nameservers,
                                 no_random = not rotate, edns = edns }
    if not r then
        return nil, err
    end

    return setmetatable({
        r = r,
        rotate = rotate,
        hosts = hosts,
        search = opts.search or conf.search or {},
        ndots = opts.ndots or conf.ndots or 1,
        neg_ttl = opts.neg_ttl or 30,
        max_ttl = opts.max_ttl or 86400,
        stale_ttl = opts.stale_ttl or 4,
        max_cname = opts.max_cname or 8,
        cache = {},
        inflight = {},
        rr = {},                        -- round-robin index per name for toip
        stats = { queries = 0, hits = 0, stale = 0, coalesced = 0 },
    }, mt)
end


---------------------------------------------------------------------------
-- one (name, type) through the network, with CNAME chasing

local function errmsg(name, answers)
    if answers.errcode == 3 then
        return name .. ": name error"
    end
    return name .. ": " .. (answers.errstr or "unknown") .. " (" .. answers.errcode .. ")"
end


local function neg_ttl(self, answers)
    for _, a in ipairs(answers) do
        if a.type == TYPE_SOA and a.section == resolver.SECTION_NS then
            local t = a.minimum
            if a.ttl < t then
                t = a.ttl
            end
            return t
        end
    end
    return self.neg_ttl
end


local function has_soa(answers)
    for _, a in ipairs(answers) do
        if a.type == TYPE_SOA and a.section == resolver.SECTION_NS then
            return true
        end
    end
    return false
end


-- returns records, nil, ttl  |  nil, err, ttl (negative, cacheable)  |  nil, err (transport)
local function fetch(self, name, qtype)
    local r = self.r
    local want = name
    local ttl = self.max_ttl
    for _ = 0, self.max_cname do
        if not self.rotate then
            r.cur = 1
        end
        self.stats.queries = self.stats.queries + 1
        local answers, err = r:query(want, { qtype = qtype, authority_section = true })
        if not answers then
            return nil, err
        end
        -- walk the chain inside this answer
        local by_name = {}
        local cnames = {}
        for _, a in ipairs(answers) do
            if a.section == 1 then
                local n = lower(a.name)
                if a.type == qtype then
                    local l = by_name[n]
                    if not l then
                        l = {}
                        by_name[n] = l
                    end
                    l[#l + 1] = a
                elseif a.type == TYPE_CNAME and qtype ~= TYPE_CNAME then
                    cnames[n] = a
                end
            end
        end
        local cur = lower(want)
        for _ = 0, self.max_cname do
            local c = cnames[cur]
            if not c then
                break
            end
            if c.ttl < ttl then
                ttl = c.ttl
            end
            cur = lower(c.cname)
        end
        local recs = by_name[cur]
        if recs then
            for _, a in ipairs(recs) do
                if a.ttl < ttl then
                    ttl = a.ttl
                end
            end
            return recs, nil, ttl
        end
        if answers.errcode then
            local nt = neg_ttl(self, answers)
            return nil, errmsg(name, answers), nt < ttl and nt or ttl
        end
        -- NODATA, or a chain the server already followed (an SOA proves the end)
        if cur == lower(want) or has_soa(answers) then
            local nt = neg_ttl(self, answers)
            return nil, name .. ": no records", nt < ttl and nt or ttl
        end
        want = cur      -- the chain leaves this answer: ask for its end
    end
    return nil, name .. ": CNAME chain too long"
end


---------------------------------------------------------------------------
-- the cache: key "qtype:name" -> { recs, err, expire, stale_until, refreshing }

local function store(self, key, recs, err, ttl)
    local t = now()
    local e = { recs = recs, err = err, expire = t + ttl,
                stale_until = t + ttl + self.stale_ttl }
    self.cache[key] = e
    return e
end


local function refresh(premature, self, key, name, qtype)
    if premature then
        return
    end
    local recs, err, ttl = fetch(self, name, qtype)
    if recs or ttl then
        store(self, key, recs, err, ttl)
    else
        local e = self.cache[key]
        if e then
            e.refreshing = nil
        end
        log(WARN, "dns refresh of ", name, " failed: ", err)
    end
end


-- one (name, type) through the cache, coalescing concurrent misses
local function lookup(self, name, qtype)
    local key = qtype .. ":" .. name
    local stats = self.stats
    local e = self.cache[key]
    if e then
        local t = now()
        if t < e.expire then
            stats.hits = stats.hits + 1
            return e.recs, e.err
        end
        if t < e.stale_until then
            stats.stale = stats.stale + 1
            if not e.refreshing then
                e.refreshing = true
                local ok = timer_at(0, refresh, self, key, name, qtype)
                if not ok then
                    e.refreshing = nil
                end
            end
            return e.recs, e.err
        end
    end

    local inflight = self.inflight
    local f = inflight[key]
    if f then
        stats.coalesced = stats.coalesced + 1
        f.waiters = f.waiters + 1
        local ok, err = f.sema:wait(self.r.timeout / 1000 * self.r.retrans + 1)
        if not ok then
            return nil, name .. ": " .. err
        end
        return f.recs, f.err
    end

    f = { sema = semaphore.new(0), waiters = 0 }
    inflight[key] = f
    local recs, err, ttl = fetch(self, name, qtype)
    if recs or ttl then
        store(self, key, recs, err, ttl)
    end
    f.recs, f.err = recs, err
    inflight[key] = nil
    if f.waiters > 0 then
        f.sema:post(f.waiters)
    end
    return recs, err
end


local function from_hosts(self, name, qtype)
    local e = self.hosts[name]
    if not e then
        return nil
    end
    local addr
    if qtype == TYPE_A then
        addr = e.ipv4
    elseif qtype == TYPE_AAAA then
        addr = e.ipv6
    end
    if not addr then
        -- a name in the hosts file is not looked up in the DNS, for any type
        return false, name .. ": no records"
    end
    return { { name = name, type = qtype, class = 1, ttl = 0, section = 1,
               address = addr } }
end


-- one type for a name: hosts, then the search list
local function resolve_type(self, name, qtype)
    local recs, herr = from_hosts(self, name, qtype)
    if recs then
        return recs
    end
    if recs == false then
        return nil, herr
    end

    local n = #name
    if byte(name, n) == 46 then                         -- absolute: no search
        return lookup(self, sub(name, 1, n - 1), qtype)
    end

    local ndots = 0
    for _ in gmatch(name, "%.") do
        ndots = ndots + 1
    end
    local candidates = {}
    if ndots >= self.ndots then
        candidates[1] = name
    end
    for _, d in ipairs(self.search) do
        candidates[#candidates + 1] = name .. "." .. d
    end
    if ndots < self.ndots then
        candidates[#candidates + 1] = name
    end

    local first_err
    for _, cand in ipairs(candidates) do
        local err
        recs, err = lookup(self, cand, qtype)
        if recs then
            return recs
        end
        first_err = first_err or err
    end
    return nil, first_err
end


---------------------------------------------------------------------------
-- public

function _M.resolve(self, name, opts)
    if type(name) ~= "string" or name == "" then
        error("bad argument #1 name: non-empty string expected", 2)
    end
    name = lower(name)
    local qtype = opts and opts.qtype
    if qtype then
        return resolve_type(self, name, qtype)
    end

    -- an address literal needs no lookup
    if match(name, "^%d+%.%d+%.%d+%.%d+$") then
        return { { name = name, type = TYPE_A, class = 1, ttl = 0, section = 1,
                   address = name } }
    end
    if find(name, ":", 1, true) then
        return { { name = name, type = TYPE_AAAA, class = 1, ttl = 0, section = 1,
                   address = name } }
    end

    local a, err_a = resolve_type(self, name, TYPE_A)
    local aaaa, err_aaaa = resolve_type(self, name, TYPE_AAAA)
    if not a and not aaaa then
        return nil, err_a or err_aaaa
    end
    if not aaaa then
        return a
    end
    if not a then
        return aaaa
    end
    local out = {}
    for i = 1, #a do out[i] = a[i] end
    for i = 1, #aaaa do out[#out + 1] = aaaa[i] end
    return out
end


-- one address for the name, round-robin over its records (IPv4 first)
function _M.toip(self, name)
    local recs, err = self:resolve(name)
    if not recs then
        return nil, err
    end
    local v4 = {}
    for _, r in ipairs(recs) do
        if r.type == TYPE_A then
            v4[#v4 + 1] = r
        end
    end
    local list = #v4 > 0 and v4 or recs
    local i = (self.rr[name] or 0) % #list + 1
    self.rr[name] = i
    return list[i].address
end


function _M.flush(self)
    self.cache = {}
end


-- RFC 2782: the lowest priority first, then a weighted random choice
function _M.pick_srv(recs, rand)
    rand = rand or math_random
    local best
    for _, r in ipairs(recs) do
        if r.type == TYPE_SRV and (not best or r.priority < best) then
            best = r.priority
        end
    end
    if not best then
        return nil, "no SRV records"
    end
    local group, total = {}, 0
    for _, r in ipairs(recs) do
        if r.type == TYPE_SRV and r.priority == best then
            group[#group + 1] = r
            total = total + r.weight
        end
    end
    if total == 0 then
        return group[rand(1, #group)]
    end
    local pick = rand(0, total - 1)
    for _, r in ipairs(group) do
        pick = pick - r.weight
        if pick < 0 then
            return r
        end
    end
    return group[#group]
end


return _M
