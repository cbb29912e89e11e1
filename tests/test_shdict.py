"""ngx.shared.DICT (cosocket --shdict 'NAME SIZE'): every method, its return values and error
strings, a full dict (LRU eviction, forcible, "no memory"), churn, millisecond expiry, and the
dict shared by -w workers, including a worker killed while it holds the dict's lock.

The expected outputs of test_argument_checks, test_methods and test_expiry are the outputs of
the same scripts under /work/shared/tools/resty-ref --shdict 'dogs 1m' (resty-cli on nginx +
ngx_lua 0.10.23 + lua-resty-core 0.1.25), line for line; resty.core raises some errors from
its own file (resty/core/shdict.lua:NNN:), so err() strips an error's position on both.
"""
import os
import re
import signal
import subprocess
import time

import pytest

# show(...) prints the number of values and each (strings %q); err(f, ...) pcalls f and
# prints ok and the error without its position
SHOW = r'''local function fmt(v) return type(v) == "string" and string.format("%q", v) or tostring(v) end
local function show(...)
  local n = select('#', ...)
  local t = {}
  for i = 1, n do t[i] = fmt((select(i, ...))) end
  io.write(n, ": ", table.concat(t, ", "), "\n")
end
-- pcall, the error's position stripped (resty.core raises from its own file)
local function err(f, ...)
  local ok, e = pcall(f, ...)
  io.write(tostring(ok), ": ", (tostring(e):gsub("^[^:]*:%d+: ", "")), "\n")
end
'''


def run_dogs(run_lua_ok, body, size="1m", **kw):
    return run_lua_ok(SHOW + body, flags=["--shdict", f"dogs {size}"], **kw).splitlines()


# checked against resty-ref: bad self, missing and wrong-typed arguments, nil/empty/too-long keys, bad values
ARGS_LUA = r'''
local d = ngx.shared.dogs
err(d.set, nil, "a", 1)
err(d.get)
err(d.set, {}, "a", 1)
err(d.set, {1}, "a", 1)
err(d.incr, "dogs", "a", 1)
err(d.lpush)
err(d.lpush, nil, "a", 1)
err(d.lpush, {}, "a", 1)
err(d.lpush, d, "k", 1, 2)
err(d.lpop, d, "k", 1)
err(d.llen, d)
err(d.get_keys)
err(d.get_keys, {})
err(d.get_keys, {true})
err(d.flush_expired, 1)
err(d.get_keys, d, 1, 2)
err(d.get_keys, d, "x")
err(d.flush_expired, d, "x")
err(d.set, d, "a", 1, "x")
err(d.set, d, "a", 1, true)
err(d.set, d, "a", 1, -1)
err(d.set, d, "a", 1, 0, "x")
err(d.set, d, "a", 1, 0, {})
err(d.incr, d, "a", "x")
err(d.incr, d, "a", nil)
err(d.incr, d, "zz", 1, "q")
err(d.incr, d, "zz", 1, nil, 3)
err(d.incr, d, "zz", 1, 1, -3)
err(d.incr, d, "zz", 1, false, false)
err(d.expire, d, "a")
err(d.expire, d, "a", "x")
err(d.expire, d, "a", true)
err(d.lpush, d, {}, 1)
err(d.lpush, d, true, 1)
err(d.lpop, d, {})
show(d:lpush("l", true))
show(d:lpush("l", {}))
show(d:set(nil, 1))
show(d:set("", 1))
show(d:get(nil))
show(d:get(""))
show(d:incr(nil, 1))
show(d:ttl(""))
show(d:expire(nil, 1))
show(d:lpush(nil, 1))
show(d:lpush("", 1))
show(d:llen(""))
show(d:rpop(nil))
show(d:set(string.rep("k", 65536), 1))
show(d:get(string.rep("k", 65536)))
show(d:incr(string.rep("k", 65536), 1))
show(d:lpush(string.rep("k", 65536), 1))
show(d:ttl(string.rep("k", 65536)))
show(d:set("a", {}))
show(d:set("a", print))
show(d:add("a", nil))
show(d:replace("a", nil))
show(d:safe_add("a", nil))
'''

ARGS_EXPECTED = [
    'false: bad "zone" argument',
    'false: bad "zone" argument',
    'false: bad "zone" argument',
    'false: bad "zone" argument',
    'false: bad "zone" argument',
    'false: expecting 3 arguments, but only seen 0',
    'false: bad "zone" argument',
    'false: bad "zone" argument',
    'false: expecting 3 arguments, but only seen 4',
    'false: expecting 2 arguments, but only seen 3',
    'false: expecting 2 arguments, but only seen 1',
    'false: expecting 1 or 2 argument(s), but saw 0',
    'false: bad user data for the ngx_shm_zone_t pointer',
    'false: bad user data for the ngx_shm_zone_t pointer',
    "false: bad argument #1 to '?' (table expected, got number)",
    'false: expecting 1 or 2 argument(s), but saw 3',
    "false: bad argument #2 to '?' (number expected, got string)",
    "false: bad argument #2 to '?' (number expected, got string)",
    'false: attempt to compare string with number',
    'false: attempt to compare boolean with number',
    'false: bad "exptime" argument',
    "false: bad argument #10 to 'ngx_lua_ffi_shdict_store' (cannot convert 'string' to 'int')",
    "false: bad argument #10 to 'ngx_lua_ffi_shdict_store' (cannot convert 'table' to 'int')",
    "false: cannot convert 'nil' to 'double'",
    "false: cannot convert 'nil' to 'double'",
    'false: bad init arg: number expected, got string',
    'false: must provide "init" when providing "init_ttl"',
    'false: bad "init_ttl" argument',
    'false: bad init_ttl arg: number expected, got boolean',
    'false: bad "exptime" argument',
    "false: attempt to perform arithmetic on local 'exptime' (a string value)",
    "false: attempt to perform arithmetic on local 'exptime' (a boolean value)",
    "false: bad argument #2 to '?' (string expected, got table)",
    "false: bad argument #2 to '?' (string expected, got boolean)",
    "false: bad argument #2 to '?' (string expected, got table)",
    '2: nil, "bad value type"',
    '2: nil, "bad value type"',
    '2: nil, "nil key"',
    '2: nil, "empty key"',
    '2: nil, "nil key"',
    '2: nil, "empty key"',
    '2: nil, "nil key"',
    '2: nil, "empty key"',
    '2: nil, "nil key"',
    '2: nil, "nil key"',
    '2: nil, "empty key"',
    '2: nil, "empty key"',
    '2: nil, "nil key"',
    '2: nil, "key too long"',
    '2: nil, "key too long"',
    '2: nil, "key too long"',
    '2: nil, "key too long"',
    '2: nil, "key too long"',
    '2: nil, "bad value type"',
    '2: nil, "bad value type"',
    '3: false, "attempt to add or replace nil values", false',
    '3: false, "attempt to add or replace nil values", false',
    '3: false, "attempt to add or replace nil values", false',
]


def test_argument_checks(run_lua_ok):
    assert run_dogs(run_lua_ok, ARGS_LUA) == ARGS_EXPECTED


# checked against resty-ref: every method's return values: types, flags, incr, ttl/expire, lists, get_keys, flush_all/flush_expired
METHODS_LUA = r'''
local d = ngx.shared.dogs
show(d:capacity())
show(d:get("nope"))
show(d:set("a", 1))
show(d:get("a"))
show(d:add("a", 2))
show(d:safe_add("a", 2))
show(d:replace("nope", 2))
show(d:replace("a", "str"))
show(d:get("a"))
show(d:delete("a"))
show(d:delete("a"))
show(d:get("a"))
show(d:set("f", "v", 0, 7))
show(d:get("f"))
show(d:get_stale("f"))
show(d:set("f", "v", 0, -5), d:get("f"))
show(d:set("f", "v", 0, 4294967297), d:get("f"))
show(d:set("f", "v", 0, 2.7), d:get("f"))
show(d:set("f", "v", 0, false), d:get("f"))
show(d:set("f", "v", nil, true), d:get("f"))
show(d:set("n", 3.25), d:get("n"))
show(d:set("n", -0.5), d:get("n"))
show(d:set("n", 2^53), d:get("n"))
show(d:set("b", true), d:get("b"), d:set("b", false), d:get("b"))
show(d:set("s", ""), d:get("s"))
show(d:set("bin", "a\0b"), d:get("bin"))
show(d:set(1.5, "x"), d:get("1.5"), d:get(1.5))
show(d:set(true, "t"), d:get("true"))
show(d:get("f", "extra"))
show(d:safe_set("k", string.rep("v", 3000)), #d:get("k"))
show(d:set(string.rep("k", 65535), 1), d:get(string.rep("k", 65535)))
show(d:incr("f", 1))
show(d:incr("nope", 1))
show(d:incr("i", 1, 10))
show(d:incr("i", 1, 10))
show(d:incr("i", "2"))
show(d:incr("i", -0.5))
show(d:incr("i2", "5", "2"))
show(d:incr("i3", 1, 0, 5))
show(d:ttl("i3"))
show(d:ttl("i"))
show(d:ttl("nope"))
show(d:expire("nope", 1))
show(d:expire("i", 2))
show(d:ttl("i"))
show(d:expire("i", "3"))
show(d:ttl("i"))
show(d:expire("i", -1))
show(d:ttl("i"))
show(d:set("t", 1, 0.0015), d:ttl("t"))
show(d:set("t", 1, 0.0001), d:ttl("t"))
show(d:lpush("L", 1), d:rpush("L", "x"), d:lpush("L", 2.5), d:llen("L"))
show(d:get("L"))
show(d:get_stale("L"))
show(d:incr("L", 1))
show(d:set("L2", "s"), d:lpush("L2", 1), d:lpop("L2"), d:llen("L2"))
show(d:lpop("L"), d:rpop("L"), d:lpop("L"), d:lpop("L"), d:llen("L"))
show(d:rpop("nope"), d:llen("nope"))
show(d:lpush("L", 1), d:set("L", "now a string"), d:get("L"))
show(d:lpush(1.5, "y"))
d:flush_all()
show(#d:get_keys(0))
for i = 1, 1500 do d:set("k" .. i, i) end
show(#d:get_keys(), #d:get_keys(0), #d:get_keys(10), #d:get_keys(-1))
show(d:get_keys(3)[1], d:get_keys(3)[3])
d:get("k1")
show(d:get_keys(1)[1])
show(d:flush_all())
show(#d:get_keys(0), d:get("k1"), d:get_stale("k5"))
show(d:flush_expired(100))
show(d:flush_expired())
show(d:flush_expired())
show(d:set("x", 1), d:flush_expired(), d:get("x"))
'''

METHODS_EXPECTED = [
    '1: 1048576',
    '1: nil',
    '3: true, nil, false',
    '1: 1',
    '3: false, "exists", false',
    '3: false, "exists", false',
    '3: false, "not found", false',
    '3: true, nil, false',
    '1: "str"',
    '3: true, nil, false',
    '3: true, nil, false',
    '1: nil',
    '3: true, nil, false',
    '2: "v", 7',
    '3: "v", 7, false',
    '3: true, "v", -5',
    '3: true, "v", -2147483648',
    '3: true, "v", 2',
    '2: true, "v"',
    '3: true, "v", 1',
    '2: true, 3.25',
    '2: true, -0.5',
    '2: true, 9.007199254741e+15',
    '4: true, true, true, false',
    '2: true, ""',
    '2: true, "a\\0b"',
    '3: true, "x", "x"',
    '2: true, "t"',
    '2: "v", 1',
    '2: true, 3000',
    '2: true, 1',
    '2: nil, "not a number"',
    '2: nil, "not found"',
    '3: 11, nil, false',
    '3: 12, nil, false',
    '1: 14',
    '1: 13.5',
    '3: 7, nil, false',
    '3: 1, nil, false',
    '1: 5',
    '1: 0',
    '2: nil, "not found"',
    '2: nil, "not found"',
    '1: true',
    '1: 2',
    '1: true',
    '1: 3',
    '1: true',
    '1: 0',
    '2: true, 0.001',
    '2: true, 0',
    '4: 1, 2, 3, 3',
    '2: nil, "value is a list"',
    '2: nil, "value is a list"',
    '2: nil, "not a number"',
    '5: true, nil, nil, nil, "value not a list"',
    '5: 2.5, "x", 1, nil, 0',
    '2: nil, 0',
    '3: 1, true, "now a string"',
    '2: nil, "value not a list"',
    '1: 0',
    '4: 1024, 1500, 10, 1500',
    '2: "k1", "k3"',
    '1: "k2"',
    '0: ',
    '3: 0, nil, nil',
    '1: 100',
    '1: 1395',
    '1: 0',
    '3: true, 0, 1',
]


def test_methods(run_lua_ok):
    assert run_dogs(run_lua_ok, METHODS_LUA) == METHODS_EXPECTED


# Debian's lua-resty-core 0.1.25 (a dependency of libnginx-mod-http-lua), unmodified: its
# resty/core/base.lua, then its resty/core/shdict.lua binding the dicts over cosocket's
# through the FFI ABI (ngx/shdict_ffi.cc), as it binds nginx's
DEBIAN_CORE = "/usr/share/lua/5.1/resty/core"
DEBIAN_SHDICT_LUA = f'''
package.loaded["resty.core.base"] = dofile("{DEBIAN_CORE}/base.lua")
assert(loadfile("{DEBIAN_CORE}/shdict.lua"))("resty.core.shdict")
assert(debug.getinfo(ngx.shared.dogs.get, "S").source == "@{DEBIAN_CORE}/shdict.lua")
'''


@pytest.mark.parametrize("script,expected", [(ARGS_LUA, ARGS_EXPECTED), (METHODS_LUA, METHODS_EXPECTED)],
                         ids=["argument_checks", "methods"])
def test_debian_lua_resty_core_shdict_binds_the_ffi_abi(run_lua_ok, script, expected):
    assert os.path.exists(f"{DEBIAN_CORE}/shdict.lua"), "Debian's lua-resty-core is not installed"
    assert run_dogs(run_lua_ok, DEBIAN_SHDICT_LUA + script) == expected


# checked against resty-ref: expiry, get_stale after it, incr/add/lists over expired items, flush_expired (100 ms ttls, 300 ms sleeps)
EXPIRY_LUA = r'''
local d = ngx.shared.dogs
d:set("old", "at the LRU tail")
show(d:set("e", 1, 0.1, 9))
local ttl = d:ttl("e")
show(ttl > 0.05 and ttl <= 0.1)
ngx.sleep(0.3)
show(d:get("e"))
show(d:ttl("e") < 0)
show(d:get_stale("e"))
show(d:add("e", 2), d:get("e"))
show(d:set("e", 1, 0.1, 9))
ngx.sleep(0.3)
show(d:incr("e", 1))
show(d:incr("e", 1, 10))
show(d:ttl("e"))
show(d:set("e2", "str", 0.1))
ngx.sleep(0.3)
show(d:incr("e2", 1, 5, 0.1))
ngx.sleep(0.3)
show(d:get("e2"), d:get_stale("e2"))
show(d:replace("e2", 1))
show(d:lpush("e2", "x"), d:llen("e2"))
show(d:expire("e2", 0.1))
ngx.sleep(0.3)
show(d:llen("e2"), d:lpop("e2"), d:lpush("e2", "y"), d:ttl("e2"))
show(d:set("x1", 1, 0.1), d:set("x2", 1, 0.1), d:set("x3", 1))
ngx.sleep(0.3)
show(#d:get_keys(0))
show(d:flush_expired(1))
show(d:flush_expired())
show(#d:get_keys(0))
'''

EXPIRY_EXPECTED = [
    '3: true, nil, false',
    '1: true',
    '1: nil',
    '1: true',
    '3: 1, 9, true',
    '2: true, 2',
    '3: true, nil, false',
    '2: nil, "not found"',
    '3: 11, nil, false',
    '1: 0',
    '3: true, nil, false',
    '3: 6, nil, false',
    '4: nil, 6, nil, true',
    '3: false, "not found", false',
    '2: 1, 1',
    '1: true',
    '4: 0, nil, 1, 0',
    '5: true, true, true, nil, false',
    '1: 4',
    '1: 1',
    '1: 1',
    '1: 4',
]


def test_expiry(run_lua_ok):
    assert run_dogs(run_lua_ok, EXPIRY_LUA) == EXPIRY_EXPECTED


def test_shared_table_and_flag(run_lua, run_lua_ok):
    # checked against resty-ref: ngx.shared is a table, empty without --shdict; a dict is a
    # table holding a userdata at [1], with a metatable; unknown names are nil
    out = run_lua_ok("print(type(ngx.shared), next(ngx.shared), ngx.shared.dogs)")
    assert out == "table\tnil\tnil\n"
    out = run_lua_ok(r'''
local names = {}
for k, v in pairs(ngx.shared) do names[#names + 1] = k .. "=" .. type(v) end
table.sort(names)
print(table.concat(names, " "))
local d = ngx.shared.dogs
print(type(d[1]), getmetatable(d) ~= nil, ngx.shared.nope)
print(ngx.shared.dogs:capacity(), ngx.shared.cats:capacity(), ngx.shared.birds:capacity())
''', flags=["--shdict", "dogs 1m", "--shdict=cats 12k", "--shdict", "birds  100000 "])
    assert out.splitlines() == ["birds=table cats=table dogs=table", "userdata\ttrue\tnil",
                                "1048576\t12288\t100000"]
    for spec, msg in [("dogs", "--shdict takes 'NAME SIZE'"), ("dogs 8191", 'invalid shared dict size "8191"'),
                      ("dogs 1x", 'invalid shared dict size "1x"'), ("dogs 8g", "too large"),
                      ("", "--shdict takes 'NAME SIZE'")]:
        r = run_lua("print(1)", flags=["--shdict", spec])
        assert r.rc == 2, r.describe()
        assert msg in r.err and r.err.endswith("; try 'cosocket --help'\n") and len(r.err.splitlines()) == 1, r.describe()
    r = run_lua("print(1)", flags=["--shdict", "a 1m", "--shdict", "a 2m"])
    assert r.rc == 2 and 'duplicate shared dict "a"' in r.err, r.describe()
    r = run_lua(flags=["--shdict"])
    assert r.rc == 2 and "--shdict needs" in r.err, r.describe()


def test_errors_are_positioned_at_the_caller(run_lua):
    # as resty.core's error(msg, 2) / check_zone's error(msg, 3): the caller's line
    r = run_lua('local d = ngx.shared.dogs\n\nd:incr("x", 1, "q")\n', flags=["--shdict", "dogs 1m"])
    assert r.rc != 0
    assert re.search(r"script\d+\.lua:3: bad init arg: number expected, got string", r.err), r.describe()
    r = run_lua('local d = ngx.shared.dogs\nd.get("x")\n', flags=["--shdict", "dogs 1m"])
    assert re.search(r"script\d+\.lua:2: bad \"zone\" argument", r.err), r.describe()


def test_full_dict(run_lua_ok):
    out = run_dogs(run_lua_ok, r'''
local d = ngx.shared.dogs
local v = string.rep("v", 200)
local first_forcible
for i = 1, 5000 do
  local ok, err, forcible = d:set("k" .. i, v)
  assert(ok, err)
  if forcible and not first_forcible then first_forcible = i end
  if i > 10 then assert(d:get("k1") == v, "k1 is kept recent") end
end
show(first_forcible > 100, first_forcible < 5000)
show(d:get("k1") == v, d:get("k2"), d:get("k5000") == v)       -- the least recently used went
show(d:safe_set("new", v))
show(d:safe_add("new", v))
show(d:set("huge", string.rep("x", 200 * 1024)))                 -- bigger than the dict
local n = 0
while d:safe_set("f" .. n, v) do n = n + 1 end
show(d:lpush("newlist", "x"))                                    -- no room for the list
show(d:set("l", "s"))                                            -- evicts to make room
show(d:delete("l"), d:safe_set("l", string.rep("s", 100)))        -- room is there now
show(d:lpush("l2", "x"))
show(d:free_space() < 8192, d:free_space() >= 0)
n = 0
while d:safe_add("g" .. n, 1) do n = n + 1 end                   -- full for small items too
show(select(3, d:incr("c", 1, 0)))                               -- room made by eviction
show(d:set("k3000", string.rep("w", 150 * 1024)))                -- fits: evicts until it does
d:flush_all()
d:flush_expired()
show(#d:get_keys(0), d:free_space() > 160 * 1024)
''', size="200k")
    assert out == [
        "2: true, true",
        '3: true, nil, true',
        '3: false, "no memory", false',
        '3: false, "no memory", false',
        '3: false, "no memory", true',
        '2: false, "no memory"',
        '3: true, nil, true',
        '4: true, true, nil, false',
        '2: nil, "no memory"',
        "2: true, true",
        "1: true",
        "3: true, nil, true",
        "2: 0, true",
    ], out


def test_churn_random_sizes(run_lua_ok):
    out = run_dogs(run_lua_ok, r'''
local d = ngx.shared.dogs
local cap, initial = d:capacity(), d:free_space()
math.randomseed(1234)
local fails = 0
for i = 1, 40000 do
  local k = "key" .. math.random(1, 2000)
  local r = math.random()
  if r < 0.6 then
    local len = math.floor(math.exp(math.random() * 8))   -- 1 byte .. 3 KB, mostly small
    local ok, err = d:set(k, string.rep("x", len), math.random() < 0.2 and 0.01 or 0)
    if not ok then fails = fails + 1 end
  elseif r < 0.7 then d:delete(k)
  elseif r < 0.8 then d:rpush("l" .. k, math.random())
  elseif r < 0.85 then d:lpop("l" .. k)
  elseif r < 0.9 then d:incr("n" .. k, 1, 0)
  else d:get(k) end
  if i % 1000 == 0 then
    local fs = d:free_space()
    assert(fs >= 0 and fs <= cap, fs)
    ngx.sleep(0.001)
  end
end
show(fails)
d:flush_all()
d:flush_expired()
show(#d:get_keys(0), d:free_space() == initial)
show(d:set("big", string.rep("x", initial - 4096)))
''', size="128k", timeout=120)
    assert out == ["1: 0", "2: 0, true", "3: true, nil, false"], out


# checked against resty-ref: the same run under resty-cli (which has no -w) passes the same asserts
EXPIRY_MS_LUA = r'''
local d = ngx.shared.dogs
d:set("old", 1)
d:set("ms", 1, 0.25)
local ttl = d:ttl("ms")
show(ttl > 0.2 and ttl <= 0.25)
ngx.sleep(0.1)
ttl = d:ttl("ms")
show(ttl > 0.05 and ttl < 0.2, d:get("ms"))
ngx.sleep(0.4)
show(d:get("ms"), select(3, d:get_stale("ms")))
d:set("ms2", 1, 0.0019)      -- 1.9 ms: 1 ms, as resty.core's exptime * 1000 as a C long
show(d:ttl("ms2") <= 0.001)
'''


def test_expiry_milliseconds(run_lua_ok):
    assert run_dogs(run_lua_ok, EXPIRY_MS_LUA) == ["1: true", "2: true, 1", "2: nil, true", "1: true"]


COUNTER_LUA = r'''
local d = ngx.shared.d
local per_thread, threads = tonumber(arg[1]), 10
local ts = {}
for t = 1, threads do
  ts[t] = ngx.thread.spawn(function()
    for i = 1, per_thread do
      assert(d:incr("counter", 1, 0))
      if i % 50 == 0 then ngx.sleep(0) end
    end
  end)
end
for t = 1, threads do assert(ngx.thread.wait(ts[t])) end
if d:incr("done", 1, 0) == ngx.worker.count() then
  ngx.say("total ", d:get("counter"), " by ", ngx.worker.count(), " workers")
end
'''


def test_workers_share_the_dict(run_lua):
    r = run_lua(COUNTER_LUA, 2000, flags=["-w", "2", "--shdict", "d 1m"], timeout=120)
    assert r.rc == 0, r.describe()
    assert r.out == "total 40000 by 2 workers\n", r.describe()


KILLED_LUA = r'''
local d = ngx.shared.d
local deadline = ngx.now() + 30
local function wait_for(key)
  while not d:get(key) do
    assert(ngx.now() < deadline, "timed out waiting for " .. key)
    ngx.sleep(0.005)
  end
end
if ngx.worker.id() == 0 then
  if d:add("w0 started", true) then
    -- the first worker 0: keys, then a set that dies holding the lock, half done
    -- (COSOCKET_TEST_SHDICT_DIE_KEY=boom)
    d:set("before", "kept")
    d:lpush("list", "a")
    wait_for("w1 looping")
    d:set("boom", "x")
    error("not reached")
  end
  -- its replacement
  d:set("restarted", true)
  wait_for("w1 done")
  ngx.say("before=", d:get("before"), " list=", d:llen("list"), " boom=", d:get("boom"),
          " counter ok=", d:get("counter") == d:get("w1 done"), " w1 incrs>0=", d:get("w1 done") > 0)
  ngx.say("set after=", d:set("after", "y"), " get=", d:get("after"))
else
  local n = 0
  d:set("w1 looping", true)
  while not d:get("restarted") do
    assert(ngx.now() < deadline, "timed out waiting for worker 0's replacement")
    assert(d:incr("counter", 1, 0))
    n = n + 1
    if n % 20 == 0 then ngx.sleep(0.001) end
  end
  d:set("w1 done", n)
end
'''


def test_worker_killed_holding_the_lock(run_lua):
    r = run_lua(KILLED_LUA, flags=["-w", "2", "--shdict", "d 1m"], env={"COSOCKET_TEST_SHDICT_DIE_KEY": "boom"},
                timeout=60)
    assert r.rc == 0, r.describe()
    assert re.search(r"worker 0 \(pid \d+\) killed by signal 9, restarting it", r.err), r.describe()
    assert r.out.splitlines() == [
        "before=kept list=1 boom=nil counter ok=true w1 incrs>0=true",
        "set after=true get=y",
    ], r.describe()


# checked against resty-ref: values longer than the binding's 4096-byte buffer, which
# ngx_http_lua_ffi_shdict_get copies into memory from malloc() that the binding frees (ASan
# checks both sides), and a boolean (its byte in the buffer)
LONG_VALUES_LUA = r'''
local d = ngx.shared.dogs
for _, n in ipairs{4095, 4096, 4097, 10000, 300000} do
  local v = string.rep(string.char(65 + n % 26), n)
  assert(d:set("k" .. n, v, 0, n))
  local got, flags = d:get("k" .. n)
  local stale, sflags, is_stale = d:get_stale("k" .. n)
  show(n, got == v, flags, stale == v, sflags, is_stale)
end
show(d:set("b", false), d:get("b"), d:get_stale("b"))
'''
LONG_VALUES_EXPECTED = [f"6: {n}, true, {n}, true, {n}, false" for n in (4095, 4096, 4097, 10000, 300000)] + [
    "5: true, false, false, nil, false"]


@pytest.mark.parametrize("binding", ["cosocket", "debian"])
def test_long_values_through_the_ffi(run_lua_ok, binding):
    prefix = DEBIAN_SHDICT_LUA if binding == "debian" else ""
    assert run_dogs(run_lua_ok, prefix + LONG_VALUES_LUA) == LONG_VALUES_EXPECTED

