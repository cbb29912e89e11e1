"""ngx.socket.udp (setpeername by address, by name, unix datagram sockets; send; receive;
timeouts; close; busy) and TCP over unix stream sockets.

Expected values were checked against OpenResty 0.10.23 (nginx 1.22.1 + ngx_lua 0.10.23) with
the same Lua. The Lua helpers P / PC come from tests/lua/socket/prelude.lua.
"""
from helpers.socket_lua import lua


# ---------------------------------------------------------------------------------------
# UDP

def test_udp_send_and_receive(run_lua_ok, udp_echo):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(2000)
P(u:setpeername("127.0.0.1", @PORT@))
P(u:send("hello"))
P(u:receive())
P(u:send({"a", {"b", 1}, 2.5}))
P(u:receive())
P(u:send(12))
P(u:receive(100))
P(u:send(""))
P(u:receive())
P(u:send(("z"):rep(9000)))
P(#u:receive())
P(u:close())
""", {"PORT": udp_echo.port})
    assert out == ["1", "1", "hello", "1", "ab12.5", "1", "12", "1", "", "1", "9000", "1"]
    assert udp_echo.received == [b"hello", b"ab12.5", b"12", b"", b"z" * 9000]


def test_udp_receive_size_truncates_the_datagram(run_lua_ok, udp_echo):
    # the rest of a datagram read with a smaller size is gone
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(200)
P(u:setpeername("127.0.0.1", @PORT@))
P(u:send("0123456789"))
P(u:receive(4))
P(u:receive())
P(u:send("again"))
P(u:receive())
""", {"PORT": udp_echo.port})
    assert out == ["1", "1", "0123", "nil|timeout", "1", "again"]


def test_udp_timeout_then_usable(run_lua_ok, udp_echo):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(150)
P(u:setpeername("127.0.0.1", @PORT@))
local t0 = ngx.now()
P(u:receive())
local dt = elapsed(t0)
P(dt >= 0.1 and dt < 1)
P(u:send("later"))
P(u:receive())
""", {"PORT": udp_echo.port})
    assert out == ["1", "nil|timeout", "true", "1", "later"]


def test_udp_setpeername_by_name(run_lua_ok, udp_echo, stub_dns):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(2000)
P(u:setpeername("cosocket.test", @PORT@))
P(u:send("byname"), u:receive())
P(u:setpeername("nope.cosocket.test", @PORT@))
P(u:send("x"))
""", {"PORT": udp_echo.port}, flags=[stub_dns.flag])
    assert out == ["1", "1|byname",
                   "nil|nope.cosocket.test could not be resolved (3: Host not found)",
                   "nil|closed"]
    assert "cosocket.test" in stub_dns.names()
    assert "nope.cosocket.test" in stub_dns.names()
    assert udp_echo.received == [b"byname"]


def test_udp_setpeername_again_switches_peer(run_lua_ok, udp_echo):
    other = udp_echo(unix=False)
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(2000)
P(u:setpeername("127.0.0.1", @A@))
P(u:send("to a"), u:receive())
P(u:setpeername("127.0.0.1", @B@))
P(u:send("to b"), u:receive())
""", {"A": udp_echo.port, "B": other.port})
    assert out == ["1", "1|to a", "1", "1|to b"]
    assert udp_echo.received == [b"to a"]
    assert other.received == [b"to b"]


def test_udp_unix_datagram_socket(run_lua_ok, udp_echo, tmp_path, echo_server):
    dgram = udp_echo(unix=True)
    stream = echo_server(unix=True)
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(2000)
P(u:setpeername("unix:@PATH@"))
P(u:send("unixdata"))
P(u:receive())
P(u:send({"t", "able"}))
P(u:receive())
P(u:close())
local v = ngx.socket.udp()
P(v:setpeername("unix:@DIR@/nonexistent"))
P(v:setpeername("unix:"))
P(v:setpeername("unix:@STREAM@"))
""", {"PATH": dgram.path, "DIR": tmp_path, "STREAM": stream.path})
    assert out == ["1", "1", "unixdata", "1", "table", "1",
                   "nil|no such file or directory",
                   'nil|failed to parse host name "unix:": no path in the unix domain socket',
                   "nil|protocol wrong type for socket"]
    assert dgram.received == [b"unixdata", b"table"]


def test_udp_closed_states(run_lua_ok, udp_echo):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
P(u:send("x"))
P(u:receive())
P(u:close())
P(u:setpeername("127.0.0.1", @PORT@))
P(u:close())
P(u:close())
P(u:send("x"))
P(u:receive())
""", {"PORT": udp_echo.port})
    assert out == ["nil|closed", "nil|closed", "nil|closed", "1", "1", "nil|closed",
                   "nil|closed", "nil|closed"]
    assert udp_echo.received == []


def test_udp_connection_refused(run_lua_ok, tcp_port_closed):
    # nothing listens on the port: the ICMP error shows on the next receive
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(500)
P(u:setpeername("127.0.0.1", @PORT@))
P(u:send("x"))
P(u:receive())
P(u:close())
""", {"PORT": tcp_port_closed})
    assert out == ["1", "1", "nil|connection refused", "1"]


def test_udp_busy_while_another_thread_receives(run_lua_ok, udp_echo):
    # an ngx_lua UDP socket has one waiting slot: while a thread is in receive, both a second
    # receive and a send get "socket busy"
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(300)
P(u:setpeername("127.0.0.1", @PORT@))
local th = ngx.thread.spawn(function() return u:receive() end)
P(u:receive())
P(u:send("a"))
P(ngx.thread.wait(th))
P(u:send("b"))
P(u:receive())
""", {"PORT": udp_echo.port})
    assert out == ["1", "nil|socket busy", "nil|socket busy", "true|nil|timeout", "1", "b"]
    assert udp_echo.received == [b"b"]


def test_udp_argument_errors(run_lua_ok, udp_echo):
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
u:settimeout(200)
P(u:setpeername("127.0.0.1", 99999))
PC(u.setpeername, u)
P(u:setpeername("127.0.0.1", @PORT@))
PC(u.send, u, {true})
PC(u.send, u)
PC(u.receive, u, "x")
PC(u.receive, u, 1, 2)
PC(u.send, u, true)
P(u:receive())
""", {"PORT": udp_echo.port})
    assert out == [
        "nil|bad port number: 99999",
        "err|ngx.socket.udp setpeername: expecting 2 or 3 arguments (including the object), but seen 1",
        "1",
        "err|bad argument #2 to '?' (bad data type boolean found)",
        "err|expecting 2 arguments (including the object), but got 1",
        "err|bad argument #2 to '?' (number expected, got string)",
        "err|expecting 1 or 2 arguments (including the object), but got 3",
        "ok|1",
        "true",
    ]


def test_udp_lenient_arguments_as_openresty(run_lua_ok, udp_echo, tcp_port_closed):
    # values checked with nginx + ngx_lua 0.10.23: no port means port 0, a size of 0 or less
    # means the largest datagram, a negative timeout is accepted (nginx: a huge one)
    out = lua(run_lua_ok, """
local u = ngx.socket.udp()
P(u:setpeername("127.0.0.1"))
P(u:send("x"))
u:settimeout(300)
P(u:receive())
local e = ngx.socket.udp()
PC(e.settimeout, e, -1)
e:settimeout(500)
assert(e:setpeername("127.0.0.1", @PORT@))
e:send(("d"):rep(3000))
P(#e:receive(0))
e:send("abc")
P(e:receive(-1))
""", {"PORT": udp_echo.port})
    assert out == ["1", "1", "nil|connection refused", "ok", "3000", "abc"]


# ---------------------------------------------------------------------------------------
# TCP over unix stream sockets

def test_tcp_over_unix_socket(run_lua_ok, echo_server):
    srv = echo_server(unix=True)
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("unix:@PATH@"))
P(s:send({"line one\\n", "line two\\n"}))
P(s:receive())
P(s:receive("*l"))
P(s:send("0123456789"))
P(s:receive(4), s:receiveany(100))
local it = s:receiveuntil("--")
P(s:send("ab--cd"))
P(it(), s:receive(2))
P(s:getoption("keepalive"))
P(s:setkeepalive())
s = ngx.socket.tcp()
P(s:connect("unix:@PATH@"), s:getreusedtimes())
P(s:close())
""", {"PATH": srv.path})
    assert out == ["1", "18", "line one", "line two", "10", "0123|456789", "6", "ab|cd",
                   "0", "1", "1|1", "1"]
    assert srv.wait_connections(1, 5) and srv.connections == 1, srv.connections


def test_tcp_unix_socket_options(run_lua_ok, echo_server):
    srv = echo_server(unix=True)
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("unix:@PATH@"))
PC(s.getoption, s, "tcp-nodelay")
PC(s.setoption, s, "tcp-nodelay", true)
""", {"PATH": srv.path})
    assert out == ["1", "ok|nil|Operation not supported", "ok|nil|Operation not supported"]


def test_tcp_unix_peer_closes(run_lua_ok, fake_server):
    srv = fake_server([("expect", b"hi"), ("reply", b"bye"), ("close",)], unix=True)
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("unix:@PATH@"))
P(s:send("hi"))
P(s:receive(10))
""", {"PATH": srv.path})
    assert out == ["1", "2", "nil|closed|bye"]
    assert srv.received == [b"hi"]
