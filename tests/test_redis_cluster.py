"""resty.redis.cluster against a real 3-master Redis Cluster on loopback (started here with
cluster addslotsrange + cluster meet, SERVERS.md §3), plus one replica of the first master for
the failover scenario: routing by slot and hash tag, cross-node pipelines, ASK while a slot is
migrating, MOVED after it moved, and a failover (CLUSTER FAILOVER on the replica)."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from test_redis import rl


def _free_pair():
    """A port p with p and p + 10000 (the cluster bus) both free."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p + 10000 > 65535:
            continue
        b = socket.socket()
        try:
            b.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        finally:
            b.close()
        return p
    raise RuntimeError("no free port pair")


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=10).stdout.strip()


def wait_until(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cosocket-rcluster.")
        self.ports, self.procs = [], []
        for _ in range(4):
            p = _free_pair()
            d = os.path.join(self.dir, str(p))
            os.mkdir(d)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(p), "--dir", d,
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            self.ports.append(p)
        for p in self.ports:
            assert wait_until(lambda: cli(p, "ping") == "PONG", 10), f"node {p} did not start"
        m = self.ports[:3]
        cli(m[0], "cluster", "addslotsrange", "0", "5460")
        cli(m[1], "cluster", "addslotsrange", "5461", "10922")
        cli(m[2], "cluster", "addslotsrange", "10923", "16383")
        for p in self.ports[1:]:
            cli(m[0], "cluster", "meet", "127.0.0.1", str(p))
        assert wait_until(self.ok), "cluster did not become ready"
        self.ids = {p: cli(p, "cluster", "myid") for p in self.ports}
        # the 4th node replicates the first master
        assert wait_until(lambda: "OK" in cli(self.ports[3], "cluster", "replicate",
                                               self.ids[m[0]]), 10)
        assert wait_until(lambda: "master_link_status:up" in cli(self.ports[3], "info",
                                                                  "replication"), 20)

    def ok(self):
        for p in self.ports:
            info = cli(p, "cluster", "info")
            if "cluster_state:ok" not in info or "cluster_known_nodes:4" not in info:
                return False
        return True

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    yield c
    c.stop()


CONNECT = """
local rc = require "resty.redis.cluster"
local c = rc:new({ nodes = { "127.0.0.1:@P1@" }, timeout = 2000 })
"""


def run(run_lua_ok, cluster, code, **subst):
    ports = {f"P{i + 1}": p for i, p in enumerate(cluster.ports)}
    ids = {f"ID{i + 1}": cluster.ids[p] for i, p in enumerate(cluster.ports)}
    return rl(run_lua_ok, CONNECT + code, **ports, **ids, **subst)


def test_keyslot_and_routing(run_lua_ok, cluster):
    out = run(run_lua_ok, cluster, """
P(rc.keyslot("foo"), rc.keyslot("123456789"), rc.keyslot("{user1}.a") == rc.keyslot("{user1}.b"),
  rc.keyslot("{}x") == rc.keyslot("{}y"), rc.keyslot("a{b}c") == rc.keyslot("b"))
for i = 1, 30 do assert(c:set("route:" .. i, "v" .. i)) end
-- each key sits on the master that owns its slot: a direct GET there answers without MOVED
local owner = {}
local right = 0
for _, port in ipairs({@P1@, @P2@, @P3@}) do
  local red = R("127.0.0.1", port)
  for i = 1, 30 do
    local v, err = red:get("route:" .. i)
    if v == "v" .. i then right = right + 1 end
  end
  red:close()
end
P(right, c:get("route:7"), S(c:get("route:none")))
PS(c:mset("{t}a", "1", "{t}b", "2"), c:mget("{t}a", "{t}b"))
PS(c:mget("route:1", "route:2"))
P(c:ping(), c:incr("route:n"), c:del("route:n"))
""")
    assert out[0] == "12182|12739|true|false|true"
    assert out[1] == "30|v7|null"
    assert out[2] == '"OK"|{"1","2"}'
    assert out[3].startswith('false|"CROSSSLOT')
    assert out[4] == "PONG|1|1"


def test_pipeline_across_nodes(run_lua_ok, cluster):
    out = run(run_lua_ok, cluster, """
c:init_pipeline()
for i = 1, 100 do c:set("pipe:" .. i, i) c:get("pipe:" .. i) end
c:lpush("pipe:1", "x")
local res = assert(c:commit_pipeline())
local ok = #res == 201
for i = 1, 100 do ok = ok and res[2 * i - 1] == "OK" and res[2 * i] == tostring(i) end
P(ok, res[201][1], res[201][2])
local nodes = {}
for i = 1, 100 do nodes[c.slots[rc.keyslot("pipe:" .. i)]] = true end
local n = 0 for _ in pairs(nodes) do n = n + 1 end
P(n)
""")
    assert out == ["true|false|WRONGTYPE Operation against a key holding the wrong kind of value",
                   "3"]


def _resp(v):
    """RESP2 encoding of ints, strings and nested lists (for a fake pre-7 node)."""
    if isinstance(v, int):
        return b":%d\r\n" % v
    if isinstance(v, str):
        return b"$%d\r\n%s\r\n" % (len(v), v.encode())
    return b"*%d\r\n" % len(v) + b"".join(_resp(x) for x in v)


def test_shards_and_slots_fallback(run_lua_ok, cluster, fake_server):
    """Redis 7 answers CLUSTER SHARDS: the map comes from it. A node that does not know
    SHARDS (before 7.0: a fake node answering as redis 6 does, with CLUSTER SLOTS pointing at
    the real masters) makes the client fall back to CLUSTER SLOTS, and remember it."""
    m = cluster.ports[:3]
    slots = [[0, 5460, ["127.0.0.1", m[0], "x"]], [5461, 10922, ["127.0.0.1", m[1], "y"]],
             [10923, 16383, ["127.0.0.1", m[2], "z"]]]
    old = fake_server([("read_until", b"shards\r\n"),
                       ("reply", b"-ERR unknown subcommand 'shards'. Try CLUSTER HELP.\r\n"),
                       ("read_until", b"slots\r\n"), ("reply", _resp(slots)), ("stall",)])
    out = run(run_lua_ok, cluster, """
P(c:refresh(), c.map_source)
local n = 0 for _ in pairs(c.masters) do n = n + 1 end
local full = true for s = 0, 16383 do full = full and c.slots[s] ~= nil end
P(n, full, c.slots[0] == "127.0.0.1:@P1@", c.slots[16383] == "127.0.0.1:@P3@")
local old = rc:new({ nodes = { "127.0.0.1:@OLD@" }, timeout = 2000 })
P(old:refresh(), old.map_source, old.no_shards)
P(old:set("shards:a", "1"), old:get("shards:a"), old.slots[rc.keyslot("shards:a")] ==
  c.slots[rc.keyslot("shards:a")])
""", OLD=old.port)
    assert out == ["true|shards", "3|true|true|true", "true|slots|true", "OK|1|true"]


def test_tryagain_during_migration(run_lua_ok, cluster):
    """MGET of two keys of one slot while the slot migrates and the keys sit on both nodes:
    the source answers TRYAGAIN; the client retries with a doubling back-off and returns the
    server's error when the retries run out, or the values once the migration is over."""
    out = run(run_lua_ok, cluster, """
local ids = { [@P1@] = "@ID1@", [@P2@] = "@ID2@", [@P3@] = "@ID3@" }
assert(c:set("{try}a", "A")) assert(c:set("{try}b", "B"))
local slot = rc.keyslot("{try}a")
local from = tonumber(c.slots[slot]:match(":(%d+)$"))
local to = from == @P2@ and @P3@ or @P2@
local A, B = R("127.0.0.1", from), R("127.0.0.1", to)
assert(B:cluster("setslot", slot, "importing", ids[from]))
assert(A:cluster("setslot", slot, "migrating", ids[to]))
P(A:migrate("127.0.0.1", to, "{try}a", 0, 5000))   -- a on the target, b still on the source
PS(A:mget("{try}a", "{try}b"))                        -- what the server says, directly
local c2 = rc:new({ nodes = { "127.0.0.1:@P1@" }, timeout = 2000, max_redirects = 3,
                    retry_delay = 20 })
ngx.update_time()
local t0 = ngx.now()
local res, err = c2:mget("{try}a", "{try}b")
ngx.update_time()
local took = ngx.now() - t0
P(res, err, c2.retries, took >= 0.02 + 0.04 + 0.08 - 0.005, took < 1)
-- now finish the migration while the client is retrying
local c3 = rc:new({ nodes = { "127.0.0.1:@P1@" }, timeout = 2000, max_redirects = 8,
                    retry_delay = 50 })
assert(c3:refresh())
local th = ngx.thread.spawn(function()
  ngx.sleep(0.12)
  assert(A:migrate("127.0.0.1", to, "{try}b", 0, 5000))
  assert(A:cluster("setslot", slot, "node", ids[to]))
  assert(B:cluster("setslot", slot, "node", ids[to]))
  return true
end)
PS(c3:mget("{try}a", "{try}b"))
P(ngx.thread.wait(th), c3.retries >= 1, c3.slots[slot] == "127.0.0.1:" .. to)
PS(c3:mget("{try}a", "{try}b"))
""")
    assert out[0] == "OK"
    assert out[1].startswith('false|"TRYAGAIN ')
    assert out[2].startswith("false|TRYAGAIN ") and out[2].endswith("|3|true|true"), out
    assert out[3:] == ['{"A","B"}', "true|true|true", '{"A","B"}']


def test_ask_then_moved(run_lua_ok, cluster):
    out = run(run_lua_ok, cluster, """
local ids = { [@P1@] = "@ID1@", [@P2@] = "@ID2@", [@P3@] = "@ID3@" }
assert(c:set("{mig}old", "o"))
local slot = rc.keyslot("{mig}old")
local from = tonumber(c.slots[slot]:match(":(%d+)$"))
local to = from == @P2@ and @P3@ or @P2@
local A, B = R("127.0.0.1", from), R("127.0.0.1", to)
P(B:cluster("setslot", slot, "importing", ids[from]), A:cluster("setslot", slot, "migrating", ids[to]))
local before = c.refreshes
PS(c:get("{mig}old"))                       -- still on the source: served there
PS(c:set("{mig}new", "n"))                  -- not on the source: ASK -> ASKING + SET on the target
P(B:cluster("countkeysinslot", slot), A:cluster("countkeysinslot", slot))
PS(c:get("{mig}new"))                       -- ASK again
PS(A:migrate("127.0.0.1", to, "", 0, 5000, "KEYS", "{mig}old"))
P(A:cluster("setslot", slot, "node", ids[to]), B:cluster("setslot", slot, "node", ids[to]))
PS(c:get("{mig}old"), c:get("{mig}new"))    -- MOVED, then the map is reloaded
P(c.refreshes > before, c.slots[slot] == "127.0.0.1:" .. to)
PS(A:get("{mig}old"))
""")
    assert out[0] == "OK|OK"
    assert out[1:4] == ['"o"', '"OK"', "1|1"]
    assert out[4] == '"n"'
    assert out[5] == '"OK"' and out[6] == "OK|OK"
    assert out[7] == '"o"|"n"'
    assert out[8] == "true|true"
    assert out[9].startswith('false|"MOVED ')


def test_failover(run_lua_ok, cluster):
    """Runs last: the replica of the first master takes over its slots (CLUSTER FAILOVER); a
    client holding the old map gets MOVED from the demoted master, follows it and reloads."""
    out = run(run_lua_ok, cluster, """
local key
for i = 1, 1000 do
  if rc.keyslot("fo" .. i) <= 5460 then key = "fo" .. i break end
end
P(c:set(key, "before"), c.slots[rc.keyslot(key)])
local rep = R("127.0.0.1", @P4@)
P(rep:cluster("failover"))
local t0 = ngx.now()
while ngx.now() - t0 < 15 do
  local role = rep:role()
  local info = rep:cluster("info")
  if role[1] == "master" and info:find("cluster_state:ok", 1, true) then
    -- the old master must know it was demoted before it answers MOVED
    local old = R("127.0.0.1", @P1@)
    local r = old:role()
    old:close()
    if r[1] == "slave" then break end
  end
  ngx.sleep(0.05)
  ngx.update_time()
end
local before = c.refreshes
P(c:get(key), c.slots[rc.keyslot(key)], c.refreshes == before)
P(c:set(key, "after"), c:get(key), c.refreshes > before)
""")
    p1, p4 = cluster.ports[0], cluster.ports[3]
    assert out == [f"OK|127.0.0.1:{p1}", "OK", f"before|127.0.0.1:{p4}|true",
                   "OK|after|true"]
