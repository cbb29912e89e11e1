-- Shared by tests/test_tcp.py, test_receiveuntil.py, test_pool.py, test_udp_unix.py and
-- test_resolve.py (prepended to each inline script).
-- P(...)       prints every value (trailing nils included) joined by "|"
-- PC(f, ...)   pcall(f, ...): "ok|values..." or "err|message" (the "file:line: " prefix removed)
-- Q(...)       like P but strings are quoted with control bytes as \ddd, for exact comparisons
-- elapsed(t0)  seconds since t0 (ngx.now() based, after ngx.update_time())
local function P(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
  ngx.say(table.concat(t, "|"))
end
local function PC(f, ...)
  local r = { pcall(f, ...) }
  if r[1] then
    P("ok", unpack(r, 2, table.maxn(r)))
  else
    P("err", (tostring(r[2]):gsub("^[^\n]-:%d+: ", "")))
  end
end
local function q(v)
  if type(v) ~= "string" then return tostring(v) end
  return '"' .. v:gsub('[%c"\\]', function(c) return ("\\%03d"):format(c:byte()) end) .. '"'
end
local function Q(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = q((select(i, ...))) end
  ngx.say(table.concat(t, "|"))
end
local function elapsed(t0)
  ngx.update_time()
  return ngx.now() - t0
end
