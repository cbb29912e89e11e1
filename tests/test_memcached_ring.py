"""resty.memcached.ring (issue 5): ketama placement, per-server pools, get_multi split and
merged, a dead server's keys failing over and coming back. Three real memcached servers of
this module's own (started here with test_memcached.Private), plus libmemcached (through
ctypes) as the reference for where ketama puts keys."""
import ctypes
import ctypes.util

import pytest

from helpers.socket_lua import Interactive, lua
from test_memcached import Private

RING = r'''
local ring = require "resty.memcached.ring"
local memcached = require "resty.memcached"
local SERVERS = {"127.0.0.1:@P1@", "127.0.0.1:@P2@", "127.0.0.1:@P3@"}
local function direct(name)      -- a plain client on one server
  local host, port = name:match("^(.+):(%d+)$")
  local m = assert(memcached:new())
  m:set_timeout(1000)
  assert(m:connect(host, tonumber(port)))
  return m
end
local function flush_all()
  for _, s in ipairs(SERVERS) do assert(direct(s):flush_all()) end
end
'''


@pytest.fixture(scope="module")
def three():
    servers = [Private([]) for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


def subst(three):
    return {"P1": three[0].port, "P2": three[1].port, "P3": three[2].port}


def libmemcached_owners(names, keys):
    """The server index libmemcached (ketama weighted, MD5) picks for each key."""
    lib = ctypes.CDLL(ctypes.util.find_library("memcached") or "libmemcached.so.11")
    lib.memcached.restype = ctypes.c_void_p
    lib.memcached.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.memcached_generate_hash.restype = ctypes.c_uint32
    lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.memcached_free.argtypes = [ctypes.c_void_p]
    cfg = " ".join(f"--SERVER={n}" for n in names).encode()
    memc = lib.memcached(cfg, len(cfg))
    assert memc
    MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED = 16
    assert lib.memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) == 0
    out = [lib.memcached_generate_hash(memc, k.encode(), len(k.encode())) for k in keys]
    lib.memcached_free(memc)
    return out


@pytest.mark.parametrize("names", [
    ["127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003"],
    ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11212", "cache-5:11213"],
])
def test_ketama_matches_libmemcached(run_lua_ok, tmp_path, names):
    keys = [f"key{i}" for i in range(2000)] + ["", "a b", "ü", "x" * 250]
    want = [names[i] for i in libmemcached_owners(names, keys)]
    code = 'local ring = require "resty.memcached.ring"\nlocal r = ring.new{servers = {%s}}\n' % (
        ", ".join(f'"{n}"' for n in names))
    code += 'for line in io.lines("keys.txt") do ngx.say(r:server_for(line)) end\n'
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    got = run_lua_ok(code).splitlines()
    assert got == want


def test_distribution_over_three_real_servers(run_lua_ok, three):
    out = lua(run_lua_ok, RING + r'''
flush_all()
-- 1600 points per server (ten times ketama's 160) for an even spread
local r = ring.new{servers = SERVERS, points_per_server = 1600}
local fails = 0
for i = 1, 10000 do
  if not r:set("dist:" .. i, "v" .. i) then fails = fails + 1 end
end
P("fails", fails)
for _, s in ipairs(SERVERS) do
  local items = 0
  for _, l in ipairs(assert(direct(s):stats())) do
    local n = l:match("^STAT curr_items (%d+)$")
    if n then items = tonumber(n) end
  end
  P("items", items)
end
-- each key is where server_for says
local wrong = 0
for i = 1, 10000, 97 do
  local key = "dist:" .. i
  if direct(r:server_for(key)):get(key) ~= "v" .. i then wrong = wrong + 1 end
end
P("wrong", wrong)
''', subst(three))
    assert out[0] == "fails|0"
    items = [int(line.split("|")[1]) for line in out[1:4]]
    assert sum(items) == 10000
    for n in items:
        assert abs(n - 10000 / 3) < 0.10 * 10000 / 3, items
    assert out[4] == "wrong|0"


def test_get_multi_split_across_servers_and_merged(run_lua_ok, three):
    out = lua(run_lua_ok, RING + r'''
flush_all()
local r = ring.new{servers = SERVERS}
local keys, per = {}, {}
for i = 1, 1000 do
  keys[i] = "gm:" .. i
  assert(r:set(keys[i], "v" .. i, 0, i))
  local s = r:server_for(keys[i])
  per[s] = (per[s] or 0) + 1
end
keys[1001] = "gm:missing"
local res, errs = r:get_multi(keys)
local n, bad = 0, 0
for k, v in pairs(res) do
  n = n + 1
  local i = tonumber(k:match("%d+"))
  if v[1] ~= "v" .. i or v[2] ~= i then bad = bad + 1 end
end
P(n, bad, errs, res["gm:missing"])
local used = 0
for _, s in ipairs(SERVERS) do if (per[s] or 0) > 0 then used = used + 1 end end
P("servers used", used)
local g = r:gets{"gm:1", "gm:2"}
P(g["gm:1"][1], type(g["gm:1"][3]))
P(r:get("gm:5"))
local v, f, cas = r:gets("gm:5")
P(r:cas("gm:5", "new", cas))
P(r:cas("gm:5", "newer", cas))
P(r:incr("gm:n", 1), r:add("gm:5", "x"))
P(r:delete("gm:5"), r:get("gm:5"))
-- the connections went back to per-server pools
local m = direct(r:server_for("gm:6"))
P(m:get_reused_times() > 0)
''', subst(three))
    assert out == ["1000|0|nil|nil", "servers used|3", "v1|string", "v5|5|nil", "1",
                   "nil|EXISTS", "nil|nil|NOT_STORED", "1|nil|nil|nil", "true"]


def test_failover_and_return(cosocket_bin, tmp_path, three):
    victim = three[1]
    code = RING + r'''
flush_all()
local r = ring.new{servers = SERVERS, timeout = 500, dead_timeout = 1}
local B = SERVERS[2]
local owner, keys = {}, {}
for i = 1, 300 do
  local k = "fo:" .. i
  keys[i] = k
  assert(r:set(k, "v" .. i))
  owner[k] = r:server_for(k)
end
checkpoint("kill")
-- get_multi finds the server dead: its keys are rehashed (misses), the rest unaffected
local res, errs = r:get_multi(keys)
local hit_other, hit_b, wrong = 0, 0, 0
for _, k in ipairs(keys) do
  local v = res[k]
  if owner[k] == B then
    if v then hit_b = hit_b + 1 end
  elseif v and v[1] == "v" .. k:match("%d+") then
    hit_other = hit_other + 1
  else
    wrong = wrong + 1
  end
end
local nb = 0
for _, k in ipairs(keys) do if owner[k] == B then nb = nb + 1 end end
P("multi", hit_other == 300 - nb, hit_b, wrong, errs and errs[B] ~= nil, nb > 30)
P("alive", r:status()[B].alive)
-- the others keep their keys; B's keys now go elsewhere
local moved, stayed = 0, 0
for _, k in ipairs(keys) do
  local s = r:server_for(k)
  if owner[k] == B then
    if s ~= B then moved = moved + 1 end
  elseif s == owner[k] then
    stayed = stayed + 1
  end
end
P("moved", moved == nb, stayed == 300 - nb)
-- writes of B's keys go to the others and are readable
local ok = 0
for _, k in ipairs(keys) do
  if owner[k] == B and r:set(k, "again") and r:get(k) == "again" then ok = ok + 1 end
end
P("rewritten", ok == nb)
-- single-key operations on a dead server: failover without an error
checkpoint("restart")
ngx.sleep(1.1)
-- B is back: its keys map to it again and traffic reaches it
local back = 0
for _, k in ipairs(keys) do if r:server_for(k) == B then back = back + 1 end end
P("back", back == nb, r:status()[B].alive)
local first_b
for _, k in ipairs(keys) do if owner[k] == B then first_b = k break end end
P(r:set(first_b, "on B"))
P(direct(B):get(first_b))
P(r:get(first_b))
'''
    s = subst(three)
    it = Interactive(cosocket_bin, tmp_path, code, s)
    try:
        it.expect("kill")
        victim.stop()
        it.resume()
        it.expect("restart")
        victim.start()
        it.resume()
        lines = it.finish()
    finally:
        it.kill()
    lines = [x for x in lines if x not in ("kill", "restart")]
    assert lines == ["multi|true|0|0|true|true", "alive|false", "moved|true|true",
                         "rewritten|true", "back|true|true", "1", "on B|0|nil", "on B|0|nil"]


def test_single_key_failover_and_all_dead(run_lua_ok, three, tcp_port_closed):
    out = lua(run_lua_ok, RING + r'''
-- a ring whose second server refuses connections
local DEAD = "127.0.0.1:@CLOSED@"
local r = ring.new{servers = {SERVERS[1], DEAD}, timeout = 500, dead_timeout = 30}
local k
for i = 1, 1000 do
  if r:server_for("sk:" .. i) == DEAD then k = "sk:" .. i break end
end
P(r:set(k, "v"))                       -- fails over to the live server
P(r:server_for(k) == SERVERS[1], r:status()[DEAD].alive)
P(r:get(k))
P(r:status()[DEAD].last_err:match("connection refused") ~= nil)
local none = ring.new{servers = {DEAD}, timeout = 500}
local ok, err = none:set("x", "y")
P(ok, err:match("connection refused") ~= nil)
P(none:get("x"))
local res, errs = none:get_multi{"a", "b"}
P(next(res), errs["*"])
P(pcall(ring.new, {servers = {}}))
''', dict(subst(three), CLOSED=tcp_port_closed))
    assert out[:5] == ["1", "true|false", "v|0|nil", "true", "nil|true"]
    assert out[5] == "nil|nil|no live memcached server"
    assert out[6] == "nil|no live memcached server"
    assert out[7].startswith("false|") and "servers" in out[7]
