"""The test infrastructure itself: real servers, helper servers, the services CLI and the
run_lua harness. Uses Python clients and Debian's CLIs only (not the cosocket binary)."""
import asyncio
import os
import socket
import struct
import subprocess
import time

import pytest
import websockets

import conftest
import services
from helpers.fake_server import FakeServer

REPO = conftest.REPO


def run(*cmd, timeout=20, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def out(*cmd):
    r = run(*cmd)
    return r.stdout.strip()


def recv_until(sock, end, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------
# real servers

def test_redis(redis):
    assert out("redis-cli", "-h", redis.host, "-p", str(redis.port), "ping") == "PONG"
    assert out("redis-cli", "-p", str(redis.port), "set", "svc:k", "v1") == "OK"
    assert out("redis-cli", "-p", str(redis.port), "get", "svc:k") == "v1"
    if not redis.external:
        assert out("redis-cli", "-s", redis.path, "get", "svc:k") == "v1"
    print(f"redis {redis} ready in {redis.ready_s:.3f} s")


def test_memcached_tcp_and_udp(memcached):
    with socket.create_connection((memcached.host, memcached.port), timeout=5) as s:
        s.sendall(b"set svc 0 0 5\r\nhello\r\nget svc\r\n")
        data = recv_until(s, b"END\r\n")
    assert data == b"STORED\r\nVALUE svc 0 5\r\nhello\r\nEND\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(struct.pack("!HHHH", 7, 0, 1, 0) + b"get svc\r\n", (memcached.host, memcached.port))
        reply = u.recv(2048)
    assert struct.unpack("!HHHH", reply[:8]) == (7, 0, 1, 0)
    assert reply[8:] == b"VALUE svc 0 5\r\nhello\r\nEND\r\n"
    print(f"memcached {memcached} ready in {memcached.ready_s:.3f} s")


def mariadb_cli(mariadb, user, password, sql, via_socket=False):
    where = [f"--socket={mariadb.path}"] if via_socket else [f"-h{mariadb.host}", f"-P{mariadb.port}"]
    return run("mariadb", "--no-defaults", *where, f"-u{user}", f"-p{password}", "testdb",
               "-N", "-e", sql)


def test_mariadb_users(mariadb):
    for user, password in (("native", "nativepw"), ("edu", "edpw")):
        r = mariadb_cli(mariadb, user, password, "select current_user(), database()")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [f"{user}@%", "testdb"]
    r = mariadb_cli(mariadb, "edu", "edpw", "select plugin from mysql.user where user='edu'")
    assert r.returncode != 0          # edu has rights on testdb only
    r = mariadb_cli(mariadb, "native", "wrong", "select 1")
    assert r.returncode == 1 and "ERROR 1045" in r.stderr
    r = mariadb_cli(mariadb, "native", "nativepw",
                    "create table t (id int primary key, s varchar(10)); insert into t values (1, 'x');"
                    "select s from t; drop table t")
    assert r.returncode == 0 and r.stdout.strip() == "x", r.stderr
    if not mariadb.external:
        r = mariadb_cli(mariadb, "native", "nativepw", "select 1", via_socket=True)
        assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr
    print(f"mariadb {mariadb}: install-db+start+users {mariadb.total_s:.3f} s")


def test_knot_records(knot):
    dig = ["dig", f"@{knot.host}", "-p", str(knot.port), "+time=2", "+tries=1"]

    def short(*q):
        return out(*dig, "+short", *q).split("\n")

    assert short("A", "cosocket.test") == ["127.0.0.1"]
    assert sorted(short("A", "www.cosocket.test")) == ["127.0.0.10", "127.0.0.11"]
    assert short("AAAA", "v6.cosocket.test") == ["::1"]
    assert short("A", "chain.cosocket.test") == ["alias.cosocket.test.", "www.cosocket.test.",
                                                  "127.0.0.10", "127.0.0.11"]
    assert sorted(short("MX", "cosocket.test")) == ["10 mail.cosocket.test.", "20 mail2.cosocket.test."]
    assert sorted(short("SRV", "_sip._tcp.cosocket.test")) == [
        "10 60 5060 sip1.cosocket.test.", "20 40 5061 sip2.cosocket.test."]
    assert short("TXT", "multi.cosocket.test") == ['"part one" "part two"']
    assert short("-x", "127.0.0.10") == ["www.cosocket.test."]
    assert short("A", "x.wild.cosocket.test") == ["127.0.0.99"]
    assert "status: NXDOMAIN" in out(*dig, "A", "nope.cosocket.test")
    print(f"knot {knot} ready in {knot.ready_s:.3f} s")


def test_knot_truncation(knot):
    dig = ["dig", f"@{knot.host}", "-p", str(knot.port), "+time=2", "+tries=1"]
    # no EDNS: 512-byte limit -> TC over UDP, full answer over TCP
    assert " tc " in out(*dig, "+noedns", "+ignore", "TXT", "big.cosocket.test")
    assert "Truncated, retrying in TCP mode" in out(*dig, "+noedns", "TXT", "big.cosocket.test")
    assert " tc " in out(*dig, "+noedns", "+ignore", "A", "many.cosocket.test")
    assert len(out(*dig, "+tcp", "+short", "A", "many.cosocket.test").split()) == 40
    # even with EDNS (knot caps UDP at 1232): huge truncates, TCP has all 12 strings
    assert " tc " in out(*dig, "+bufsize=4096", "+ignore", "TXT", "huge.cosocket.test")
    assert out(*dig, "+tcp", "+short", "TXT", "huge.cosocket.test").count('"') == 24


def test_ws_echo(ws_echo):
    async def go():
        async with websockets.connect(ws_echo.url, subprotocols=["echo"], max_size=2**24) as ws:
            assert ws.subprotocol == "echo"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            big = "x" * 1_000_000
            await ws.send(big)
            assert await ws.recv() == big
            await asyncio.wait_for(await ws.ping(b"p"), 5)
            await ws.close(code=4000, reason="bye")
            assert ws.close_code == 4000
    asyncio.run(asyncio.wait_for(go(), 20))
    print(f"ws_echo {ws_echo} ready in {ws_echo.ready_s:.3f} s")


def test_external_env_var(redis, monkeypatch):
    monkeypatch.setenv("COSOCKET_REDIS", redis.addr)
    svc = services.get("redis")
    assert svc.external and (svc.host, svc.port) == (redis.host, redis.port)
    svc.stop()                                    # a no-op for an external server
    assert services.redis_ping(redis.host, redis.port)


def test_external_env_var_down(monkeypatch):
    monkeypatch.setattr(services, "EXTERNAL_TIMEOUT", 0.3)
    monkeypatch.setenv("COSOCKET_MEMCACHED", f"127.0.0.1:{services.free_port()}")
    with pytest.raises(services.ServiceError, match="COSOCKET_MEMCACHED"):
        services.get("memcached")


def test_services_cli_run(tmp_path):
    t0 = time.monotonic()
    # what it starts itself: without the variables of servers already running (external mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSOCKET_")}
    r = run(os.path.join(REPO, "scripts", "services"), "run", "redis", "dns", "--", "sh", "-c",
            'echo "$COSOCKET_REDIS $COSOCKET_DNS $COSOCKET_REDIS_SOCKET"; exit 7', timeout=60,
            env=env)
    assert r.returncode == 7, r.stderr
    redis_addr, dns_addr, sock = r.stdout.split()
    assert redis_addr.startswith("127.0.0.1:") and dns_addr.startswith("127.0.0.1:")
    # everything was stopped and cleaned up
    assert not os.path.exists(sock)
    with pytest.raises(OSError):
        services.redis_ping("127.0.0.1", int(redis_addr.split(":")[1]))
    print(f"services run redis dns -- sh: {time.monotonic() - t0:.2f} s")


def test_services_cli_errors():
    r = run(os.path.join(REPO, "scripts", "services"), "run", "nosuch", "--", "true")
    assert r.returncode == 2 and "unknown service" in r.stderr
    r = run(os.path.join(REPO, "scripts", "services"), "list")
    assert r.returncode == 0 and "COSOCKET_WS" in r.stdout


# --------------------------------------------------------------------------
# stub_dns

def test_stub_dns_answers_and_records(stub_dns):
    dig = ["dig", "@127.0.0.1", "-p", str(stub_dns.port), "+time=1", "+tries=1"]
    assert stub_dns.flag == f"--resolver=127.0.0.1:{stub_dns.port}"
    assert out(*dig, "+short", "A", "cosocket.test") == "127.0.0.1"
    assert out(*dig, "+short", "A", "WWW.cosocket.test") == "127.0.0.1"
    assert sorted(out(*dig, "+short", "A", "two.cosocket.test").split()) == ["127.0.0.1", "127.0.0.2"]
    assert out(*dig, "+short", "AAAA", "v6.cosocket.test") == "::1"
    assert "status: NXDOMAIN" in out(*dig, "A", "nope.cosocket.test")
    assert "status: NXDOMAIN" in out(*dig, "A", "example.com")
    nodata = out(*dig, "AAAA", "www.cosocket.test")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata
    assert "status: SERVFAIL" in out(*dig, "A", "servfail.cosocket.test")
    assert "Truncated, retrying in TCP mode" in out(*dig, "A", "tc.cosocket.test")
    stub_dns.add("added.cosocket.test", "A", "127.0.0.9")
    assert out(*dig, "+short", "A", "added.cosocket.test") == "127.0.0.9"
    names = stub_dns.names()
    assert names[:3] == ["cosocket.test", "www.cosocket.test", "two.cosocket.test"]
    assert ("tcp", "tc.cosocket.test", "A") in [(q.proto, q.name, q.qtype) for q in stub_dns.queries]
    stub_dns.clear()
    assert stub_dns.queries == []


def test_stub_dns_slow_never_answers(stub_dns):
    t0 = time.monotonic()
    r = out("dig", "@127.0.0.1", "-p", str(stub_dns.port), "+time=1", "+tries=1", "A", "slow.cosocket.test")
    assert "no servers could be reached" in r or "timed out" in r
    assert time.monotonic() - t0 >= 0.9
    assert stub_dns.names() == ["slow.cosocket.test"]


# --------------------------------------------------------------------------
# fake_server, echo_server, udp_echo

def test_fake_server_script(fake_server):
    srv = fake_server([("expect", b"GET\r\n"), ("reply", b"+OK\r\n"), ("delay", 0.2),
                       ("reply", b"more"), ("close",)])
    for _ in range(2):                           # every connection gets the same script
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
            t0 = time.monotonic()
            c.sendall(b"GET\r\n")
            assert recv_until(c, b"+OK\r\n") == b"+OK\r\n"
            assert recv_until(c, b"never") == b"more"     # then EOF
            assert time.monotonic() - t0 >= 0.2
    assert srv.wait_connections(2)
    assert srv.connections == 2 and srv.received == [b"GET\r\n", b"GET\r\n"]
    assert srv.errors == []


def test_fake_server_mismatch_is_recorded():
    srv = FakeServer([("expect", b"PING\r\n"), ("reply", b"+PONG\r\n")])
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as c:
            c.sendall(b"PONG\r\n")
            with pytest.raises(ConnectionResetError):
                recv_until(c, b"\n")
        assert any("expected b'PING\\r\\n'" in e for e in srv.errors)
    finally:
        srv.stop()


def test_fake_server_reset_stall_read_until(fake_server):
    rst = fake_server([("read_until", b"\n"), ("reset",)])
    with socket.create_connection(("127.0.0.1", rst.port), timeout=5) as c:
        c.sendall(b"anything\n")
        with pytest.raises(ConnectionResetError):
            recv_until(c, b"\n")
    stall = fake_server([("stall",)])
    with socket.create_connection(("127.0.0.1", stall.port), timeout=5) as c:
        c.sendall(b"hello?")
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(10)
    assert stall.received == [b"hello?"]


def test_fake_server_unix(fake_server):
    srv = fake_server([("read", 3), ("reply", b"abc"), ("shutdown",), ("expect", b"bye")], unix=True)
    assert srv.path and srv.port is None
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(srv.path)
        c.sendall(b"xyz")
        assert recv_until(c, b"never") == b"abc"     # half-closed by the server
        c.sendall(b"bye")
    assert srv.wait_connections(1)
    deadline = time.monotonic() + 5
    while srv.received != [b"xyzbye"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.received == [b"xyzbye"]


def test_echo_server(echo_server):
    conns = [socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) for _ in range(3)]
    try:
        for i, c in enumerate(conns):
            c.sendall(b"ping%d" % i)
            assert recv_until(c, b"%d" % i) == b"ping%d" % i
        assert echo_server.connections == 3 and echo_server.active == 3
        echo_server.close_all()
        assert recv_until(conns[0], b"never") == b""
    finally:
        for c in conns:
            c.close()
    unix = echo_server(unix=True)
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(unix.path)
        c.sendall(b"over unix")
        assert recv_until(c, b"unix") == b"over unix"
    assert unix.connections == 1


def test_udp_echo(udp_echo, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"dgram", ("127.0.0.1", udp_echo.port))
        assert u.recv(100) == b"dgram"
    assert udp_echo.received == [b"dgram"]
    unix = udp_echo(unix=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.bind(str(tmp_path / "client.sock"))
        u.sendto(b"unix dgram", unix.path)
        assert u.recv(100) == b"unix dgram"


# --------------------------------------------------------------------------
# the run_lua harness, against a stand-in binary (a shell script)

FAKE_BIN = """#!/bin/sh
# stand-in for cosocket: prints its arguments and the script, obeys a few commands in it
for a; do echo "arg:$a"; done
script=""
for a; do case "$a" in *.lua) script=$a;; esac; done
[ -n "$script" ] && cat "$script"
grep -q SLEEP "$script" 2>/dev/null && sleep 30
grep -q ASAN "$script" 2>/dev/null && echo "==1==ERROR: AddressSanitizer: heap-use-after-free" >&2
grep -q UBSAN "$script" 2>/dev/null && echo "src/x.cc:3:7: runtime error: signed integer overflow" >&2
grep -q LUAERR "$script" 2>/dev/null && { echo "lua runtime error: boom" >&2; exit 1; }
grep -q STDIN "$script" 2>/dev/null && cat
exit 0
"""


@pytest.fixture
def fake_runner(tmp_path):
    binary = tmp_path / "fake-cosocket"
    binary.write_text(FAKE_BIN)
    binary.chmod(0o755)
    return conftest.LuaRunner(str(binary), tmp_path)


def test_run_lua_harness(fake_runner):
    r = fake_runner("print(1)", "a b", 2, flags=["--resolver=127.0.0.1:53"])
    assert r.rc == 0
    lines = r.out.splitlines()
    assert lines[0] == "arg:--resolver=127.0.0.1:53"
    assert lines[1].startswith("arg:") and lines[1].endswith(".lua")
    assert lines[2:] == ["arg:a b", "arg:2", "print(1)"]
    r = fake_runner("LUAERR")                       # a Lua error is not a sanitizer report
    assert r.rc == 1 and "lua runtime error" in r.err
    assert fake_runner("STDIN", stdin="from stdin").out.endswith("from stdin")
    assert fake_runner(None, flags=["-e", "x"]).out.splitlines() == ["arg:-e", "arg:x"]


def test_run_lua_harness_failures(fake_runner):
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="timed out after 1 s"):
        fake_runner("SLEEP", timeout=1)
    assert time.monotonic() - t0 < 10
    with pytest.raises(pytest.fail.Exception, match="AddressSanitizer"):
        fake_runner("ASAN")
    with pytest.raises(pytest.fail.Exception, match="runtime error: signed integer overflow"):
        fake_runner("UBSAN")
