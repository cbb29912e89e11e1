-- Prepended to the Lua of tests/test_redis*.py (after tests/lua/socket/prelude.lua).
-- R()      a connected resty.redis object on the session redis (@HOST@ / @PORT@), 2 s timeout
-- S(v)     a value rendered for exact comparison: tables as {a,b} / {k=v} (keys sorted),
--          ngx.null as "null", strings quoted with control bytes escaped (Q-style)
local redis = require "resty.redis"
local function R(host, port)
  local red = assert(redis:new())
  red:set_timeout(2000)
  local ok, err = red:connect(host or "@HOST@", port or @PORT@)
  assert(ok, err)
  return red
end
local function S(v)
  if v == ngx.null then return "null" end
  if type(v) == "string" then
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c) return ("\\%03d"):format(c:byte()) end) .. '"'
  end
  if type(v) ~= "table" then return tostring(v) end
  local parts, n = {}, #v
  for i = 1, n do parts[i] = S(v[i]) end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. S(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
local function PS(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = S((select(i, ...))) end
  ngx.say(table.concat(t, "|"))
end
