-- bench/lua/common.lua: shared by the benchmark scripts, which run unchanged on this
-- runtime and inside nginx + ngx_lua. Parameters come from the global BENCH table (set
-- by the harness's wrapper) and results go out with ngx.say as "key=value" words.
local _M = {}

-- CPU seconds (user + sys) of this process so far, from /proc/self/stat.
function _M.cpu()
    local f = io.open("/proc/self/stat")
    local s = f:read("*a")
    f:close()
    -- the fields after the ")" that ends the command name: utime is the 12th, stime the 13th
    local rest = s:match("%) (.*)")
    local fields = {}
    for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
    return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

-- Resident set size in KiB, from /proc/self/status.
function _M.rss_kb()
    local f = io.open("/proc/self/status")
    local s = f:read("*a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+)"))
end

function _M.now()
    ngx.update_time()
    return ngx.now()
end

-- Runs `total` calls of op(i) shared among `conc` light threads; returns elapsed, cpu.
function _M.run(conc, total, setup, op)
    local per, extra = math.floor(total / conc), total % conc
    local states = {}
    for t = 1, conc do states[t] = setup(t) end
    local t0, c0 = _M.now(), _M.cpu()
    local threads = {}
    for t = 1, conc do
        local n = per + (t <= extra and 1 or 0)
        threads[t] = ngx.thread.spawn(function()
            local st = states[t]
            for i = 1, n do
                local ok, err = op(st, i)
                if not ok then error("op failed: " .. tostring(err)) end
            end
        end)
    end
    for t = 1, conc do
        local ok, err = ngx.thread.wait(threads[t])
        if not ok then error(err) end
    end
    return _M.now() - t0, _M.cpu() - c0
end

function _M.report(ops, elapsed, cpu, extra)
    ngx.say("ops=", ops, " elapsed=", string.format("%.6f", elapsed), " cpu=", string.format("%.6f", cpu),
            extra and (" " .. extra) or "")
end

return _M
