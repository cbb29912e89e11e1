-- bench/dns/bench.lua: `ops` lookups of BENCH.name (an A record of the test zone) through this
-- repo's DNS drivers from `conc` light threads, against the server at BENCH.host:BENCH.port.
--   mode "uncached": resty.dns.resolver:query per op, one UDP round trip with a fresh socket
--                    (random source port) and a random id; a resolver per light thread
--   mode "cached":   resty.dns.client:resolve answered from its TTL cache (never yields);
--                    one client shared by every light thread
-- Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come from the global BENCH
-- table; the result is one line "ops=N elapsed=S cpu=S".
local resolver = require "resty.dns.resolver"
local client = require "resty.dns.client"
local common = require "common"  -- bench/lua/common.lua: run(), report() for both runtimes
local B = BENCH

local nameservers = { { B.host, B.port } }
local setup, op
if B.mode == "uncached" then
    setup = function()
        return assert(resolver:new{ nameservers = nameservers, retrans = 1, timeout = 2000 })
    end
    op = function(r)
        local ans, err = r:query(B.name)
        if not ans then return nil, err end
        if ans.errcode or #ans == 0 then return nil, "bad answer: " .. tostring(ans.errstr) end
        return true
    end
elseif B.mode == "cached" then
    local c = assert(client.new{ resolv_conf = false, hosts = false, nameservers = nameservers })
    assert(c:resolve(B.name, { qtype = 1 }))
    setup = function() return c end
    op = function(cl)
        local recs, err = cl:resolve(B.name, { qtype = 1 })
        if not recs then return nil, err end
        return true
    end
else
    error("BENCH.mode: uncached | cached")
end

local elapsed, cpu = common.run(B.conc, B.ops, setup, op)
common.report(B.ops, elapsed, cpu)
