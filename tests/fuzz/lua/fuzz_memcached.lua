-- resty.memcached scenarios for tests/fuzz (see fuzz_run.lua for the contract).
local memcached = require "resty.memcached"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "basic", "multi" } }

function _M.open(host, port, t)
    local mc = memcached:new()
    mc:set_timeouts(t, t, t)
    local ok, err = mc:connect(host, port)
    if not ok then
        return nil, err, mc
    end
    return mc
end

local function start(host, port, t)
    local mc, err, half = _M.open(host, port, t)
    return mc or half, err
end

function _M.keepalive(mc) return mc:set_keepalive(10000, 4) end
function _M.reused(mc) return mc:get_reused_times() end
function _M.close(mc) return mc:close() end

function _M.sentinel(mc)
    local v, err = mc:version()
    if not v then
        return nil, err
    end
    return S(v)
end

-- ok, err pairs (NOT_STORED, NOT_FOUND are results) until a transport failure
local function store(mc, out, method, ...)
    local ok, err = mc[method](mc, ...)
    if not ok and (err == "NOT_STORED" or err == "NOT_FOUND" or err == "EXISTS") then
        out[#out + 1] = { false, err }
        return true
    end
    if not ok then
        return nil, err
    end
    out[#out + 1] = ok
    return true
end

_M.scenarios.basic = function(host, port, t)
    local mc, err = start(host, port, t)
    if err then return mc, nil, err end
    local out = {}
    for _, c in ipairs({ { "set", "fuzz:k", "value one", 0, 7 }, { "add", "fuzz:k", "x" },
                         { "delete", "fuzz:gone" }, { "set", "fuzz:n", "10" } }) do
        local ok
        ok, err = store(mc, out, unpack(c))
        if not ok then return mc, nil, err end
    end
    local v, flags
    v, flags, err = mc:get("fuzz:k")
    if err then return mc, nil, err end
    out[#out + 1] = { v, flags }
    v, flags, err = mc:get("fuzz:missing")
    if err then return mc, nil, err end
    out[#out + 1] = { v == nil and "miss" or v, flags }
    v, err = mc:incr("fuzz:n", 5)
    if not v then return mc, nil, err end
    out[#out + 1] = v
    return mc, S(out)
end

_M.scenarios.multi = function(host, port, t)
    local mc, err = start(host, port, t)
    if err then return mc, nil, err end
    local out = {}
    for _, c in ipairs({ { "set", "fuzz:a", "alpha\r\nEND\r\n", 0, 1 },
                         { "set", "fuzz:b", string.rep("b", 200), 0, 2 } }) do
        local ok
        ok, err = store(mc, out, unpack(c))
        if not ok then return mc, nil, err end
    end
    local res
    res, err = mc:get({ "fuzz:a", "fuzz:b", "fuzz:missing" })
    if not res then return mc, nil, err end
    out[#out + 1] = res
    local v, flags, cas
    v, flags, cas, err = mc:gets("fuzz:a")
    if err then return mc, nil, err end
    out[#out + 1] = { v, flags, cas and "cas" }
    return mc, S(out)
end

_M.scenarios.stats = function(host, port, t)
    local mc, err = start(host, port, t)
    if err then return mc, nil, err end
    local st
    st, err = mc:stats("settings")
    if not st then return mc, nil, err end
    local n = 0
    for _ in pairs(st) do n = n + 1 end
    return mc, S({ n, st.maxconns, st.tcpport ~= nil })
end

_M.scenarios.sentinel = function(host, port, t)
    local mc, err = start(host, port, t)
    if err then return mc, nil, err end
    return mc, _M.sentinel(mc)
end

return _M
