"""Servers: cosocket.listen (TCP and unix stream sockets, a light thread per connection,
max_connections, close, SIGTERM drain, EMFILE), cosocket.udp_bind (receivefrom/sendto),
argument errors, and examples/redis_server.lua driven by the real redis-cli and
redis-benchmark. Every peer is a real client over a real socket."""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from helpers.cosocket_server import connect, parse_benchmark, recv_all, recv_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_SERVER = os.path.join(REPO, "examples", "redis_server.lua")


ECHO = r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock, peer)
    sock:settimeout(5000)
    while true do
        local line, err = sock:receive("*l")
        if not line then return end
        if line == "peer" then line = peer end
        if line == "boom" then error("boom from " .. peer) end
        if line == "bye" then sock:send("bye\n") sock:close() return end
        sock:send(line .. "\n")
    end
end })
io.write("listening on ", srv:port(), "\n")
'''


# --------------------------------------------------------------------------
# TCP

def test_echo_many_concurrent_clients(server):
    srv = server(ECHO)
    port = srv.port()
    errors, done = [], []

    def client(n):
        try:
            s = connect(port)
            for i in range(20):
                msg = f"client {n} line {i} " + "x" * (n * 37 % 500)
                s.sendall(msg.encode() + b"\n")
                got = recv_line(s)
                if got != msg + "\n":
                    errors.append((n, i, got))
                    return
            s.sendall(b"bye\n")
            assert recv_line(s) == "bye\n"
            assert s.recv(10) == b""   # the handler closed it
            s.close()
            done.append(n)
        except Exception as e:  # noqa: BLE001
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(done) == list(range(60))
    assert srv.stop() == 0


def test_peer_string_and_close_after_the_handler_returns(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ port = 0, host = "127.0.0.1", handler = function(sock, peer)
    sock:send(peer .. " " .. type(sock:getfd()) .. "\n")
    -- returns without closing: the runtime closes it
end })
io.write("listening on ", srv:port(), "\n")
''')
    port = srv.port()
    s = connect(port)
    ip, cport = s.getsockname()
    assert recv_all(s) == f"{ip}:{cport} number\n".encode()  # then EOF
    assert srv.stop() == 0


def test_ipv6_peer(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "::1", port = 0, handler = function(sock, peer)
    sock:send(peer)
end })
io.write("listening on ", srv:port(), "\n")
''')
    port = srv.port()
    s = socket.create_connection(("::1", port), timeout=5)
    assert recv_all(s).decode() == f"[::1]:{s.getsockname()[1]}"
    assert srv.stop() == 0


def test_handler_error_is_logged_and_others_continue(server):
    srv = server(ECHO)
    port = srv.port()
    a = connect(port)
    a.sendall(b"one\n")
    assert recv_line(a) == "one\n"
    b = connect(port)
    b_port = b.getsockname()[1]
    b.sendall(b"boom\n")
    assert recv_all(b) == b""  # closed after the error
    a.sendall(b"two\n")
    assert recv_line(a) == "two\n"
    c = connect(port)
    c.sendall(b"three\n")
    assert recv_line(c) == "three\n"
    a.close()
    c.close()
    assert srv.stop() == 0
    assert re.search(rf"\[error\] \d+#0: server handler for 127\.0\.0\.1:{b_port} failed: "
                     rf"\S+:\d+: boom from 127\.0\.0\.1:{b_port}\nstack traceback:", srv.err), srv.err


def test_max_connections_refuses_the_extra_ones(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv
srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, max_connections = 2,
  handler = function(sock)
    sock:send("hello " .. tostring(srv:connections() <= 2) .. "\n")
    sock:receive("*a")
  end })
io.write("listening on ", srv:port(), "\n")
''')
    port = srv.port()
    a, b = connect(port), connect(port)
    assert recv_line(a) == "hello true\n"
    assert recv_line(b) == "hello true\n"
    c = connect(port)
    assert recv_all(c) == b""  # accepted and closed at once
    a.close()
    time.sleep(0.2)
    d = connect(port)
    assert recv_line(d) == "hello true\n"
    b.close()
    d.close()
    assert srv.stop() == 0
    assert "2 max_connections are not enough, connection from 127.0.0.1:" in srv.err


def test_max_connections_flag_and_an_unreferenced_server_survives_gc(server):
    srv = server(r'''
local cosocket = require "cosocket"
io.write("listening on ", cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    sock:send("hi\n")
    sock:receive("*a")
end }:port(), "\n")
ngx.timer.every(0.01, function() collectgarbage() end)
''', flags=["--max-connections", "1"])
    port = srv.port()
    time.sleep(0.1)  # a few collections
    a = connect(port)
    assert recv_line(a) == "hi\n"
    b = connect(port)
    assert recv_all(b) == b""
    a.close()
    time.sleep(0.2)
    c = connect(port)
    assert recv_line(c) == "hi\n"
    c.close()
    assert srv.stop() == 0
    assert "1 max_connections are not enough" in srv.err


def test_server_close_stops_accepting_and_the_script_ends(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv
srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    local line = sock:receive("*l")
    ngx.say("closing: ", srv:close(), " again: ", table.concat({tostring(srv:close())}, ","))
    ngx.sleep(0.3)  -- the handler runs on after the close
    sock:send("done " .. line .. "\n")
end })
io.write("listening on ", srv:port(), "\n")
''')
    port = srv.port()
    a = connect(port)
    a.sendall(b"x\n")
    time.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert recv_all(a) == b"done x\n"
    assert srv.finish(5) == 0  # nothing left: the process ends by itself
    assert "closing: 1 again: nil" in srv.out


def test_a_script_serving_itself_ends_when_done(run_lua):
    r = run_lua(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock, peer)
    sock:send((sock:receive("*l")):upper() .. "\n")
end })
local c = ngx.socket.tcp()
c:settimeout(2000)
assert(c:connect("127.0.0.1", srv:port()))
c:send("abc\n")
ngx.say(c:receive("*l"))
ngx.say(c:receive("*l"))
srv:close()
''', timeout=10)
    assert r.rc == 0, r.describe()
    assert r.out == "ABC\nnilclosed\n"


def test_sigterm_stops_accepting_and_lets_handlers_finish(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    local line = sock:receive("*l")
    ngx.sleep(tonumber(line))
    sock:send("slept " .. line .. " exiting=" .. tostring(ngx.worker.exiting()) .. "\n")
end })
io.write("listening on ", srv:port(), "\n")
''', flags=["--shutdown-timeout", "4000"])
    port = srv.port()
    a = connect(port)
    a.sendall(b"0.8\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert recv_all(a) == b"slept 0.8 exiting=true\n"
    assert srv.finish(5) == 0
    assert time.monotonic() - t0 < 3


def test_sigterm_shutdown_timeout_cuts_a_long_handler(server):
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    sock:receive("*a")
end })
io.write("listening on ", srv:port(), "\n")
''', flags=["--shutdown-timeout", "300"])
    a = connect(srv.port())
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.finish(5) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 2
    a.close()


def test_unix_socket_server(server, tmp_path):
    path = tmp_path / "srv.sock"
    # a stale socket file (its server is gone) is replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ path = "@PATH@", handler = function(sock, peer)
    sock:send(peer .. " " .. (sock:receive("*l")) .. "\n")
end })
io.write("listening on 0 ", tostring(srv:port()), " ", srv:path(), " ", tostring(srv), "\n")
-- a second server on the same live path is refused
local a, b = cosocket.listen{ path = "@PATH@", handler = function() end }
io.write("second: ", tostring(a), ",", tostring(b), "\n")
'''.replace("@PATH@", str(path)))
    srv.wait_for("second: ")
    srv.wait_for(r"second: [^\n]+\n")
    assert f"listening on 0 nil {path} server: unix:{path}" in srv.out.decode()
    assert "second: nil,address already in use" in srv.out.decode()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect(str(path))
    c.sendall(b"hi\n")
    assert recv_all(c) == b"unix: hi\n"
    named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    named.bind(str(tmp_path / "client.sock"))
    named.settimeout(5)
    named.connect(str(path))
    named.sendall(b"yo\n")
    assert recv_all(named) == f"unix:{tmp_path / 'client.sock'} yo\n".encode()
    assert srv.stop() == 0
    assert not path.exists()  # removed on close


def test_unix_socket_path_that_is_a_file_is_not_removed(run_lua, tmp_path):
    f = tmp_path / "regular"
    f.write_text("data")
    r = run_lua(f'''
local cosocket = require "cosocket"
ngx.say(cosocket.listen{{ path = "{f}", handler = function() end }})
ngx.say(cosocket.listen{{ path = "{tmp_path}/no/such/dir/s.sock", handler = function() end }})
''')
    assert r.rc == 0, r.describe()
    assert r.out == "niladdress already in use\nnilno such file or directory\n"
    assert f.read_text() == "data"


def test_address_in_use(run_lua):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    r = run_lua(f'''
local cosocket = require "cosocket"
ngx.say(cosocket.listen{{ host = "127.0.0.1", port = {busy.getsockname()[1]}, handler = function() end }})
''')
    busy.close()
    assert r.rc == 0, r.describe()
    assert r.out == "niladdress already in use\n"


def test_bad_arguments(run_lua):
    r = run_lua(r'''
local cosocket = require "cosocket"
local h = function() end
local function E(...)
    local ok, a, b = pcall(cosocket.listen, ...)
    if ok then ngx.say("ret ", tostring(a), " ", tostring(b))
    else ngx.say("err ", (tostring(a):gsub("^[^\n]-:%d+: ", ""))) end
end
E()
E("x")
E{ port = 0 }
E{ port = 0, handler = print }
E{ handler = h }
E{ port = "80", handler = h }
E{ port = 70000, handler = h }
E{ port = 1.5, handler = h }
E{ port = 0, handler = h, prot = 1 }
E{ port = 0, path = "/tmp/x", handler = h }
E{ path = "", handler = h }
E{ port = 0, handler = h, backlog = 0 }
E{ port = 0, handler = h, max_connections = 0 }
E{ port = 0, handler = h, reuseport = 1 }
E{ port = 0, handler = h, host = 1 }
E{ port = 0, handler = h, host = "example.com" }
E{ port = 0, handler = h, ssl = { cert = "c.pem", key = "k.pem" } }
E{ port = 0, handler = h, ssl = { cert = 1 } }
E{ port = 0, handler = h, ssl = "yes" }
E{ path = ("x"):rep(200), handler = h }
local function U(...)
    local ok, a, b = pcall(cosocket.udp_bind, ...)
    if ok then ngx.say("ret ", tostring(a), " ", tostring(b))
    else ngx.say("err ", (tostring(a):gsub("^[^\n]-:%d+: ", ""))) end
end
U()
U{}
U{ port = -1 }
U{ port = 0, host = "nonsense" }
U{ port = 0, foo = 1 }
local u = cosocket.udp_bind{ host = "127.0.0.1", port = 0 }
ngx.say(pcall(u.sendto, u, "127.0.0.1", 9))
ngx.say(u:sendto("not an ip", 9, "x"))
ngx.say(u:sendto("127.0.0.1", 0, "x"))
ngx.say((select(2, pcall(u.receivefrom, u, -1))))
ngx.say(u:close())
ngx.say(u:close())
ngx.say(u:receivefrom())
ngx.say(u:sendto("127.0.0.1", 9, "x"))
''')
    assert r.rc == 0, r.describe()
    assert r.out.splitlines() == [
        "err cosocket.listen: expecting one table argument",
        "err cosocket.listen: expecting one table argument",
        'err cosocket.listen: "handler" must be a Lua function',
        'err cosocket.listen: "handler" must be a Lua function',
        'err cosocket.listen: "port" or "path" is required',
        'err cosocket.listen: "port" must be a number',
        'err cosocket.listen: bad "port" value 70000 (expected an integer in 0..65535)',
        'err cosocket.listen: bad "port" value 1.5 (expected an integer in 0..65535)',
        'err cosocket.listen: unknown option "prot"',
        'err cosocket.listen: "path" excludes "host" and "port"',
        'err cosocket.listen: empty "path"',
        'err cosocket.listen: bad "backlog" value 0 (expected an integer in 1..65535)',
        'err cosocket.listen: bad "max_connections" value 0 (expected an integer in 1..1073741824)',
        'err cosocket.listen: "reuseport" must be a boolean',
        'err cosocket.listen: "host" must be a string',
        'ret nil bad host "example.com" (a numeric address, "*" or "localhost")',
        'ret nil cannot open "c.pem": error:80000002:system library::No such file or directory; '
        'error:10000080:BIO routines::no such file',
        'err cosocket.listen: "ssl.cert" must be a string (PEM or a file)',
        'err cosocket.listen: "ssl" must be a table',
        "ret nil unix socket path too long",
        "err cosocket.udp_bind: expecting one table argument",
        'err cosocket.udp_bind: "port" is required',
        'err cosocket.udp_bind: bad "port" value -1 (expected an integer in 0..65535)',
        'ret nil bad host "nonsense" (a numeric address, "*" or "localhost")',
        'err cosocket.udp_bind: unknown option "foo"',
        "falseexpecting 4 arguments (including the object), but got 3",
        'nilbad address "not an ip"',
        "nilbad port number: 0",
        "bad argument #2 to '?' (bad size argument)",
        "1",
        "nilclosed",
        "nilclosed",
        "nilclosed",
    ]


def test_accept_pauses_on_emfile_without_spinning(server):
    # 24 descriptors: the flood of clients runs the server out of them
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))
    srv = server(r'''
local cosocket = require "cosocket"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
    sock:send("hi\n")
    sock:receive("*a")
end })
io.write("listening on ", srv:port(), "\n")
''', preexec_fn=limit)
    port = srv.port()
    clients = [connect(port) for _ in range(40)]
    time.sleep(1.5)
    with open(f"/proc/{srv.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    served = 0
    for c in clients:
        c.settimeout(0.05)
        try:
            if c.recv(10) == b"hi\n":
                served += 1
        except socket.timeout:
            pass
    assert 0 < served < 40
    assert cpu < 0.5, f"{cpu} s of CPU while out of descriptors: the accept loop spins"
    for c in clients:
        c.close()
    time.sleep(0.5)
    late = connect(port)
    assert recv_line(late) == "hi\n"  # accepting again once descriptors are free
    late.close()
    assert srv.stop() == 0
    assert "accept4() failed (24: too many open files), accepting again in 100 ms" in srv.err


# --------------------------------------------------------------------------
# UDP

def test_udp_bind_receivefrom_sendto(server):
    srv = server(r'''
local cosocket = require "cosocket"
local u = assert(cosocket.udp_bind{ host = "127.0.0.1", port = 0 })
u:settimeout(300)
io.write("listening on ", u:port(), " ", tostring(u), "\n")
local n = 0
while true do
    local data, ip, port = u:receivefrom()
    if not data then
        io.write("receivefrom: ", ip, "\n")
        if n > 0 then break end
    else
        n = n + 1
        if data == "quit" then break end
        assert(u:sendto(ip, port, { "echo ", data, " from ", ip, ":", port }))
    end
end
io.write("served ", n, " ", tostring(u:close()), "\n")
''')
    port = srv.port()
    assert srv.wait_for(r"receivefrom: timeout")  # nothing came within 300 ms
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for i, c in enumerate(clients):
        c.settimeout(5)
        c.sendto(f"msg{i}".encode() + b"\0x" * i, ("127.0.0.1", port))
    for i, c in enumerate(clients):
        data, addr = c.recvfrom(100)
        assert addr == ("127.0.0.1", port)
        assert data == f"echo msg{i}".encode() + b"\0x" * i + f" from 127.0.0.1:{c.getsockname()[1]}".encode()
    big = b"B" * 60000
    clients[0].sendto(big, ("127.0.0.1", port))
    data, _ = clients[0].recvfrom(70000)
    assert data.startswith(b"echo " + big)
    clients[1].sendto(b"quit", ("127.0.0.1", port))
    assert srv.finish(5) == 0
    assert "served 5 1" in srv.out


def test_udp_receivefrom_size_and_close_wakes_the_reader(run_lua):
    port_holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r = run_lua(r'''
local cosocket = require "cosocket"
local u = assert(cosocket.udp_bind{ host = "127.0.0.1", port = 0 })
local peer = ngx.socket.udp()
assert(peer:setpeername("127.0.0.1", u:port()))
peer:send("0123456789")
local data, ip, port = u:receivefrom(4)
ngx.say(data, " ", ip, " ", type(port))
u:settimeout(5000)
local t = ngx.thread.spawn(function() return u:receivefrom() end)
ngx.sleep(0.05)
ngx.say(u:receivefrom())
ngx.say(u:close())
ngx.say(ngx.thread.wait(t))
''', timeout=10)
    port_holder.close()
    assert r.rc == 0, r.describe()
    assert r.out.splitlines() == ["0123 127.0.0.1 number", "nilsocket busy", "1", "truenilclosed"]


# --------------------------------------------------------------------------
# examples/redis_server.lua with the real redis tools

def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, timeout=10, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_redis_server_example_with_redis_cli(server, redis):
    srv = server(file=REDIS_SERVER, args=[0])
    port = srv.port()
    # the same redis-cli commands against the example and the real redis-server
    p = f"listen-test:{os.getpid()}:{time.monotonic_ns()}:"
    commands = [
        ["PING"], ["SET", p + "k", "hello world"], ["GET", p + "k"], ["GET", p + "missing"],
        ["INCR", p + "n"], ["INCR", p + "n"], ["INCR", p + "k"], ["EXISTS", p + "k", p + "n", p + "zz"],
        ["DEL", p + "k", p + "zz"], ["ECHO", "a\r\nb"], ["SET", p + "t", "1", "PX", "2000"],
        ["SET", p + "t", "2", "NX"], ["GET", p + "t"], ["GET"], ["SET", p + "x", "1", "EX", "-5"],
        ["SET", p + "x", "1", "BOGUS"], ["PING", "hi"], ["DEL", p + "n"], ["FOO"], ["FOO", "bar", "b z"],
    ]
    # the PX key lives 2 s: long enough for the next commands to see it on both servers even on
    # a loaded machine (each is two redis-cli processes), short enough to wait for its expiry
    for cmd in commands:
        if cmd[-1] == "2000":
            set_at = time.monotonic()
        assert redis_cli(port, *cmd) == redis_cli(redis.port, *cmd), cmd
    assert redis_cli(port, "GET", p + "k") == "\n"
    time.sleep(max(0.0, set_at + 2.2 - time.monotonic()))
    assert redis_cli(port, "EXISTS", p + "t") == "0\n"  # expired
    assert redis_cli(port, "CONFIG", "GET", "save") == "save\n\n"
    assert redis_cli(port, "CONFIG", "GET", "appendonly") == "appendonly\nno\n"
    # pipelined, mixed inline and RESP, in one write; QUIT closes
    s = connect(port)
    s.sendall(b"PING\r\nset a 1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nQUIT\r\nPING\r\n")
    assert recv_all(s) == b"+PONG\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n"
    # a command split over many writes
    s = connect(port)
    for ch in b"*3\r\n$3\r\nSET\r\n$2\r\nsp\r\n$5\r\nsplit\r\n":
        s.sendall(bytes([ch]))
    assert s.recv(100) == b"+OK\r\n"
    # a protocol error is answered and the connection closed
    s = connect(port)
    s.sendall(b"*1\r\n:12\r\n")
    assert recv_all(s) == b"-ERR Protocol error: expected '$', got ':'\r\n"
    assert srv.stop() == 0


@pytest.mark.parametrize("pipeline", [1, 16])
def test_redis_server_example_with_redis_benchmark(server, pipeline):
    srv = server(file=REDIS_SERVER, args=[0])
    port = srv.port()
    r = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get,ping", "-n", "20000", "-c", "50",
                        "-q", "-P", str(pipeline)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rps = parse_benchmark(r.stdout)
    assert set(rps) == {"PING_INLINE", "PING_MBULK", "SET", "GET"}, r.stdout
    assert all(v > 0 for v in rps.values()), rps
    # every request was answered: the values are there
    assert redis_cli(port, "EXISTS", "key:__rand_int__", "counter:__rand_int__") == "1\n"
    assert len(redis_cli(port, "GET", "key:__rand_int__")) == 4  # a 3-byte value
    assert srv.stop() == 0
    assert srv.err.count("[error]") == 0, srv.err
