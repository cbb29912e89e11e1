-- tests/compat/check.lua -- the tiny reporting helper of the usage checks: each check
-- prints "ok - NAME" or "not ok - NAME: why", and the last line counts them. Runs the same
-- on cosocket and under resty-cli (no cosocket-only API here).
local _M = {}

local passed, failed = 0, 0
local tostring, print = tostring, print

local function show(v)
    if type(v) == "string" then
        return string.format("%q", v)
    end
    return tostring(v)
end

-- check.eq(name, got, want): got == want
function _M.eq(name, got, want)
    if got == want then
        passed = passed + 1
        print("ok - " .. name)
    else
        failed = failed + 1
        print("not ok - " .. name .. ": got " .. show(got) .. ", want " .. show(want))
    end
end

-- check.ok(name, cond, why): a condition, with what was seen when it fails
function _M.ok(name, cond, why)
    _M.eq(name, cond and true or false, true)
    if not cond and why then
        print("#   " .. tostring(why))
    end
end

function _M.done()
    print(string.format("# %d passed, %d failed", passed, failed))
end

return _M
