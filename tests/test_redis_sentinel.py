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
