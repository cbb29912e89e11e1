-- bench/shdict/sd.lua: ngx.shared.DICT get or set (BENCH.mode) from `conc` light threads,
-- `ops` operations in all, over 1000 keys of a dict named "bench" (cosocket --shdict
-- 'bench 64m'; lua_shared_dict bench 64m in nginx), 32-byte string values. Runs unchanged on
-- cosocket and inside nginx + ngx_lua; the result is one line "ops=N elapsed=S cpu=S".
local common = require "common"  -- bench/lua/common.lua: run(), report() for both runtimes
local B = BENCH

local dict = ngx.shared.bench
local nkeys = 1000
local keys, value = {}, string.rep("v", 32)
for i = 1, nkeys do
    keys[i] = "key:" .. i
    assert(dict:set(keys[i], value))
end

local op
if B.mode == "get" then
    op = function(_, i)
        local v = dict:get(keys[i % nkeys + 1])
        if v ~= value then return nil, "bad value " .. tostring(v) end
        return true
    end
else
    op = function(_, i)
        return dict:set(keys[i % nkeys + 1], value)
    end
end

local elapsed, cpu = common.run(B.conc, B.ops, function() return true end, op)
common.report(B.ops, elapsed, cpu)
