-- Shared by the fuzz scenarios: a deterministic rendering of results, and the escape that keeps
-- every printed field on one line of printable ASCII.

local type = type
local tostring = tostring
local pairs = pairs
local sort = table.sort
local concat = table.concat
local format = string.format
local gsub = string.gsub
local byte = string.byte
local floor = math.floor

local _M = {}

local function esc(s)
    return (gsub(s, "[%z\1-\31\127-\255]", function(c)
        return format("\\x%02x", byte(c))
    end))
end
_M.esc = esc

local function S(v)
    local t = type(v)
    if v == ngx.null then
        return "null"
    elseif t == "string" then
        return '"' .. esc(v) .. '"'
    elseif t == "number" then
        if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
            return format("%d", v)
        end
        return format("%.17g", v)
    elseif t == "table" then
        local keys = {}
        for k in pairs(v) do
            keys[#keys + 1] = k
        end
        sort(keys, function(a, b)
            local ta, tb = type(a), type(b)
            if ta ~= tb then
                return ta < tb
            end
            if ta == "number" or ta == "string" then
                return a < b
            end
            return tostring(a) < tostring(b)
        end)
        local out = {}
        for i, k in ipairs(keys) do
            out[i] = S(k) .. "=" .. S(v[k])
        end
        return "{" .. concat(out, ",") .. "}"
    end
    return tostring(v)
end
_M.S = S

return _M
