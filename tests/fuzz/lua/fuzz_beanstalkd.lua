-- resty.beanstalkd scenarios for tests/fuzz (see fuzz_run.lua for the contract).
local beanstalkd = require "resty.beanstalkd"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "job", "peek" } }

function _M.open(host, port, t)
    local bs = beanstalkd:new()
    bs:set_timeouts(t, t, t)
    -- the tubes set at connect time: a connection that changed them is not poolable
    local ok, err = bs:connect(host, port, { use = "fuzz", watch = { "fuzz" } })
    if not ok then
        return nil, err, bs
    end
    return bs
end

local function start(host, port, t)
    local bs, err, half = _M.open(host, port, t)
    return bs or half, err
end

function _M.keepalive(bs) return bs:set_keepalive(10000, 4) end
function _M.reused(bs) return bs:get_reused_times() end
function _M.close(bs) return bs:close() end

function _M.sentinel(bs)
    local tube, err = bs:list_tube_used()
    if not tube then
        return nil, err
    end
    return S(tube)
end

-- calls {method, args...}: each result (all values) is kept; nil, err ends the scenario
local function calls(bs, list)
    local out = {}
    for i, c in ipairs(list) do
        local r = { bs[c[1]](bs, unpack(c, 2)) }
        if r[1] == nil then
            return bs, nil, r[2]
        end
        out[i] = r
    end
    return bs, S(out)
end

_M.scenarios.job = function(host, port, t)
    local bs, err = start(host, port, t)
    if err then return bs, nil, err end
    local id
    id, err = bs:put("hello\r\nworld", 10, 0, 60)
    if not id then return bs, nil, err end
    local rid, body
    rid, body = bs:reserve(1)
    if not rid then return bs, nil, body end
    local ok
    ok, err = bs:delete(rid)
    if not ok then return bs, nil, err end
    return bs, S({ rid == id, body, ok })
end

_M.scenarios.peek = function(host, port, t)
    local bs, err = start(host, port, t)
    if err then return bs, nil, err end
    local id
    id, err = bs:put(string.rep("j", 100), 5, 30, 60)
    if not id then return bs, nil, err end
    local pid, body = bs:peek(id)
    if not pid then return bs, nil, body end
    local st
    st, err = bs:stats_job(id)
    if not st then return bs, nil, err end
    local ok
    ok, err = bs:delete(id)
    if not ok then return bs, nil, err end
    return bs, S({ pid == id, #body, st.state, st.pri, st.tube, ok })
end

_M.scenarios.lists = function(host, port, t)
    local bs, err = start(host, port, t)
    if err then return bs, nil, err end
    local gone
    gone, err = bs:delete(999999)
    if gone ~= nil or err ~= "NOT_FOUND" then
        return bs, nil, err or "delete of a missing job did not fail"
    end
    local bs2, res
    bs2, res, err = calls(bs, { { "list_tubes" }, { "list_tubes_watched" }, { "stats_tube", "fuzz" } })
    if not res then return bs2, nil, err end
    return bs, res
end

_M.scenarios.sentinel = function(host, port, t)
    local bs, err = start(host, port, t)
    if err then return bs, nil, err end
    return bs, _M.sentinel(bs)
end

return _M
