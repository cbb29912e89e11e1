-- fuzz_run.lua DRIVER MODE CTL_PORT DATA_PORT TIMEOUT_MS [REAL_HOST REAL_PORT]
--
-- One cosocket process for a whole batch: asks the control port (tests/fuzz/servers.py) for
-- its cases one at a time and runs each case's scenario (tests/fuzz/lua/fuzz_DRIVER.lua)
-- against 127.0.0.1:DATA_PORT with every socket timeout at TIMEOUT_MS, then prints
--
--   CASE <n> <ms> <status> <detail> <pool>      (tab-separated, fields escaped)
--
-- status: ok (detail = the rendered result), err (a call returned nil/false, err: detail =
-- err), bad (a failure without a non-empty string err) or raised (the driver raised: detail =
-- the error; pcall is here only to detect it). pool: what the keepalive check found --
-- n/a (the driver has no pool), refused (set_keepalive said no, with a reason), dropped (the
-- pool closed it before reuse), ok:<sentinel result> (reused: the sentinel request on it got
-- this), or err:/raised:/bad:/reopen: with what went wrong.
--
-- MODE fuzz: then one check against the real server at REAL_HOST:REAL_PORT with the same
-- driver: "REAL <scenario> ok|err <detail>" (a scenario, set_keepalive, a reused connection
-- for the sentinel). MODE record: the scenario's connection is closed (never pooled, so the
-- next scenario records a fresh connection) and "RESULT <n> <scenario> <status> <detail>".

local driver, mode, ctl_port, data_port, timeout = ...
local real_host, real_port = select(6, ...)
ctl_port, data_port, timeout = tonumber(ctl_port), tonumber(data_port), tonumber(timeout)

local util = require "fuzz_util"
local M = require("fuzz_" .. driver)
local esc = util.esc
local HOST = "127.0.0.1"

local function line(...)
    io.stdout:write(table.concat({ ... }, "\t"), "\n")
    io.stdout:flush()
end

local function outcome(ok, obj, res, err)
    if not ok then
        return nil, "raised", tostring(obj)
    end
    if res ~= nil then
        return obj, "ok", res
    end
    if type(err) == "string" and err ~= "" then
        return obj, "err", err
    end
    return obj, "bad", "error value " .. type(err) .. ": " .. tostring(err)
end

-- set_keepalive, then the same pool again: a reused connection must answer the sentinel
local function pool_check(obj, host, port, t)
    if not M.keepalive then
        if obj then
            pcall(M.close, obj)
        end
        return "n/a"
    end
    if not obj then
        return "n/a"
    end
    local ok, kok, kerr = pcall(M.keepalive, obj)
    if not ok then
        return "raised:" .. tostring(kok)
    end
    if not kok then
        pcall(M.close, obj)
        if type(kerr) ~= "string" or kerr == "" then
            return "bad:set_keepalive failed without a reason"
        end
        return "refused"
    end
    local ok2, o2, oerr = pcall(M.open, host, port, t)
    if not ok2 then
        return "raised:" .. tostring(o2)
    end
    if not o2 then
        return "reopen:" .. tostring(oerr)
    end
    if M.reused(o2) == 0 then
        pcall(M.close, o2)
        return "dropped"
    end
    local _, st, detail = outcome(pcall(function()
        return o2, M.sentinel(o2)
    end))
    pcall(M.close, o2)
    if st == "ok" then
        return "ok:" .. detail
    end
    return st .. ":" .. detail
end

local ctl = ngx.socket.tcp()
ctl:settimeout(60000)
assert(ctl:connect(HOST, ctl_port))

while true do
    assert(ctl:send("next\n"))
    local l = assert(ctl:receive("*l"))
    if l == "end" then
        break
    end
    local n, name = l:match("^case (%d+) (%S+)$")
    assert(n, "bad control line: " .. l)
    local scenario = assert(M.scenarios[name], "no scenario " .. name)

    ngx.update_time()
    local t0 = ngx.now()
    local obj, st, detail = outcome(pcall(scenario, HOST, data_port, timeout))
    if mode == "record" then
        if obj then
            pcall(M.close, obj)
        end
        line("RESULT", n, name, st, esc(detail))
    else
        local pool = pool_check(obj, HOST, data_port, timeout)
        ngx.update_time()
        line("CASE", n, string.format("%d", (ngx.now() - t0) * 1000), st, esc(detail), esc(pool))
    end
    assert(ctl:send("done " .. n .. "\n"))
    assert(ctl:receive("*l") == "ok")
end
ctl:close()

if mode == "fuzz" and real_host then
    real_port = tonumber(real_port)
    for _, name in ipairs(M.real) do
        local obj, st, detail = outcome(pcall(M.scenarios[name], real_host, real_port, 5000))
        local pool = pool_check(obj, real_host, real_port, 5000)
        line("REAL", name, st, esc(detail), esc(pool))
    end
end
