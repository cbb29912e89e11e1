-- Helpers for the DNS tests (tests/test_dns*.py prepend this file).
-- D(ans, err) prints one line per record, keys sorted, "k=v"; tables as [a|b];
-- a nil answer prints "ERR <err>"; errcode/errstr print first.
local concat, sort = table.concat, table.sort

local function val(v)
    if type(v) == "table" then
        local t = {}
        for i = 1, #v do t[i] = tostring(v[i]) end
        return "[" .. concat(t, "|") .. "]"
    end
    return tostring(v)
end

function D(ans, err)
    if not ans then
        print("ERR " .. tostring(err))
        return
    end
    if ans.errcode then
        print("errcode=" .. ans.errcode .. " errstr=" .. tostring(ans.errstr))
    end
    for _, a in ipairs(ans) do
        local t = {}
        for k, v in pairs(a) do t[#t + 1] = k .. "=" .. val(v) end
        sort(t)
        print(concat(t, " "))
    end
end

function P(...)
    local n = select("#", ...)
    local t = {}
    for i = 1, n do t[i] = val((select(i, ...))) end
    print(concat(t, " "))
end
