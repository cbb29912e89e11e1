"""Connection pools: setkeepalive / connect reuse, pool keys and names, LRU eviction, idle
timeout, connections closed by the peer while idle, the conditions that refuse a connection
(unread data, dubious state), argument checks, and connect backlogs.

Expected values were checked against OpenResty 0.10.23 (nginx 1.22.1 + ngx_lua 0.10.23) with
the same Lua, except the checkpoints (the test looks at the server between two steps), which
only exist here. The Lua helpers P / PC come from tests/lua/socket/prelude.lua.
"""

import pytest

from helpers.socket_lua import lua, Interactive, wait_for


# ---------------------------------------------------------------------------------------
# reuse and pool keys

def test_setkeepalive_then_connect_reuses(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
for i = 1, 4 do
  local s = ngx.socket.tcp()
  P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes(), s:send("p" .. i), s:receive(2), s:setkeepalive())
end
""", {"PORT": echo_server.port})
    assert out == ["1|0|2|p1|1", "1|1|2|p2|1", "1|2|2|p3|1", "1|3|2|p4|1"]
    assert echo_server.wait_connections(1, 5) and echo_server.connections == 1, echo_server.connections
    assert echo_server.received == [b"p1p2p3p4"]


def test_pool_keyed_by_host_and_port(run_lua_ok, echo_server, stub_dns):
    other = echo_server(unix=False)
    out = lua(run_lua_ok, """
local function use(host, port)
  local s = ngx.socket.tcp()
  local ok, err = s:connect(host, port)
  P(host, port == @A@ and "A" or "B", ok, err, s:getreusedtimes(), s:setkeepalive())
end
use("127.0.0.1", @A@)
use("127.0.0.1", @B@)
use("127.0.0.1", @A@)
use("127.0.0.1", @B@)
use("cosocket.test", @A@)       -- same address, another key ("cosocket.test:port")
use("cosocket.test", @A@)
use("127.0.0.1", @A@)
""", {"A": echo_server.port, "B": other.port}, flags=[stub_dns.flag])
    assert out == ["127.0.0.1|A|1|nil|0|1", "127.0.0.1|B|1|nil|0|1",
                   "127.0.0.1|A|1|nil|1|1", "127.0.0.1|B|1|nil|1|1",
                   "cosocket.test|A|1|nil|0|1", "cosocket.test|A|1|nil|1|1",
                   "127.0.0.1|A|1|nil|2|1"]
    assert echo_server.wait_connections(2, 5) and echo_server.connections == 2, echo_server.connections
    assert other.wait_connections(1, 5) and other.connections == 1, other.connections
    assert "cosocket.test" in stub_dns.names()


def test_pool_option_names_the_pool(run_lua_ok, echo_server):
    other = echo_server(unix=False)
    out = lua(run_lua_ok, """
local function use(port, pool, data)
  local s = ngx.socket.tcp()
  P(pool, s:connect("127.0.0.1", port, {pool = pool}), s:getreusedtimes(), s:send(data), s:receive(#data), s:setkeepalive())
end
use(@A@, "a", "1")
use(@A@, "b", "2")
use(@A@, "a", "3")
use(@A@, "b", "4")
-- the name alone is the key: a pooled connection to A is handed out for B's port
use(@A@, "shared", "5")
use(@B@, "shared", "6")
""", {"A": echo_server.port, "B": other.port})
    assert out == ["a|1|0|1|1|1", "b|1|0|1|2|1", "a|1|1|1|3|1", "b|1|1|1|4|1",
                   "shared|1|0|1|5|1", "shared|1|1|1|6|1"]
    assert echo_server.received == [b"13", b"24", b"56"]
    assert other.connections == 0


def test_unix_socket_pool(run_lua_ok, echo_server):
    srv = echo_server(unix=True)
    out = lua(run_lua_ok, """
for i = 1, 3 do
  local s = ngx.socket.tcp()
  P(s:connect("unix:@PATH@"), s:getreusedtimes(), s:send("u"), s:receive(1), s:setkeepalive())
end
""", {"PATH": srv.path})
    assert out == ["1|0|1|u|1", "1|1|1|u|1", "1|2|1|u|1"]
    assert srv.wait_connections(1, 5) and srv.connections == 1, srv.connections


# ---------------------------------------------------------------------------------------
# eviction, idle timeout, peer closing

def test_lru_eviction_closes_the_oldest(cosocket_bin, tmp_path, echo_server):
    it = Interactive(cosocket_bin, tmp_path, """
local ss = {}
for i = 1, 3 do
  ss[i] = ngx.socket.tcp()
  assert(ss[i]:connect("127.0.0.1", @PORT@, {pool = "lru"}))
  assert(ss[i]:send("c" .. i))
  assert(ss[i]:receive(2))
end
for i = 1, 3 do P("kept", i, ss[i]:setkeepalive(0, 2)) end
checkpoint("three kept")
for i = 1, 3 do
  local s = ngx.socket.tcp()
  P("again", i, s:connect("127.0.0.1", @PORT@, {pool = "lru"}), s:getreusedtimes(), s:send("r" .. i), s:receive(2))
  ss[i] = s
end
""", {"PORT": echo_server.port})
    it.expect("three kept")
    evicted = wait_for(lambda: echo_server.active == 2)
    it.resume()
    out = it.finish()
    assert evicted, f"{echo_server.active} server-side connections still open, expected 2"
    # the most recently kept connection is handed out first; the oldest one was closed
    assert out == ["kept|1|1", "kept|2|1", "kept|3|1", "three kept",
                   "again|1|1|1|2|r1", "again|2|1|1|2|r2", "again|3|1|0|2|r3"]
    assert echo_server.received == [b"c1", b"c2r2", b"c3r1", b"r3"]


def test_idle_timeout(cosocket_bin, tmp_path, echo_server):
    it = Interactive(cosocket_bin, tmp_path, """
local s = ngx.socket.tcp()
assert(s:connect("127.0.0.1", @PORT@))
assert(s:send("i") and s:receive(1))     -- the server has accepted it
P(s:setkeepalive(100))
ngx.sleep(0.3)
checkpoint("expired")
s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
P(s:setkeepalive(1000))
ngx.sleep(0.3)
s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
P(s:send("x"), s:receive(1))
""", {"PORT": echo_server.port})
    it.expect("expired")
    closed = wait_for(lambda: echo_server.active == 0)
    it.resume()
    out = it.finish()
    assert closed, "the server did not see the idle connection closed"
    assert out == ["1", "expired", "1|0", "1", "1|1", "1|x"]
    assert echo_server.wait_connections(2, 5) and echo_server.connections == 2, echo_server.connections


def test_peer_closes_an_idle_pooled_connection(cosocket_bin, tmp_path, echo_server):
    it = Interactive(cosocket_bin, tmp_path, """
local s = ngx.socket.tcp()
assert(s:connect("127.0.0.1", @PORT@))
P(s:send("a"), s:receive(1), s:setkeepalive())
checkpoint("pooled")
ngx.sleep(0.2)
s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
P(s:send("b"), s:receive(1))
""", {"PORT": echo_server.port})
    it.expect("pooled")
    echo_server.close_all()
    it.resume()
    out = it.finish()
    assert out == ["1|a|1", "pooled", "1|0", "1|b"]
    assert echo_server.wait_connections(2, 5) and echo_server.connections == 2, echo_server.connections


# ---------------------------------------------------------------------------------------
# refusing a connection

def test_unread_data_in_buffer(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@))
P(s:send("abc"), s:receive(1))
ngx.sleep(0.05)
P(s:setkeepalive())
P(s:receive(2))
P(s:setkeepalive())
s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
""", {"PORT": echo_server.port})
    assert out == ["1", "3|a", "nil|unread data in buffer", "bc", "1", "1|1"]
    assert echo_server.wait_connections(1, 5) and echo_server.connections == 1, echo_server.connections


def test_dubious_state_after_unexpected_bytes(run_lua_ok, fake_server):
    # the peer sent more after the reply: the connection cannot be pooled, and is closed
    srv = fake_server([("read", 1), ("reply", b"ok"), ("delay", 0.05), ("reply", b"extra"),
                       ("stall",)])
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("127.0.0.1", @PORT@))
P(s:send("q"), s:receive(2))
ngx.sleep(0.2)
P(s:setkeepalive())
P(s:close())
s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
""", {"PORT": srv.port})
    assert out == ["1", "1|ok", "nil|connection in dubious state", "nil|closed", "1|0"]
    assert srv.wait_connections(2, 5) and srv.connections == 2, srv.connections


def test_setkeepalive_after_the_peer_closed(run_lua_ok, fake_server):
    # a pending FIN or RST: setkeepalive says "closed" and leaves the socket to close()
    fin = fake_server([("read", 1), ("reply", b"ok"), ("close",)])
    rst = fake_server([("read", 1), ("reply", b"ok"), ("reset",)])
    out = lua(run_lua_ok, """
for _, port in ipairs{@FIN@, @RST@} do
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  P(s:connect("127.0.0.1", port))
  P(s:send("q"), s:receive(2))
  ngx.sleep(0.2)
  P(s:setkeepalive())
  P(s:close())
end
""", {"FIN": fin.port, "RST": rst.port})
    assert out == ["1", "1|ok", "nil|closed", "1"] * 2


@pytest.mark.parametrize("end", ["close", "reset"])
def test_close_right_after_the_reply_never_reaches_a_reuse(run_lua_ok, fake_server, end):
    # The server closes as soon as it has replied: the FIN (RST) comes with the reply or just
    # after it, maybe before the loop has seen it. setkeepalive may take the connection (as
    # nginx does when no event is pending) but the pool drops it when the event comes: a
    # later connect never gets it (reused 0 every time, and the request works).
    srv = fake_server([("read", 1), ("reply", b"ok"), (end,)])
    out = lua(run_lua_ok, """
local fails = {}
for i = 1, 20 do
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  assert(s:connect("127.0.0.1", @PORT@))
  local reused = s:getreusedtimes()
  local _, err = s:send("q")
  local data, err2 = s:receive(2)
  if reused ~= 0 or data ~= "ok" then fails[#fails + 1] = i .. ":" .. tostring(reused) .. ":" .. tostring(err or err2) end
  local ok = s:setkeepalive()
  if not ok then s:close() end
  ngx.sleep(0.02)
end
P(#fails, table.concat(fails, " "))
""", {"PORT": srv.port})
    assert out == ["0|"]
    assert srv.wait_connections(20, 5) and srv.connections == 20, srv.connections


def test_reused_connection_keeps_working(run_lua_ok, echo_server):
    # a connection goes through the pool 200 times (its events stay registered): every
    # round trip on it works, and the server saw one connection
    out = lua(run_lua_ok, """
local bad = 0
for i = 1, 200 do
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  assert(s:connect("127.0.0.1", @PORT@))
  if s:getreusedtimes() ~= i - 1 then bad = bad + 1 end
  local msg = "m" .. i .. string.char(10)
  s:send(msg)
  if s:receive() ~= "m" .. i then bad = bad + 1 end
  assert(s:setkeepalive())
end
P(bad)
""", {"PORT": echo_server.port})
    assert out == ["0"]
    assert echo_server.connections == 1


def test_setkeepalive_after_reading_eof(run_lua_ok, fake_server):
    srv = fake_server([("read", 1), ("reply", b"ok"), ("close",)])
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(2000)
P(s:connect("127.0.0.1", @PORT@))
P(s:send("q"), s:receive(2), s:receive(1))
P(s:setkeepalive())
P(s:close())
""", {"PORT": srv.port})
    assert out == ["1", "1|ok|nil|closed|", "nil|closed", "1"]


def test_setkeepalive_after_a_read_timeout(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@))
P(s:send("z"), s:receive(1))
s:settimeout(100)
P(s:receive(1))
P(s:setkeepalive())
s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@), s:getreusedtimes())
P(s:send("y"), s:receive(1))
""", {"PORT": echo_server.port})
    assert out == ["1", "1|z", "nil|timeout|", "1", "1|1", "1|y"]
    assert echo_server.wait_connections(1, 5) and echo_server.connections == 1, echo_server.connections


def test_setkeepalive_on_closed_sockets(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:setkeepalive())
P(s:connect("127.0.0.1", @PORT@))
P(s:setkeepalive())
P(s:setkeepalive())
P(s:send("x"))
P(s:receive())
P(s:close())
""", {"PORT": echo_server.port})
    assert out == ["nil|closed", "1", "1", "nil|closed", "nil|closed", "nil|closed", "nil|closed"]


# ---------------------------------------------------------------------------------------
# argument checks

def test_setkeepalive_argument_checks(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local function fresh(pool)
  local s = ngx.socket.tcp()
  assert(s:connect("127.0.0.1", @PORT@, {pool = pool}))
  return s
end
local s = fresh("x1")
PC(s.setkeepalive, s, 1, 2, 3)
s = fresh("x2")
PC(s.setkeepalive, s, "x")
s = fresh("x3")
PC(s.setkeepalive, s, "100", "2")
s = fresh("x4")
PC(s.setkeepalive, s, nil, nil)
s = fresh("x5")
PC(s.setkeepalive, s, 1.5, 2.5)
s = fresh("x6")
PC(s.setkeepalive, s, nil, "x")
""", {"PORT": echo_server.port})
    assert out == ["err|expecting 1 to 3 arguments (including the object), but got 4",
                   "err|bad argument #2 to '?' (number expected, got string)",
                   "ok|1", "ok|1", "ok|1",
                   "err|bad argument #3 to '?' (number expected, got string)"]


def test_setkeepalive_bad_values(run_lua_ok, echo_server):
    # a negative timeout is not an error; a pool size <= 0 is an argument error when the
    # pool is created (an existing pool keeps its size and ignores the argument)
    out = lua(run_lua_ok, """
local function fresh(pool)
  local s = ngx.socket.tcp()
  assert(s:connect("127.0.0.1", @PORT@, {pool = pool}))
  return s
end
local s = fresh("y1")
PC(s.setkeepalive, s, -1)
s = fresh("y2")
PC(s.setkeepalive, s, 0, 0)
s = fresh("y3")
PC(s.setkeepalive, s, 0, -1)
s = fresh("y4")
PC(s.setkeepalive, s, 0)
s = fresh("y4")
P(s:getreusedtimes())
PC(s.setkeepalive, s, 0, 0)
""", {"PORT": echo_server.port})
    assert out == ["ok|1",
                   "err|bad argument #3 to '?' (bad \"pool_size\" option value: 0)",
                   "err|bad argument #3 to '?' (bad \"pool_size\" option value: -1)",
                   "ok|1", "1", "ok|1"]


def test_connect_pool_options_accepted(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local function try(...) local s = ngx.socket.tcp() PC(s.connect, s, ...) end
try("127.0.0.1", @PORT@, {pool = 5})
try("127.0.0.1", @PORT@, {backlog = 0})
try("127.0.0.1", @PORT@, {pool_size = 3, backlog = 2})
try("127.0.0.1", @PORT@, nil)
""", {"PORT": echo_server.port})
    assert out == ["ok|1"] * 4


def test_connect_pool_option_errors(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local function try(...) local s = ngx.socket.tcp() PC(s.connect, s, ...) end
try("127.0.0.1", @PORT@, {pool_size = 0})
try("127.0.0.1", @PORT@, {pool_size = -1})
try("127.0.0.1", @PORT@, {pool_size = "x"})
try("127.0.0.1", @PORT@, {backlog = -1})
try("127.0.0.1", @PORT@, {pool = {}})
try("127.0.0.1", @PORT@, 5)
""", {"PORT": echo_server.port})
    assert out == [
        "err|bad argument #4 to '?' (bad \"pool_size\" option value: 0)",
        "err|bad argument #4 to '?' (bad \"pool_size\" option value: -1)",
        "err|bad argument #4 to '?' (bad \"pool_size\" option type: string)",
        "err|bad argument #4 to '?' (bad \"backlog\" option value: -1)",
        "err|bad argument #4 to '?' (bad \"pool\" option type: table)",
        "ok|1",                                  # a non-table 4th argument is ignored
    ]


# ---------------------------------------------------------------------------------------
# backlog

BACKLOG_PRELUDE = """
local PORT = @PORT@
local opts = {pool = "bl", pool_size = 1, backlog = 1}
local results = {}
local function waiter(name)
  local s = ngx.socket.tcp()
  s:settimeout(2000)
  local ok, err = s:connect("127.0.0.1", PORT, opts)
  results[#results + 1] = table.concat({name, tostring(ok), tostring(err), tostring(ok and s:getreusedtimes())}, "|")
  if ok then
    results[#results + 1] = name .. "|" .. tostring(s:send(name)) .. "|" .. tostring(s:receive(#name))
    s:close()
  end
end
"""


def test_backlog_waiters(run_lua_ok, echo_server):
    out = lua(run_lua_ok, BACKLOG_PRELUDE + """
local holder = ngx.socket.tcp()
P("holder", holder:connect("127.0.0.1", PORT, opts))
local t2 = ngx.thread.spawn(waiter, "second")
local t3 = ngx.thread.spawn(waiter, "third")
ngx.sleep(0.1)
P("release", holder:setkeepalive())
ngx.thread.wait(t2)
ngx.thread.wait(t3)
table.sort(results)
for _, r in ipairs(results) do P(r) end
""", {"PORT": echo_server.port})
    # the third connect finds the one backlog slot taken; the second gets the connection
    # the holder put back
    assert out == ["holder|1", "release|1", "second|1|nil|1", "second|6|second",
                   "third|nil|too many waiting connect operations|nil"]
    assert echo_server.wait_connections(1, 5) and echo_server.connections == 1, echo_server.connections


def test_backlog_waiter_resumes_after_setkeepalive_returns(run_lua_ok, echo_server):
    # the waiting thread runs after the thread that put the connection back has yielded
    out = lua(run_lua_ok, BACKLOG_PRELUDE + """
local holder = ngx.socket.tcp()
P("holder", holder:connect("127.0.0.1", PORT, opts))
local t2 = ngx.thread.spawn(function()
  local s = ngx.socket.tcp()
  local ok, err = s:connect("127.0.0.1", PORT, opts)
  P("second", ok, err, s:getreusedtimes())
end)
ngx.sleep(0.1)
P("release", holder:setkeepalive())
P("after release")
ngx.thread.wait(t2)
""", {"PORT": echo_server.port})
    assert out == ["holder|1", "release|1", "after release", "second|1|nil|1"]


def test_backlog_waiter_gets_a_new_connection_after_close(run_lua_ok, echo_server):
    out = lua(run_lua_ok, BACKLOG_PRELUDE + """
local holder = ngx.socket.tcp()
P("holder", holder:connect("127.0.0.1", PORT, opts))
local t = ngx.thread.spawn(waiter, "fourth")
ngx.sleep(0.1)
P("close", holder:close())
ngx.thread.wait(t)
for _, r in ipairs(results) do P(r) end
""", {"PORT": echo_server.port})
    assert out == ["holder|1", "close|1", "fourth|1|nil|0", "fourth|6|fourth"]
    assert echo_server.wait_connections(2, 5) and echo_server.connections == 2, echo_server.connections


def test_backlog_wait_times_out(run_lua_ok, echo_server):
    out = lua(run_lua_ok, BACKLOG_PRELUDE + """
local holder = ngx.socket.tcp()
P("holder", holder:connect("127.0.0.1", PORT, opts))
local s = ngx.socket.tcp()
s:settimeout(200)
local t0 = ngx.now()
P("waiting", s:connect("127.0.0.1", PORT, opts))
local dt = elapsed(t0)
P(dt >= 0.15, dt < 1)
-- the timed-out waiter left the queue: one more may wait
local t = ngx.thread.spawn(waiter, "next")
ngx.sleep(0.05)
P(holder:setkeepalive())
ngx.thread.wait(t)
for _, r in ipairs(results) do P(r) end
""", {"PORT": echo_server.port})
    assert out == ["holder|1", "waiting|nil|timeout", "true|true", "1", "next|1|nil|1",
                   "next|4|next"]
    assert echo_server.wait_connections(1, 5) and echo_server.connections == 1, echo_server.connections


def test_backlog_zero_and_no_backlog(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local o0 = {pool = "bl0", pool_size = 1, backlog = 0}
local a, b = ngx.socket.tcp(), ngx.socket.tcp()
P("a", a:connect("127.0.0.1", @PORT@, o0))
P("b", b:connect("127.0.0.1", @PORT@, o0))
-- without backlog, pool_size does not limit the number of connections
local o1 = {pool = "nobl", pool_size = 1}
local x, y = ngx.socket.tcp(), ngx.socket.tcp()
P("x", x:connect("127.0.0.1", @PORT@, o1), "y", y:connect("127.0.0.1", @PORT@, o1))
""", {"PORT": echo_server.port})
    assert out == ["a|1", "b|nil|too many waiting connect operations", "x|1|y|1"]
    assert echo_server.wait_connections(3, 5) and echo_server.connections == 3, echo_server.connections
