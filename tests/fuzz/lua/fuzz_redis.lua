-- resty.redis scenarios for tests/fuzz (see fuzz_run.lua for the contract): each returns
-- the object and the rendered result, or the object, nil and the error.
local redis = require "resty.redis"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "basic", "pipeline" } }

function _M.open(host, port, t)
    local red = redis:new()
    red:set_timeouts(t, t, t)
    local ok, err = red:connect(host, port)
    if not ok then
        return nil, err, red
    end
    return red
end

local function start(host, port, t)
    local red, err, half = _M.open(host, port, t)
    return red or half, err
end

function _M.keepalive(red) return red:set_keepalive(10000, 4) end
function _M.reused(red) return red:get_reused_times() end
function _M.close(red) return red:close() end

function _M.sentinel(red)
    local res, err = red:ping()
    if not res then
        return nil, err
    end
    return S(res)
end

-- runs calls {method, args...} in turn; a server error (false, msg) is part of the result,
-- a failure (nil, err) ends the scenario
local function calls(red, list)
    local out = {}
    for i, c in ipairs(list) do
        local res, err = red[c[1]](red, unpack(c, 2))
        if res == nil then
            return red, nil, err
        end
        out[i] = res == false and { false, err } or res
    end
    return red, S(out)
end

_M.scenarios.basic = function(host, port, t)
    local red, err = start(host, port, t)
    if err then return red, nil, err end
    return calls(red, {
        { "del", "fuzz:k", "fuzz:n" }, { "set", "fuzz:k", "value one" }, { "get", "fuzz:k" },
        { "get", "fuzz:missing" }, { "incr", "fuzz:n" }, { "incrby", "fuzz:n", 41 },
        { "mget", "fuzz:k", "fuzz:missing", "fuzz:n" }, { "exists", "fuzz:k" },
    })
end

_M.scenarios.pipeline = function(host, port, t)
    local red, err = start(host, port, t)
    if err then return red, nil, err end
    red:init_pipeline()
    red:del("fuzz:l", "fuzz:h")
    red:rpush("fuzz:l", "a", "bb", "ccc")
    red:lrange("fuzz:l", 0, -1)
    red:hset("fuzz:h", "f1", "v1", "f2", "")
    red:hgetall("fuzz:h")
    red:get("fuzz:missing")
    red:lpush("fuzz:h", "x")
    local res
    res, err = red:commit_pipeline()
    if not res then
        return red, nil, err
    end
    return red, S(res)
end

_M.scenarios.errors = function(host, port, t)
    local red, err = start(host, port, t)
    if err then return red, nil, err end
    return calls(red, {
        { "set", "fuzz:s", "a string" }, { "lpush", "fuzz:s", "x" }, { "incr", "fuzz:s" },
        { "get", "fuzz:s" },
    })
end

_M.scenarios.binary = function(host, port, t)
    local red, err = start(host, port, t)
    if err then return red, nil, err end
    local b = {}
    for i = 0, 299 do b[#b + 1] = string.char(i % 256) end
    local v = "\r\n$5\r\n" .. table.concat(b)
    local ok
    ok, err = red:set("fuzz:b", v)
    if not ok then return red, nil, err end
    local res
    res, err = red:get("fuzz:b")
    if not res then return red, nil, err end
    return red, S({ ok, #res, res == v and "same" or ngx.md5(res) })
end

_M.scenarios.sentinel = function(host, port, t)
    local red, err = start(host, port, t)
    if err then return red, nil, err end
    return red, _M.sentinel(red)
end

return _M
