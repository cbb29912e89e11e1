"""Name resolution for cosockets, only through the stub_dns fixture (--resolver=127.0.0.1:PORT):
TCP connect and UDP setpeername by name, several A records, NXDOMAIN / SERVFAIL / timeout
error texts, truncated answers retried over TCP, /etc/hosts, and ngx.socket.connect.

Expected values were checked against OpenResty 0.10.23 (nginx 1.22.1 + ngx_lua 0.10.23,
"resolver 127.0.0.1:PORT ipv6=off") with the same Lua, except where a comment says otherwise.
The Lua helpers P / PC come from tests/lua/socket/prelude.lua.
"""
import os
import socket
import threading

import pytest

from helpers.socket_lua import lua


class AddressReporter:
    """Listens on ip:port and answers each connection with its own address and a newline."""

    def __init__(self, ip, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(32)
        self.sock.settimeout(0.05)
        self.ip, self.port = ip, self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                c.sendall(f"{self.ip}\n".encode())
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@pytest.fixture
def two_addresses():
    """The same port listening on 127.0.0.1 and 127.0.0.2."""
    for _ in range(20):
        first = AddressReporter("127.0.0.1")
        try:
            second = AddressReporter("127.0.0.2", first.port)
        except OSError:
            first.stop()
            continue
        yield first, second
        first.stop()
        second.stop()
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


def test_connect_by_name(run_lua_ok, stub_dns, echo_server):
    out = lua(run_lua_ok, """
for _, name in ipairs{"cosocket.test", "www.cosocket.test", "WWW.Cosocket.Test"} do
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  P(name, s:connect(name, @PORT@))
  P(s:send("x"), s:receive(1))
  s:close()
end
""", {"PORT": echo_server.port}, flags=[stub_dns.flag])
    assert out == ["cosocket.test|1", "1|x", "www.cosocket.test|1", "1|x",
                   "WWW.Cosocket.Test|1", "1|x"]
    names = stub_dns.names()
    assert "cosocket.test" in names and "www.cosocket.test" in names
    assert all(q.proto == "udp" for q in stub_dns.queries)
    assert echo_server.wait_connections(3, 5) and echo_server.connections == 3, echo_server.connections


def test_udp_setpeername_by_name(run_lua_ok, stub_dns, udp_echo):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(2000)
P(u:setpeername("www.cosocket.test", @PORT@))
P(u:send("dgram"), u:receive())
""", {"PORT": udp_echo.port}, flags=[stub_dns.flag])
    assert out == ["1", "1|dgram"]
    assert "www.cosocket.test" in stub_dns.names()


def test_a_name_with_two_addresses_uses_both(run_lua_ok, stub_dns, two_addresses):
    # nginx picks one of the A records at random for each connect
    first, second = two_addresses
    out = lua(run_lua_ok, """
local seen = {}
for i = 1, 24 do
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  local ok, err = s:connect("two.cosocket.test", @PORT@)
  if not ok then P("connect failed", err) break end
  local ip = s:receive()
  seen[ip] = (seen[ip] or 0) + 1
  s:close()
end
P(seen["127.0.0.1"] ~= nil, seen["127.0.0.2"] ~= nil, (seen["127.0.0.1"] or 0) + (seen["127.0.0.2"] or 0))
""", {"PORT": first.port}, flags=[stub_dns.flag])
    assert out == ["true|true|24"]
    assert "two.cosocket.test" in stub_dns.names()
    assert first.connections + second.connections == 24


def test_name_not_found(run_lua_ok, stub_dns, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("nope.cosocket.test", @PORT@))
local u = ngx.socket.udp()
P(u:setpeername("nope.cosocket.test", @PORT@))
P(ngx.socket.connect("nope.cosocket.test", @PORT@))
P(s:connect("other.example", @PORT@))
""", {"PORT": echo_server.port}, flags=[stub_dns.flag])
    assert out == ["nil|nope.cosocket.test could not be resolved (3: Host not found)"] * 3 + \
        ["nil|other.example could not be resolved (3: Host not found)"]
    assert "nope.cosocket.test" in stub_dns.names()
    assert "other.example" in stub_dns.names()
    assert echo_server.connections == 0


def test_server_failure(run_lua_ok, stub_dns):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("servfail.cosocket.test", 80))
local u = ngx.socket.udp()
P(u:setpeername("servfail.cosocket.test", 80))
""", flags=[stub_dns.flag])
    assert out == ["nil|servfail.cosocket.test could not be resolved (2: Server failure)"] * 2
    assert "servfail.cosocket.test" in stub_dns.names()


def test_resolver_timeout(run_lua_ok, stub_dns):
    # stub_dns never answers slow.cosocket.test, and answers badid.cosocket.test with a
    # mismatched id that must be ignored. OpenResty bounds every lookup (TCP and UDP) by the
    # resolver timeout (lua_resolver_timeout, 30 s by default; --resolver-timeout here), not
    # by the socket's connect timeout, which is longer here.
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
local t0 = ngx.now()
P(s:connect("slow.cosocket.test", 80))
P(elapsed(t0) < 1.2)
local u = ngx.socket.udp()
t0 = ngx.now()
P(u:setpeername("slow.cosocket.test", 80))
P(elapsed(t0) < 1.2)
t0 = ngx.now()
P(s:connect("badid.cosocket.test", 80))
P(elapsed(t0) < 1.2)
""", flags=[stub_dns.flag, "--resolver-timeout", "300"])
    assert out == ["nil|slow.cosocket.test could not be resolved (110: Operation timed out)",
                   "true",
                   "nil|slow.cosocket.test could not be resolved (110: Operation timed out)",
                   "true",
                   "nil|badid.cosocket.test could not be resolved (110: Operation timed out)",
                   "true"]
    assert "slow.cosocket.test" in stub_dns.names()
    assert "badid.cosocket.test" in stub_dns.names()


def test_truncated_answer_is_retried_over_tcp(run_lua_ok, stub_dns, echo_server):
    # stub_dns answers tc.cosocket.test over UDP with an empty, truncated (TC=1) reply and
    # over TCP with the address. OpenResty's resolver retries over TCP (checked against
    # OpenResty 0.10.23: connect succeeds and the stub sees a TCP query); so does cosocket.
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(3000)
P(s:connect("tc.cosocket.test", @PORT@))
P(s:send("2"), s:receive(1))
s:close()
""", {"PORT": echo_server.port}, flags=[stub_dns.flag])
    assert out == ["1", "1|2"]
    protos = {q.proto for q in stub_dns.queries if q.name == "tc.cosocket.test"}
    assert protos == {"udp", "tcp"}, stub_dns.queries


def test_localhost_from_etc_hosts_with_resolver(run_lua_ok, stub_dns, echo_server):
    # cosocket's documented choice (README: "--resolver ... /etc/hosts still used"). NOTE:
    # nginx's own resolver does not read /etc/hosts: OpenResty 0.10.23 answers
    # "localhost could not be resolved (3: Host not found)" here.
    assert os.path.exists("/etc/hosts"), "this machine has no /etc/hosts (every Debian install has one)"
    with open("/etc/hosts") as f:
        assert any(line.split()[:1] == ["127.0.0.1"] and "localhost" in line.split()[1:]
                   for line in f), "/etc/hosts has no 127.0.0.1 localhost line"
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("localhost", @PORT@))
P(s:send("lh"), s:receive(2))
""", {"PORT": echo_server.port}, flags=[stub_dns.flag])
    assert out == ["1", "2|lh"]
    assert "localhost" not in stub_dns.names()


def test_ngx_socket_connect_shorthand(run_lua_ok, stub_dns, echo_server, tcp_port_closed):
    unix = echo_server(unix=True)
    out = lua(run_lua_ok, """
local s, err = ngx.socket.connect("127.0.0.1", @PORT@)
P(s ~= nil, err)
P(s:send("one"), s:receive(3))
P(s:close())
s, err = ngx.socket.connect("cosocket.test", @PORT@)
P(s ~= nil, err)
P(s:send("two"), s:receive(3), s:getreusedtimes())
s:close()
s, err = ngx.socket.connect("unix:@PATH@")
P(s ~= nil, err)
P(s:send("three"), s:receive(5))
P(ngx.socket.connect("127.0.0.1", @CLOSED@))
""", {"PORT": echo_server.port, "PATH": unix.path, "CLOSED": tcp_port_closed},
        flags=[stub_dns.flag])
    assert out == ["true|nil", "3|one", "1", "true|nil", "3|two|0", "true|nil", "5|three",
                   "nil|connection refused"]
    assert "cosocket.test" in stub_dns.names()
    assert echo_server.received == [b"one", b"two"]
    assert unix.received == [b"three"]
