"""resty.redis.sentinel against a real Sentinel (SERVERS.md §3): one master, one replica, one
sentinel, then a forced failover (SENTINEL FAILOVER): connect() and run() follow the new
master."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import services
from test_redis import rl
from test_redis_cluster import cli, wait_until


class Sentinel:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cosocket-rsent.")
        self.mport, self.rport, self.sport = (services.free_port() for _ in range(3))
        base = ["redis-server", "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
        self.procs = [subprocess.Popen(base + ["--port", str(self.mport)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)]
        assert wait_until(lambda: cli(self.mport, "ping") == "PONG", 10)
        self.procs.append(subprocess.Popen(
            base + ["--port", str(self.rport), "--replicaof", "127.0.0.1", str(self.mport)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        assert wait_until(lambda: "master_link_status:up" in cli(self.rport, "info", "replication"), 20)
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"bind 127.0.0.1\nport {self.sport}\ndir {self.dir}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {self.mport} 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 5000\n")
        self.procs.append(subprocess.Popen(["redis-server", conf, "--sentinel"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))
        assert wait_until(self.replica_seen, 20), "sentinel not ready"

    def replica_seen(self):
        out = cli(self.sport, "sentinel", "replicas", "mymaster")
        return str(self.rport) in out and "disconnected" not in out and "s_down" not in out

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sentinel():
    s = Sentinel()
    yield s
    s.stop()


def test_sentinel_master_replica_failover(run_lua_ok, sentinel):
    out = rl(run_lua_ok, """
local rs = require "resty.redis.sentinel"
local s = rs:new({ sentinels = { {"127.0.0.1", @BAD@}, {"127.0.0.1", @S@} },
                   master_name = "mymaster", timeout = 1000, failover_wait = 10000 })
P(s:get_master())
local reps = s:get_replicas()
P(#reps, reps[1][1], reps[1][2])
P(s:run("set", "sk", "v1"), s:run("get", "sk"))
local red = assert(s:connect())
P(red:role()[1])
red:close()
local rr = rs:new({ sentinels = { {"127.0.0.1", @S@} }, master_name = "mymaster", role = "replica" })
local r = assert(rr:connect())
local v
for _ = 1, 100 do                    -- replication is asynchronous
  v = r:get("sk")
  if v == "v1" then break end
  ngx.sleep(0.03)
end
P(r:role()[1], v)
r:close()
local bad = rs:new({ sentinels = { {"127.0.0.1", @S@} }, master_name = "nope", failover_wait = 100 })
P(bad:get_master())
local sc = R("127.0.0.1", @S@)
P(sc:sentinel("failover", "mymaster"))
local t0 = ngx.now()
while ngx.now() - t0 < 15 do
  local h, p = s:get_master()
  if p == @R@ then break end
  ngx.sleep(0.05) ngx.update_time()
end
P(s:get_master())
P(s:run("set", "sk", "v2"), s:run("get", "sk"))
red = assert(s:connect())
P(red:role()[1], red:get("sk"))
""", BAD=services.free_port(), S=sentinel.sport, M=sentinel.mport, R=sentinel.rport)
    m, r = sentinel.mport, sentinel.rport
    assert out == [f"127.0.0.1|{m}", f"1|127.0.0.1|{r}", "OK|v1", "master", "slave|v1",
                   "nil|unknown master nope", "OK", f"127.0.0.1|{r}", "OK|v2",
                   "master|v2"], out


def test_readonly_after_failover(run_lua_ok, sentinel):
    """After a failover the old master is a replica: a connection still held to it gets
    READONLY (returned as it is: false, err -- as lua-resty-redis-connector, which hands out
    plain connections too), while run() with master_ttl, which remembers the master, sees
    READONLY, finds the new master through the sentinel and retries there."""
    s = sentinel
    ports = {s.mport, s.rport}

    def current():
        out = cli(s.sport, "sentinel", "get-master-addr-by-name", "mymaster").split()
        return int(out[1])

    def ready():
        master = current()
        other = (ports - {master}).pop()
        reps = cli(s.sport, "sentinel", "replicas", "mymaster")
        return (str(other) in reps and "s_down" not in reps and "disconnected" not in reps
                and "master_link_status:up" in cli(other, "info", "replication"))

    assert wait_until(ready, 30), "the replica is not up for a failover"
    p0 = current()
    out = rl(run_lua_ok, """
local rs = require "resty.redis.sentinel"
local s = rs:new({ sentinels = { {"127.0.0.1", @S@} }, master_name = "mymaster",
                   timeout = 1000, failover_wait = 10000, master_ttl = 60000 })
local s2 = rs:new({ sentinels = { {"127.0.0.1", @S@} }, master_name = "mymaster" })
local held = assert(s:connect())      -- held across the failover
P(held:set("ro", "a"), s:run("set", "ro", "b"), s.master_addr[2] == @P0@, s.readonly_retries)
local sc = R("127.0.0.1", @S@)
local ok, err
for _ = 1, 300 do                     -- NOGOODSLAVE / INPROG until the sentinel is ready
  ok, err = sc:sentinel("failover", "mymaster")
  if ok then break end
  ngx.sleep(0.05)
end
P(ok, err)
local p1
ngx.update_time()
local t0 = ngx.now()
while ngx.now() - t0 < 15 do
  local _, p = s:get_master()
  if p and p ~= @P0@ then p1 = p break end
  ngx.sleep(0.05) ngx.update_time()
end
-- the sentinel reconfigures the old master at its next poll of it (up to 10 s): do it now,
-- as it will
local old = R("127.0.0.1", @P0@)
P(old:replicaof("127.0.0.1", p1))
old:close()
PS(held:set("ro", "c"))
held:close()
P(s:run("set", "ro", "d"), s.readonly_retries, s.master_addr[2] == p1, p1 ~= @P0@)
P(s:run("get", "ro"), s.readonly_retries)
P(s2:run("set", "ro2", "x"), s2:run("get", "ro2"), s2.readonly_retries)   -- asks every time
local new = R("127.0.0.1", p1)
P(new:get("ro"), new:role()[1])
""", S=s.sport, P0=p0)
    assert out == ["OK|OK|true|0", "OK|nil",
                   "OK",
                   """false|"READONLY You can't write against a read only replica.\"""",
                   "OK|1|true|true", "d|1", "OK|x|0", "d|master"], out
