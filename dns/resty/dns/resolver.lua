-- resty.dns.resolver: a drop-in for lua-resty-dns's resolver (same names, arguments
-- and results), written for cosocket from RFC 1035 (wire format), RFC 3596 (AAAA),
-- RFC 2782 (SRV) and RFC 6891 (EDNS0).
--
-- Differences from upstream, all on the safe side:
--   * query ids come from an entropy source (libcrypto RAND_bytes via FFI, else
--     /dev/urandom), and every query uses a fresh UDP socket (a new source port);
--   * a reply is accepted only when its id, question name (case-insensitive), type
--     and class match the query; other datagrams are ignored until the timeout;
--   * names are decoded with bounds checks, backward-only compression pointers
--     (so no loops) and the 255-byte limit; any malformed packet gives nil, err;
--   * opts.edns = payload size (or true for 1232) adds an OPT record (RFC 6891).

local bit = require "bit"
local ffi = require "ffi"
local bytes = require "resty.cosocket.bytes"

local ngx = ngx
local udp = ngx.socket.udp
local tcp = ngx.socket.tcp
local log = ngx.log
local DEBUG = ngx.DEBUG
local now = ngx.now
local update_time = ngx.update_time
local byte, char, sub, find, lower, format, rep, gsub =
    string.byte, string.char, string.sub, string.find, string.lower,
    string.format, string.rep, string.gsub
local band, lshift = bit.band, bit.lshift
local u16, u32, p16 = bytes.u16be, bytes.u32be, bytes.p16be
local concat = table.concat
local type, setmetatable, tonumber, pcall, select =
    type, setmetatable, tonumber, pcall, select
local io_open = io.open

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new then
    new_tab = function() return {} end
end

local TYPE_A      = 1
local TYPE_NS     = 2
local TYPE_CNAME  = 5
local TYPE_SOA    = 6
local TYPE_PTR    = 12
local TYPE_MX     = 15
local TYPE_TXT    = 16
local TYPE_AAAA   = 28
local TYPE_SRV    = 33
local TYPE_SPF    = 99
local TYPE_OPT    = 41

local CLASS_IN    = 1

local SECTION_AN  = 1
local SECTION_NS  = 2
local SECTION_AR  = 3

local DEFAULT_EDNS_PAYLOAD = 1232
local MAX_TRIES_PER_RECV = 128

local _M = {
    _VERSION    = "0.1.0",
    TYPE_A      = TYPE_A,
    TYPE_NS     = TYPE_NS,
    TYPE_CNAME  = TYPE_CNAME,
    TYPE_SOA    = TYPE_SOA,
    TYPE_PTR    = TYPE_PTR,
    TYPE_MX     = TYPE_MX,
    TYPE_TXT    = TYPE_TXT,
    TYPE_AAAA   = TYPE_AAAA,
    TYPE_SRV    = TYPE_SRV,
    TYPE_SPF    = TYPE_SPF,
    TYPE_OPT    = TYPE_OPT,
    CLASS_IN    = CLASS_IN,
    SECTION_AN  = SECTION_AN,
    SECTION_NS  = SECTION_NS,
    SECTION_AR  = SECTION_AR,
}

local mt = { __index = _M }

local errstrs = {
    "format error",     -- 1
    "server failure",   -- 2
    "name error",       -- 3
    "not implemented",  -- 4
    "refused",          -- 5
}

local soa_fields = { "serial", "refresh", "retry", "expire", "minimum" }


---------------------------------------------------------------------------
-- entropy for query ids

local rand_bytes
do
    local pool_size = 256
    local pool = ffi.new("unsigned char[?]", pool_size)
    local pool_pos = pool_size
    local fill

    local ok = pcall(ffi.cdef, "int RAND_bytes(unsigned char *buf, int num);")
    local ok2, fn = pcall(function() return ffi.C.RAND_bytes end)
    if ok and ok2 and fn then
        fill = function()
            return ffi.C.RAND_bytes(pool, pool_size) == 1
        end
    end
    if not fill then
        fill = function()
            local f = io_open("/dev/urandom", "rb")
            if not f then
                return false
            end
            local s = f:read(pool_size)
            f:close()
            if not s or #s ~= pool_size then
                return false
            end
            ffi.copy(pool, s, pool_size)
            return true
        end
    end

    -- a uniformly random 16-bit number
    rand_bytes = function()
        if pool_pos + 2 > pool_size then
            if not fill() then
                error("resty.dns.resolver: no entropy source")
            end
            pool_pos = 0
        end
        local v = pool[pool_pos] * 256 + pool[pool_pos + 1]
        pool_pos = pool_pos + 2
        return v
    end
end

_M._rand16 = rand_bytes


---------------------------------------------------------------------------
-- construction

function _M.new(class, opts)
    if not opts then
        return nil, "no options table specified"
    end

    local servers = opts.nameservers
    if type(servers) ~= "table" or #servers == 0 then
        return nil, "no nameservers specified"
    end

    local list = new_tab(#servers, 0)
    for i = 1, #servers do
        local s = servers[i]
        local host, port
        if type(s) == "table" then
            host, port = s[1], s[2] or 53
        else
            host, port = s, 53
        end
        if type(host) ~= "string" then
            return nil, "bad nameserver #" .. i
        end
        port = tonumber(port)
        if not port or port < 1 or port > 65535 then
            return nil, "bad nameserver port #" .. i
        end
        list[i] = { host, port }
    end

    local edns = opts.edns
    if edns == true then
        edns = DEFAULT_EDNS_PAYLOAD
    elseif edns ~= nil and edns ~= false then
        edns = tonumber(edns)
        if not edns or edns < 512 or edns > 65535 then
            return nil, "bad edns payload size"
        end
    else
        edns = nil
    end

    local n = #list
    return setmetatable({
        servers = list,
        cur = opts.no_random and 1 or (rand_bytes() % n) + 1,
        retrans = opts.retrans or 5,
        timeout = opts.timeout or 2000,
        no_recurse = opts.no_recurse,
        edns = edns,
        socks = true,   -- "initialized" marker; sockets are made per query
    }, mt)
end


function _M.set_timeout(self, timeout)
    if not self.socks then
        return nil, "not initialized"
    end
    self.timeout = timeout
    return true
end


function _M.destroy(self)
    self.socks = nil
    self.servers = nil
end


local function pick_server(self)
    local servers = self.servers
    local cur = self.cur
    self.cur = cur % #servers + 1
    return servers[cur]
end


local function server_str(server)
    return server[1] .. ":" .. server[2]
end


---------------------------------------------------------------------------
-- the request

local function encode_name(qname)
    -- returns the wire form and the canonical (lower-case, no final dot) name
    if type(qname) ~= "string" then
        return nil, "bad name"
    end
    local n = #qname
    if n > 0 and byte(qname, n) == 46 then           -- drop one final dot
        qname = sub(qname, 1, n - 1)
        n = n - 1
    end
    if n == 0 then
        return "\0", ""
    end
    if byte(qname, 1) == 46 then
        return nil, "bad name"
    end
    local parts = {}
    local i, k = 1, 0
    while i <= n do
        local j = find(qname, ".", i, true) or n + 1
        local len = j - i
        if len == 0 or len > 63 then
            return nil, "bad name"
        end
        k = k + 1
        parts[k] = char(len) .. sub(qname, i, j - 1)
        i = j + 1
    end
    k = k + 1
    parts[k] = "\0"
    local wire = concat(parts)
    if #wire > 255 then
        return nil, "bad name"
    end
    return wire, lower(qname)
end


local function build_request(self, qname, id, opts)
    local qtype = opts and opts.qtype or TYPE_A
    if type(qtype) ~= "number" or qtype < 0 or qtype > 65535 then
        return nil, "bad qtype"
    end
    local wire, canon = encode_name(qname)
    if not wire then
        return nil, canon
    end
    local edns = self.edns
    local req = {
        p16(id),
        self.no_recurse and "\0\0" or "\1\0",
        edns and "\0\1\0\0\0\0\0\1" or "\0\1\0\0\0\0\0\0",
        wire,
        p16(qtype),
        "\0\1",
    }
    if edns then
        -- OPT: root name, type 41, class = payload size, ttl 0, rdlen 0
        req[7] = "\0\0\41" .. p16(edns)
                 .. "\0\0\0\0\0\0"
    end
    return concat(req), canon, qtype
end


---------------------------------------------------------------------------
-- the reply

-- decode the name at pos (1-based); returns name, pos after it (in the
-- original stream), or nil, err. Pointers must point strictly backwards to
-- the start of an earlier label, which rules out loops.
local function decode_name(buf, pos, limit)
    local labels
    local nlabels = 0
    local p = pos
    local after                 -- position after the name in the stream
    local total = 0
    local floor = pos           -- a pointer must point before this
    while true do
        if p > limit then
            return nil, "truncated"
        end
        local len = byte(buf, p)
        if len == 0 then
            if not after then
                after = p + 1
            end
            break
        end
        local kind = band(len, 0xc0)
        if kind == 0xc0 then
            if p + 1 > limit then
                return nil, "truncated"
            end
            local target = lshift(band(len, 0x3f), 8) + byte(buf, p + 1) + 1
            if not after then
                after = p + 2
            end
            if target >= floor then
                return nil, "bad compression pointer"
            end
            floor = target
            p = target
        elseif kind ~= 0 then
            return nil, "bad label type"
        else
            if p + len > limit then
                return nil, "truncated"
            end
            total = total + len + 1
            if total > 255 then
                return nil, "name too long"
            end
            if not labels then
                labels = {}
            end
            nlabels = nlabels + 1
            labels[nlabels] = sub(buf, p + 1, p + len)
            p = p + len + 1
        end
    end
    if nlabels == 0 then
        return "", after
    end
    return concat(labels, ".", 1, nlabels), after
end

_M._decode_name = decode_name


local function parse_rr_data(ans, typ, buf, pos, len, limit)
    local last = pos + len          -- first byte after the rdata
    if typ == TYPE_A then
        if len ~= 4 then
            return nil, "bad A record value length: " .. len
        end
        local a, b, c, d = byte(buf, pos, pos + 3)
        ans.address = a .. "." .. b .. "." .. c .. "." .. d

    elseif typ == TYPE_AAAA then
        if len ~= 16 then
            return nil, "bad AAAA record value length: " .. len
        end
        local flds = new_tab(8, 0)
        for i = 0, 7 do
            flds[i + 1] = format("%x", u16(buf, pos + 2 * i))
        end
        ans.address = concat(flds, ":")

    elseif typ == TYPE_CNAME or typ == TYPE_NS or typ == TYPE_PTR then
        local name, p = decode_name(buf, pos, last - 1)
        if not name then
            return nil, p
        end
        if p ~= last then
            return nil, "bad record length"
        end
        if typ == TYPE_CNAME then
            ans.cname = name
        elseif typ == TYPE_NS then
            ans.nsdname = name
        else
            ans.ptrdname = name
        end

    elseif typ == TYPE_MX then
        if len < 3 then
            return nil, "bad MX record value length: " .. len
        end
        ans.preference = u16(buf, pos)
        local name, p = decode_name(buf, pos + 2, last - 1)
        if not name then
            return nil, p
        end
        if p ~= last then
            return nil, "bad record length"
        end
        ans.exchange = name

    elseif typ == TYPE_SRV then
        if len < 7 then
            return nil, "bad SRV record value length: " .. len
        end
        ans.priority = u16(buf, pos)
        ans.weight = u16(buf, pos + 2)
        ans.port = u16(buf, pos + 4)
        local name, p = decode_name(buf, pos + 6, last - 1)
        if not name then
            return nil, p
        end
        if p ~= last then
            return nil, "bad record length"
        end
        ans.target = name

    elseif typ == TYPE_TXT or typ == TYPE_SPF then
        local strs, n = {}, 0
        local p = pos
        while p < last do
            local slen = byte(buf, p)
            if p + slen > last - 1 then
                return nil, "bad TXT record value length"
            end
            n = n + 1
            strs[n] = sub(buf, p + 1, p + slen)
            p = p + slen + 1
        end
        local val
        if n == 1 then
            val = strs[1]
        elseif n == 0 then
            val = ""
        else
            val = strs
        end
        ans[typ == TYPE_TXT and "txt" or "spf"] = val

    elseif typ == TYPE_SOA then
        local name, p = decode_name(buf, pos, last - 1)
        if not name then
            return nil, p
        end
        ans.mname = name
        name, p = decode_name(buf, p, last - 1)
        if not name then
            return nil, p
        end
        ans.rname = name
        if p + 20 ~= last then
            return nil, "bad SOA record value length: " .. len
        end
        for i = 1, 5 do
            ans[soa_fields[i]] = u32(buf, p)
            p = p + 4
        end

    else
        ans.rdata = sub(buf, pos, last - 1)
    end
    return last
end


local function parse_section(answers, section, buf, pos, count, skip, limit)
    for _ = 1, count do
        local name, p = decode_name(buf, pos, limit)
        if not name then
            return nil, p
        end
        if p + 9 > limit then
            return nil, "truncated"
        end
        local typ = u16(buf, p)
        local class = u16(buf, p + 2)
        local ttl = u32(buf, p + 4)
        local len = u16(buf, p + 8)
        pos = p + 10
        if pos + len - 1 > limit then
            return nil, "truncated"
        end
        if skip then
            pos = pos + len
        else
            local ans = { name = name, type = typ, class = class, ttl = ttl,
                          section = section }
            local err
            pos, err = parse_rr_data(ans, typ, buf, pos, len, limit)
            if not pos then
                return nil, err
            end
            answers[#answers + 1] = ans
        end
    end
    return pos
end


-- check the header and question. Returns
--   flags, counts..., pos after the question
--   or nil, err, ignore (ignore = true: not a reply to this query at all)
local function check_reply(buf, id, qname, qtype)
    local n = #buf
    if n < 12 then
        return nil, "truncated", true
    end
    if u16(buf, 1) ~= id then
        return nil, "id mismatch", true
    end
    local flags = u16(buf, 3)
    if band(flags, 0x8000) == 0 then
        return nil, "bad QR flag in the DNS response", true
    end
    local nqs = u16(buf, 5)
    if nqs ~= 1 then
        return nil, format("bad number of questions in DNS response: %d", nqs), true
    end
    local name, pos = decode_name(buf, 13, n)
    if not name then
        return nil, pos, true
    end
    if pos + 3 > n then
        return nil, "truncated", true
    end
    if lower(name) ~= qname or u16(buf, pos) ~= qtype
       or u16(buf, pos + 2) ~= CLASS_IN
    then
        return nil, "question mismatch", true
    end
    return flags, pos + 4
end


local function parse_body(buf, flags, pos, opts)
    local n = #buf
    local nan, nns, nar = u16(buf, 7), u16(buf, 9), u16(buf, 11)
    local answers = {}
    local code = band(flags, 0xf)
    if code ~= 0 then
        answers.errcode = code
        answers.errstr = errstrs[code] or "unknown"
    end

    local want_ns, want_ar
    if opts then
        want_ns = opts.authority_section or opts.qtype == TYPE_SOA
        want_ar = opts.additional_section
    end

    local err
    pos, err = parse_section(answers, SECTION_AN, buf, pos, nan, false, n)
    if not pos then
        return nil, err
    end
    if not want_ns and not want_ar then
        return answers
    end
    pos, err = parse_section(answers, SECTION_NS, buf, pos, nns, not want_ns, n)
    if not pos then
        return nil, err
    end
    if not want_ar then
        return answers
    end
    pos, err = parse_section(answers, SECTION_AR, buf, pos, nar, false, n)
    if not pos then
        return nil, err
    end
    return answers
end


-- returns answers | nil, err, ignore, tc
local function parse_response(buf, id, qname, qtype, opts, via_tcp)
    local ok, flags, pos, ignore = pcall(check_reply, buf, id, qname, qtype)
    if not ok then
        return nil, "malformed reply", true
    end
    if not flags then
        return nil, pos, ignore
    end
    if not via_tcp and band(flags, 0x200) ~= 0 then
        return nil, "truncated", false, true       -- TC: retry over TCP
    end
    local answers, err
    ok, answers, err = pcall(parse_body, buf, flags, pos, opts)
    if not ok then
        return nil, "malformed reply"
    end
    return answers, err
end

_M._parse_response = parse_response


---------------------------------------------------------------------------
-- transports

local function tcp_exchange(self, server, req, id, qname, qtype, opts)
    local sock, err = tcp()
    if not sock then
        return nil, "failed to create tcp socket: " .. err
    end
    sock:settimeout(self.timeout)
    local where = server_str(server)

    local ok
    ok, err = sock:connect(server[1], server[2])
    if not ok then
        return nil, "failed to connect to TCP server " .. where .. ": " .. err
    end

    local len = #req
    ok, err = sock:send({ p16(len), req })
    if not ok then
        sock:close()
        return nil, "failed to send query to TCP server " .. where .. ": " .. err
    end

    local buf
    buf, err = sock:receive(2)
    if not buf then
        sock:close()
        return nil, "failed to receive the reply length field from TCP server "
                    .. where .. ": " .. err
    end
    len = u16(buf, 1)
    if len == 0 then
        sock:close()
        return nil, "empty reply from TCP server " .. where
    end
    buf, err = sock:receive(len)
    sock:close()
    if not buf then
        return nil, "failed to receive the reply message body from TCP server "
                    .. where .. ": " .. err
    end

    local answers
    answers, err = parse_response(buf, id, qname, qtype, opts, true)
    if not answers then
        return nil, "failed to parse the reply from the TCP server "
                    .. where .. ": " .. err
    end
    return answers
end


local function gen_id(self)
    return self._id or rand_bytes()
end


-- one UDP attempt at one server: answers | nil, err
local function udp_exchange(self, server, req, id, qname, qtype, opts)
    local where = server_str(server)
    local sock, err = udp()
    if not sock then
        return nil, "failed to create udp socket: " .. err
    end
    local ok
    ok, err = sock:setpeername(server[1], server[2])
    if not ok then
        sock:close()
        return nil, "failed to set peer name for UDP server " .. where .. ": " .. err
    end

    local timeout = self.timeout
    sock:settimeout(timeout)
    ok, err = sock:send(req)
    if not ok then
        sock:close()
        return nil, "failed to send request to UDP server " .. where .. ": " .. err
    end

    update_time()
    local deadline = now() + timeout / 1000
    for _ = 1, MAX_TRIES_PER_RECV do
        local buf
        buf, err = sock:receive(65535)
        if not buf then
            sock:close()
            return nil, "failed to receive reply from UDP server " .. where .. ": " .. err
        end
        local answers, ignore, tc
        answers, err, ignore, tc = parse_response(buf, id, qname, qtype, opts, false)
        if answers then
            sock:close()
            return answers
        end
        if tc then
            sock:close()
            log(DEBUG, "query the TCP server due to reply truncation")
            return tcp_exchange(self, server, req, id, qname, qtype, opts)
        end
        if not ignore then
            sock:close()
            return nil, "failed to parse the reply from UDP server " .. where .. ": " .. err
        end
        log(DEBUG, "ignored a DNS reply from ", where, ": ", err)
        update_time()
        local left = deadline - now()
        if left <= 0 then
            sock:close()
            return nil, "failed to receive reply from UDP server " .. where .. ": timeout"
        end
        sock:settimeout(left * 1000 < 1 and 1 or left * 1000)
    end
    sock:close()
    return nil, "failed to receive reply from UDP server " .. where .. ": too many bad replies"
end


---------------------------------------------------------------------------
-- the public queries

function _M.query(self, qname, opts, tries)
    if not self.socks then
        return nil, "not initialized"
    end
    local id = gen_id(self)
    local req, canon, qtype = build_request(self, qname, id, opts)
    if not req then
        return nil, canon
    end

    if tries then
        tries[1] = nil
    end

    local err
    for i = 1, self.retrans do
        local server = pick_server(self)
        local answers
        answers, err = udp_exchange(self, server, req, id, canon, qtype, opts)
        if answers and answers.errcode == 1 and self.edns then
            -- FORMERR to a query with an OPT record: a server without EDNS
            -- (RFC 6891 section 7); ask again without it
            local edns = self.edns
            self.edns = nil
            id = gen_id(self)
            local plain = build_request(self, qname, id, opts)
            self.edns = edns
            answers, err = udp_exchange(self, server, plain, id, canon, qtype, opts)
        end
        if answers then
            return answers, nil, tries
        end
        if tries then
            tries[i] = err
            tries[i + 1] = nil
        end
        if i < self.retrans then
            id = gen_id(self)
            req = build_request(self, qname, id, opts)
        end
    end
    return nil, err, tries
end


function _M.tcp_query(self, qname, opts)
    if not self.socks then
        return nil, "not initialized"
    end
    local id = gen_id(self)
    local req, canon, qtype = build_request(self, qname, id, opts)
    if not req then
        return nil, canon
    end
    return tcp_exchange(self, pick_server(self), req, id, canon, qtype, opts)
end


---------------------------------------------------------------------------
-- addresses

local function split_colons(addr)
    local t, n, i = {}, 0, 1
    while true do
        local j = find(addr, ":", i, true)
        n = n + 1
        if not j then
            t[n] = sub(addr, i)
            return t, n
        end
        t[n] = sub(addr, i, j - 1)
        i = j + 1
    end
end


-- "2001:db8::2" -> "2001:db8:0:0:0:0:0:2" (as upstream: groups are not padded)
local function expand_ipv6_addr(addr)
    local s, e = find(addr, "::", 1, true)
    if not s then
        return addr
    end
    local head = sub(addr, 1, s - 1)
    local tail = sub(addr, e + 1)
    local nh = head == "" and 0 or select(2, split_colons(head))
    local nt = tail == "" and 0 or select(2, split_colons(tail))
    local zeros = 8 - nh - nt
    if zeros < 1 then
        zeros = 1
    end
    local mid = rep("0:", zeros - 1) .. "0"
    local out = mid
    if head ~= "" then
        out = head .. ":" .. out
    end
    if tail ~= "" then
        out = out .. ":" .. tail
    end
    return out
end

_M.expand_ipv6_addr = expand_ipv6_addr


-- the longest run of two or more zero groups becomes "::" (RFC 5952)
function _M.compress_ipv6_addr(addr)
    local groups, n = split_colons(expand_ipv6_addr(addr))
    if n ~= 8 then
        return addr
    end
    for i = 1, 8 do
        local g = gsub(lower(groups[i]), "^0+", "")
        groups[i] = g == "" and "0" or g
    end
    local best_s, best_len, run_s, run_len = 0, 0, 0, 0
    for i = 1, 8 do
        if groups[i] == "0" then
            if run_len == 0 then
                run_s = i
            end
            run_len = run_len + 1
            if run_len > best_len then
                best_s, best_len = run_s, run_len
            end
        else
            run_len = 0
        end
    end
    if best_len < 2 then
        return concat(groups, ":")
    end
    local head = concat(groups, ":", 1, best_s - 1)
    local tail = concat(groups, ":", best_s + best_len, 8)
    return head .. "::" .. tail
end


function _M.arpa_str(addr)
    if find(addr, ":", 1, true) then
        local groups, n = split_colons(expand_ipv6_addr(addr))
        if n ~= 8 then
            return nil, "bad address"
        end
        local nibbles = new_tab(33, 0)
        local k = 0
        for i = 8, 1, -1 do
            local g = groups[i]
            if #g > 4 then
                return nil, "bad address"
            end
            g = rep("0", 4 - #g) .. lower(g)
            for j = 4, 1, -1 do
                k = k + 1
                nibbles[k] = sub(g, j, j)
            end
        end
        nibbles[k + 1] = "ip6.arpa"
        return concat(nibbles, ".")
    end
    local a, b, c, d = addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then
        return addr
    end
    return d .. "." .. c .. "." .. b .. "." .. a .. ".in-addr.arpa"
end


function _M.reverse_query(self, addr)
    return self:query(_M.arpa_str(addr), { qtype = TYPE_PTR })
end


return _M
