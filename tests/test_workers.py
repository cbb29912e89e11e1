"""cosocket -w N: worker processes sharing a listening port (SO_REUSEPORT), ngx.worker.*,
the master's restarts (same id, back-off, none after exit 0), SIGTERM draining, and
examples/redis_server.lua under two workers driven by redis-benchmark."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from helpers.cosocket_server import alive, children_of, connect, parse_benchmark, recv_all

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_SERVER = os.path.join(REPO, "examples", "redis_server.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WHO = r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = tonumber(arg[1]), handler = function(sock)
    local line = sock:receive("*l")
    if line and line ~= "" then ngx.sleep(tonumber(line)) end
    sock:send(ngx.worker.id() .. " " .. ngx.worker.pid() .. " " .. ngx.worker.count() .. "\n")
end })
io.write("listening on ", srv:port(), " worker ", ngx.worker.id(), "\n")
'''


def ask(port, line=""):
    s = connect(port, timeout=10)
    s.sendall(line.encode() + b"\n")
    wid, pid, count = recv_all(s).decode().split()
    s.close()
    return int(wid), int(pid), int(count)


def until_both(port, tries=400):
    """Connects until both worker ids answered; returns {id: pid}."""
    seen = {}
    for _ in range(tries):
        wid, pid, count = ask(port)
        assert count == 2
        seen[wid] = pid
        if len(seen) == 2:
            return seen
    pytest.fail(f"only workers {seen} answered in {tries} connections")


def test_without_workers_id_0_count_1(run_lua_ok):
    out = run_lua_ok("ngx.say(ngx.worker.id(), ' ', ngx.worker.count(), ' ', ngx.worker.pid() == "
                     "tonumber(io.open('/proc/self/stat'):read('*l'):match('^%d+')))")
    assert out == "0 1 true\n"


def test_two_workers_share_a_port(server):
    port = free_port()
    srv = server(WHO, args=[port], flags=["-w", "2"])
    srv.wait_for(r"listening on \d+ worker \d", count=2)
    assert sorted(srv.wait_for(r"listening on \d+ worker (\d)", count=2)) == ["0", "1"]
    seen = until_both(port)
    assert set(seen) == {0, 1}
    assert seen[0] != seen[1]
    assert sorted(children_of(srv.pid)) == sorted(seen.values())
    assert srv.stop() == 0
    assert not alive(seen[0]) and not alive(seen[1])


def test_a_killed_worker_is_restarted_with_the_same_id(server):
    port = free_port()
    srv = server(WHO, args=[port], flags=["-w", "2"])
    srv.wait_for(r"listening on \d+ worker \d", count=2)
    seen = until_both(port)
    os.kill(seen[0], signal.SIGKILL)
    srv.wait_for(r"listening on \d+ worker \d", count=3)  # the new worker 0
    after = until_both(port)
    assert after[1] == seen[1]
    assert after[0] != seen[0]
    assert sorted(children_of(srv.pid)) == sorted(after.values())
    assert srv.stop() == 0
    assert re.search(rf"\[alert\] {srv.pid}#0: worker 0 \(pid {seen[0]}\) killed by signal 9, restarting it",
                     srv.err), srv.err


def test_sigterm_to_the_master_drains_in_flight_requests(server):
    port = free_port()
    srv = server(WHO, args=[port], flags=["-w", "2", "--shutdown-timeout", "5000"])
    srv.wait_for(r"listening on \d+ worker \d", count=2)
    workers = until_both(port)
    slow = [connect(port, timeout=10) for _ in range(4)]
    for s in slow:
        s.sendall(b"1.0\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    answers = [recv_all(s).decode().split() for s in slow]
    assert all(len(a) == 3 for a in answers), answers
    assert {int(a[1]) for a in answers} <= set(workers.values())
    assert srv.finish(8) == 0
    assert time.monotonic() - t0 < 4
    assert not any(alive(p) for p in workers.values())
    for p in [srv.pid, *workers.values()]:
        assert f"{p}#0: signal 15 received" in srv.err


def test_sigterm_after_the_shutdown_timeout(server):
    port = free_port()
    srv = server(WHO, args=[port], flags=["-w", "2", "--shutdown-timeout", "300"])
    srv.wait_for(r"listening on \d+ worker \d", count=2)
    s = connect(port)
    s.sendall(b"30\n")
    time.sleep(0.3)
    srv.signal(signal.SIGTERM)
    assert srv.finish(8) == 128 + signal.SIGTERM  # the busy worker was cut short
    s.close()


def test_exit_0_is_not_restarted_and_failures_are(server, tmp_path):
    marker = tmp_path / "ran"
    srv = server(r'''
local id = ngx.worker.id()
local path = "@MARK@" .. id
local f = io.open(path)
local runs = f and tonumber(f:read("*a")) or 0
if f then f:close() end
f = io.open(path, "w") f:write(runs + 1) f:close()
io.write("worker ", id, " run ", runs + 1, "\n")
if id == 1 and runs < 2 then os.exit(3) end   -- worker 1 fails twice, then succeeds
'''.replace("@MARK@", str(marker)), flags=["-w", "2"])
    assert srv.finish(15) == 0
    assert sorted(re.findall(r"worker \d run \d", srv.out)) == [
        "worker 0 run 1", "worker 1 run 1", "worker 1 run 2", "worker 1 run 3"]
    assert len(re.findall(r"worker 1 \(pid \d+\) exited with status 3, restarting it in \d+ ms", srv.err)) == 2


def test_a_crash_loop_backs_off(server):
    srv = server("io.write('start ', ngx.worker.id(), '\\n') os.exit(7)", flags=["-w", "1"])
    time.sleep(2.0)
    srv.signal(signal.SIGTERM)
    assert srv.finish(8) == 7  # the last exit status
    starts = srv.out.count("start 0")
    # 0, 100, 200, 400, 800 ms delays: at most ~5 starts in 2 s, not hundreds
    assert 3 <= starts <= 6, srv.out
    assert "restarting it in 800 ms" in srv.err or "restarting it in 400 ms" in srv.err


def test_a_script_that_does_not_compile_fails_once(run_lua):
    r = run_lua("this is not lua", flags=["-w", "2"])
    assert r.rc == 1
    assert r.err.count("cosocket: ") == 1 and "'=' expected near 'is'" in r.err
    r = run_lua("print(1)", flags=["-w", "0"])
    assert r.rc == 2 and "-w needs a number of workers" in r.err


def test_redis_server_example_with_two_workers(server):
    port = free_port()
    srv = server(file=REDIS_SERVER, args=[port], flags=["-w", "2"])
    srv.wait_for(rf"listening on {port}", count=2)
    r = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", "20000", "-c", "50", "-q",
                        "-P", "16"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rps = parse_benchmark(r.stdout)
    assert set(rps) == {"SET", "GET"} and all(v > 0 for v in rps.values()), r.stdout
    pids = set()
    for _ in range(50):
        s = connect(port)
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        s.close()
    pids = children_of(srv.pid)
    assert len(pids) == 2
    assert srv.stop() == 0
    assert "[error]" not in srv.err, srv.err


def test_workers_leave_when_the_master_is_killed(server):
    port = free_port()
    srv = server(WHO, args=[port], flags=["-w", "2"])
    srv.wait_for(r"listening on \d+ worker \d", count=2)
    workers = until_both(port)
    os.kill(srv.pid, signal.SIGKILL)
    srv.finish(5)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in workers.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in workers.values())
    for p in workers.values():
        assert f"{p}#0: signal 15 received, exiting" in srv.err
