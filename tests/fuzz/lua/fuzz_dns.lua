-- resty.dns.resolver scenarios for tests/fuzz (see fuzz_run.lua for the contract), against
-- tests/servers/cosocket.test.zone. Query ids are fixed through the resolver's test seam
-- (r._id) so a recorded reply matches a replayed query. No pool: UDP, and TCP is not kept.
local resolver = require "resty.dns.resolver"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "a", "txt_tcp", "truncated" } }
local ID = 0x4a17

function _M.open(host, port, t)
    local r, err = resolver:new({ nameservers = { { host, port } }, retrans = 1, timeout = t })
    if not r then
        return nil, err
    end
    r._id = ID
    return r
end

function _M.close(r) return r:destroy() end

local function ask(how, name, qtype, extra)
    return function(host, port, t)
        local r, err = _M.open(host, port, t)
        if not r then return nil, nil, err end
        local opts = { qtype = qtype }
        for k, v in pairs(extra or {}) do opts[k] = v end
        local answers
        if how == "tcp" then
            answers, err = r:tcp_query(name, opts)
        else
            answers, err = r:query(name, opts)
        end
        if not answers then
            return r, nil, err
        end
        return r, S(answers)
    end
end

_M.scenarios.a = ask("udp", "www.cosocket.test", resolver.TYPE_A)
_M.scenarios.mx = ask("udp", "cosocket.test", resolver.TYPE_MX, { additional_section = true })
_M.scenarios.srv = ask("udp", "_sip._tcp.cosocket.test", resolver.TYPE_SRV,
                       { additional_section = true, authority_section = true })
_M.scenarios.cname = ask("udp", "chain.cosocket.test", resolver.TYPE_A)
_M.scenarios.nxdomain = ask("udp", "nope.cosocket.test", resolver.TYPE_A,
                            { authority_section = true })
_M.scenarios.aaaa_soa = ask("udp", "cosocket.test", resolver.TYPE_SOA)
_M.scenarios.txt_tcp = ask("tcp", "multi.cosocket.test", resolver.TYPE_TXT)
-- truncated over UDP (no EDNS), asked again over TCP
_M.scenarios.truncated = ask("udp", "big.cosocket.test", resolver.TYPE_TXT)

return _M
