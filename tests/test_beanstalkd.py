"""resty.beanstalkd (issue 10, the worked port of drivers/PORTING.md): every command and reply
against the real beanstalkd (session fixture `beanstalkd`, TCP and a unix socket; private
servers for drain mode and a restart), the pool rules, and faults from small fake servers
(truncated reply, stall, absurd length, garbage). Every test works in tubes of its own, so
the shared server needs no cleaning between tests.
"""
import os
import signal
import subprocess
import time

import pytest

import services
from helpers.socket_lua import Interactive, lua

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["-I", os.path.join(REPO, "beanstalkd")]

BS = r'''
local beanstalkd = require "resty.beanstalkd"
local function C(port, opts, new_opts)
  local b = assert(beanstalkd:new(new_opts))
  b:set_timeout(3000)
  local ok, err = b:connect("127.0.0.1", port or @PORT@, opts)
  assert(ok, err)
  return b
end
-- a connection that uses and watches only tube t (a pool of its own)
local function T(t, port)
  return C(port, { use = t, watch = { t } })
end
local function keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return table.concat(ks, ",")
end
'''


def bs(run_lua_ok, code, port, subst=None, **kw):
    s = {"PORT": port}
    s.update(subst or {})
    return lua(run_lua_ok, BS + code, s, flags=FLAGS, **kw)


class Private:
    """A beanstalkd of our own (drain mode, restarts)."""

    def __init__(self, port=None):
        self.port = port or services.free_port()
        self.proc = subprocess.Popen(["beanstalkd", "-l", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        services.wait_until(lambda: services.beanstalkd_using("127.0.0.1", self.port), 10,
                            "private beanstalkd", self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private():
    started = []

    def make(port=None):
        p = Private(port)
        started.append(p)
        return p
    yield make
    for p in started:
        p.stop()


# --------------------------------------------------------------------------
# the real server

def test_put_reserve_delete_binary_bodies(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = T("bin")
local body = "a\r\nb\0c\r\n\r\n" .. string.rep("\255", 1000) .. "\r\n"
local id = assert(b:put(body))
local rid, data = b:reserve(0)
P(rid == id, data == body, #data)
P(b:delete(id))
P(b:delete(id))
P(b:put(""))
local _, empty = b:reserve(0)
Q(empty)
P(b:put(12345), type(select(2, b:reserve(0))))
P(b:put(string.rep("x", 65535)) ~= nil, b:put(string.rep("x", 65536)))
P(b:put("after too big") ~= nil)        -- the server skipped the body: still in sync
P(b:list_tube_used())
''', beanstalkd.port)
    assert out[0] == "true|true|1012"
    assert out[1:3] == ["true", "nil|NOT_FOUND"]
    assert out[4] == '""'
    assert out[5].endswith("|string")
    assert out[6:] == ["true|nil|JOB_TOO_BIG", "true", "bin"]


def test_reserve_timeout_and_deadline_soon(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = T("rto")
P(b:reserve(0))
local t0 = ngx.now()
P(b:reserve(1))
P(elapsed(t0) >= 0.9)
-- ttr 1: the whole time to run is the last-second safety margin
local id = assert(b:put("job", 0, 0, 1))
P(b:reserve(0) == id)
P(b:reserve(5))                          -- answered at once, not after 5 s
P(elapsed(t0) < 3.5)
-- the ttr passes: the server releases the job, and a reserve gets it again
local id2, e2
for _ = 1, 10 do
  ngx.sleep(0.5)
  id2, e2 = b:reserve(1)
  if id2 then break end
end
P(id2 == id, e2)
P(b:delete(id))
P(b:set_keepalive())
''', beanstalkd.port)
    assert out == ["nil|TIMED_OUT", "nil|TIMED_OUT", "true", "true",
                   "nil|DEADLINE_SOON", "true", "true|job", "true", "1"]


def test_release_bury_kick_touch_peek(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = T("rbk")
local id = assert(b:put("one", 5))
P(b:release(id))                          -- not reserved
P(assert(b:reserve(0)) == id, b:touch(id))
P(b:release(id, 7, 0))
P(b:stats_job(id).pri, b:stats_job(id).state)
P(b:reserve(0) == id, b:bury(id, 9))
local pid, pdata = b:peek_buried()
P(pid == id, pdata, b:stats_job(id).state, b:stats_job(id).pri)
P(b:touch(id), b:bury(id))                -- neither works on a job not reserved
P(b:kick(10))
P(b:stats_job(id).state)
P(b:reserve(0) == id, b:bury(id))
P(b:kick_job(id), b:kick_job(id), b:kick_job(99999999))
local d = assert(b:put("later", 1, 100))
local did, ddata = b:peek_delayed()
P(did == d, ddata, select(2, b:peek(d)), b:peek(99999999))
P(b:kick(1), b:stats_job(d).state)
local rid, rdata = b:peek_ready()         -- the most urgent: pri 1 before pri 9
P(rid == d, rdata)
P(b:delete(id), b:delete(d), b:peek_ready())
P(b:peek_delayed())
P(b:peek_buried())
P(b:set_keepalive())
''', beanstalkd.port)
    assert out == [
        "nil|NOT_FOUND", "true|true", "true", "7|ready", "true|true",
        "true|one|buried|9", "nil|nil|NOT_FOUND", "1", "ready", "true|true",
        "true|nil|nil|NOT_FOUND", "true|later|later|nil|NOT_FOUND",
        "1|ready", "true|later", "true|true|nil|NOT_FOUND", "nil|NOT_FOUND", "nil|NOT_FOUND", "1"]


def test_tubes_stats_and_lists(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = C()
P(b:list_tube_used(), b:use("st-a"), b:list_tube_used())
P(b:watch("st-a"), b:watch("st-b"), b:watch("st-a"))
local w = b:list_tubes_watched()
table.sort(w)
P(#w, table.concat(w, ","))
P(b:ignore("default"), b:ignore("st-b"), b:ignore("st-a"))      -- the last one stays
assert(b:put("x"))
local tubes = b:list_tubes()
local seen = {}
for _, t in ipairs(tubes) do seen[t] = true end
P(seen.default, seen["st-a"])
local s = b:stats()
P(s.version, type(s.pid), s.draining, type(s["current-connections"]), type(s.hostname))
local ts = b:stats_tube("st-a")
P(ts.name, ts["current-jobs-ready"], ts["total-jobs"], ts.pause)
P(b:pause_tube("st-a", 60), b:stats_tube("st-a").pause)
P(b:pause_tube("st-a", 0), b:pause_tube("st-none", 1), b:stats_tube("st-none"))
local id = b:peek_ready()
local js = b:stats_job(id)
P(js.id == id, js.tube, js.state, js.ttr, keys(js))
P(b:stats_job(99999999))
P(b:use("st-a(1);$x+y/z.w_v"), b:list_tube_used())
''', beanstalkd.port)
    assert out[0] == "default|st-a|st-a"
    assert out[1] == "2|3|3"
    assert out[2] == "3|default,st-a,st-b"
    assert out[3] == "2|1|nil|NOT_IGNORED"
    assert out[4] == "true|true"
    assert out[5] == "1.12|number|false|number|string"
    assert out[6] == "st-a|1|1|0"
    assert out[7] == "true|60"
    assert out[8] == "true|nil|nil|NOT_FOUND"
    assert out[9] == ("true|st-a|ready|120|age,buries,delay,file,id,kicks,pri,releases,"
                      "reserves,state,time-left,timeouts,ttr,tube")
    assert out[10] == "nil|NOT_FOUND"
    assert out[11] == "st-a(1);$x+y/z.w_v|st-a(1);$x+y/z.w_v"


def test_bad_arguments_are_refused_before_sending(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = C()
P(b:use("-bad"))
P(b:use(string.rep("t", 201)))
P(b:watch("a b"))
P(b:put({}))
P(b:put("x", -1))
P(b:put("x", 2^32))
P(b:put("x", 1, 1.5))
P(b:delete("12abc"))
P(b:reserve(-1))
P(b:kick("many"))
PC(b.connect, b, 1, 2)
P(b:connect("127.0.0.1", @PORT@, { use = "bad name" }))
P(b:connect("127.0.0.1", @PORT@, { watch = {} }))
local c = C()
P(c:list_tube_used(), c:stats().version)   -- nothing of the above reached the server
''', beanstalkd.port)
    assert out == ['nil|bad tube name: "-bad"',
                   'nil|bad tube name: "' + "t" * 40 + '..."',
                   'nil|bad tube name: "a b"',
                   "nil|bad body type: table",
                   'nil|bad priority: "-1"', 'nil|bad priority: "4294967296"',
                   'nil|bad delay: "1.5"', 'nil|bad job id: "12abc"', 'nil|bad timeout: "-1"',
                   'nil|bad bound: "many"',
                   "err|bad argument #1 host: string expected, got number",
                   'nil|bad tube name: "bad name"',
                   "nil|bad watch list: a non-empty array of tube names expected",
                   "default|1.12"]


def test_unix_socket(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = assert(beanstalkd:new())
b:set_timeout(2000)
P(b:connect("unix:@PATH@"))
P(b:use("ux"), b:watch("ux"))
local id = assert(b:put("over unix\r\n"))
local rid, data = b:reserve(0)
P(rid == id, data == "over unix\r\n", b:delete(id))
P(b:set_keepalive())
local c = assert(beanstalkd:new())
P(c:connect("unix:@PATH@"), c:get_reused_times(), c:list_tube_used())
''', beanstalkd.port, {"PATH": beanstalkd.path})
    assert out == ["1", "ux|2", "true|true|true", "nil|cannot be reused in the current "
                   "connection state: tubes changed after connect (give use/watch to connect "
                   "to pool them)", "1|0|default"]


def test_pool_keeps_the_tubes_and_refuses_dirty_connections(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local opts = { use = "pl-a", watch = { "pl-a", "pl-b" } }
local b = C(nil, opts)
P(b:get_reused_times(), b:list_tube_used())
local w = b:list_tubes_watched() table.sort(w) P(table.concat(w, ","))
local id = assert(b:put("pooled"))
P(b:set_keepalive())
P(b:put("x"))                             -- handed to the pool: not usable any more
b = C(nil, opts)
P(b:get_reused_times(), b:list_tube_used())
P(b:reserve(0) == id)
P(b:set_keepalive())                      -- a reserved job is connection state
P(b:release(id))
P(b:set_keepalive())
b = C(nil, { use = "pl-a", watch = { "pl-b", "pl-a" } })   -- the same tubes, the same pool
P(b:get_reused_times())
P(b:use("pl-c"))
P(b:set_keepalive())
P(b:use("pl-a"), b:set_keepalive())       -- back as the pool promises
b = C()                                   -- no tubes: the default pool, a new connection
P(b:get_reused_times(), b:list_tube_used())
P(b:watch("pl-a"), b:ignore("pl-a"), b:set_keepalive())
b = C()
P(b:get_reused_times())
b = C(nil, opts)
P(b:get_reused_times(), b:reserve(0) == id, b:delete(id), b:set_keepalive())
b = C(nil, { use = "pl-a", pool = "mine" })
P(b:get_reused_times(), b:list_tube_used())
b:close()
P(b:list_tube_used())
''', beanstalkd.port)
    assert out == ["0|pl-a", "pl-a,pl-b", "1", "nil|closed", "1|pl-a", "true",
                   "nil|cannot be reused in the current connection state: 1 reserved job(s)",
                   "true", "1", "2", "pl-c",
                   "nil|cannot be reused in the current connection state: tubes changed "
                   "after connect (give use/watch to connect to pool them)",
                   "pl-a|1", "0|default", "2|1|1", "1", "3|true|true|1", "0|pl-a",
                   "nil|closed"]


def test_two_threads_on_one_object(run_lua_ok, beanstalkd):
    out = bs(run_lua_ok, r'''
local b = T("busy")
local th = ngx.thread.spawn(function() return b:reserve(1) end)
ngx.sleep(0.1)
P(b:put("x"))
P(b:set_keepalive())
P(ngx.thread.wait(th))
''', beanstalkd.port)
    assert out == ["nil|busy: command sent",
                   "nil|cannot be reused in the current connection state: command sent",
                   "true|nil|TIMED_OUT"]


def test_draining_server(run_lua_ok, private):
    srv = private()
    srv.proc.send_signal(signal.SIGUSR1)          # drain mode: no new jobs
    time.sleep(0.2)
    out = bs(run_lua_ok, r'''
local b = C()
P(b:put("x"))
P(b:stats().draining, b:set_keepalive())
''', srv.port)
    assert out == ["nil|DRAINING", "true|1"]


def test_server_restart(cosocket_bin, tmp_path, private):
    """The server restarts on the same port between two commands: the connection in use fails
    and stays failed; the pooled one is not handed out again (the pool saw the close)."""
    srv = private()
    it = Interactive(cosocket_bin, tmp_path, BS + r'''
local b = C()
P(b:put("before") ~= nil, b:set_keepalive())
local c = C()
P(c:put("in use") ~= nil)
checkpoint("restart")
P(c:put("after"))
P(c:put("again"))
local d = C()
P(d:get_reused_times(), d:put("new server"))
''', {"PORT": srv.port}, flags=FLAGS)
    try:
        it.expect("restart")
        srv.stop()
        srv2 = private(srv.port)
        time.sleep(0.1)
        it.resume()
        out = it.finish()
    finally:
        it.kill()
    assert out[:3] == ["true|1", "true", "restart"]
    assert out[3] in ("nil|failed to read reply: closed",
                      "nil|failed to send: broken pipe",
                      "nil|failed to read reply: connection reset by peer"), out
    assert out[4] == "nil|connection closed after error: " + out[3][4:]
    assert out[5] == "0|1"
    assert srv2.proc.poll() is None


# --------------------------------------------------------------------------
# faults (fake servers)

def test_truncated_body_closes_and_stays_closed(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"RESERVED 7 10\r\nabc"), ("close",)])
    out = bs(run_lua_ok, r'''
local b = C()
P(b:reserve())
P(b:stats())
P(b:set_keepalive())
P(b.sock:getfd())
''', srv.port)
    assert out == ["nil|failed to read job body: closed",
                   "nil|connection closed after error: failed to read job body: closed",
                   "nil|connection closed after error: failed to read job body: closed",
                   "nil|closed"]


def test_stall_times_out_and_closes(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("stall",)])
    t0 = time.monotonic()
    out = bs(run_lua_ok, r'''
local b = C()
b:set_timeout(200)
local t0 = ngx.now()
P(b:reserve(0))
P(elapsed(t0) < 1, b.sock:getfd())
P(b:put("x"))
''', srv.port)
    assert out == ["nil|failed to read reply: timeout", "true|nil|closed",
                   "nil|connection closed after error: failed to read reply: timeout"]
    assert time.monotonic() - t0 < 10
    assert srv.received[0] == b"reserve-with-timeout 0\r\n"


def test_absurd_length_is_refused_without_reading(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"RESERVED 1 99999999999\r\nabc"),
                       ("stall",)])
    srv2 = fake_server([("read_until", b"\r\n"), ("reply", b"OK 2000\r\n"), ("stall",)])
    out = bs(run_lua_ok, r'''
local t0 = ngx.now()
local b = C()
P(b:reserve())
P(b.sock:getfd())
local c = C(@PORT2@, nil, { max_body_size = 1000 })
P(c:stats())
P(elapsed(t0) < 1, collectgarbage("count") < 10000)
''', srv.port, {"PORT2": srv2.port})
    assert out == ['nil|protocol error: bad body length: "RESERVED 1 99999999999"',
                   "nil|closed",
                   'nil|protocol error: bad body length: "OK 2000"', "true|true"]


def test_garbage_and_overlong_lines(run_lua_ok, fake_server):
    garbage = fake_server([("read_until", b"\r\n"), ("reply", b"HELLO there\r\n"), ("stall",)])
    endless = fake_server([("read_until", b"\r\n"), ("reply", b"X" * 5000), ("stall",)])
    badcrlf = fake_server([("read_until", b"\r\n"), ("reply", b"FOUND 1 3\r\nabcde"),
                           ("stall",)])
    out = bs(run_lua_ok, r'''
local b = C(@G@)
P(b:peek_ready())
P(b:peek_ready())
b = C(@E@)
P(b:peek_ready())
b = C(@B@)
P(b:peek_ready())
''', garbage.port, {"G": garbage.port, "E": endless.port, "B": badcrlf.port})
    assert out == ['nil|protocol error: unexpected reply: "HELLO there"',
                   'nil|connection closed after error: protocol error: unexpected reply: '
                   '"HELLO there"',
                   "nil|protocol error: reply line too long",
                   "nil|protocol error: no CRLF after the job body"]


def test_server_words_from_a_fake_server(run_lua_ok, fake_server):
    # replies the real server gives only when it is out of memory or sees a broken client
    srv = fake_server([("read_until", b"\r\n"), ("read_until", b"\r\n"),
                       ("reply", b"BURIED 42\r\n"),
                       ("read_until", b"\r\n"), ("read_until", b"\r\n"),
                       ("reply", b"EXPECTED_CRLF\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"OUT_OF_MEMORY\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"OK 6\r\nhello!\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"USING default\r\n")])
    out = bs(run_lua_ok, r'''
local b = C()
P(b:put("a"))
P(b:put("b"))
P(b:reserve())
P(b:stats())
P(b:list_tube_used())
''', srv.port)
    assert out == ["nil|BURIED|42", "nil|EXPECTED_CRLF", "nil|OUT_OF_MEMORY",
                   'nil|protocol error: bad YAML: "hello!"', "default"]


def test_installed_tree_has_the_driver_and_the_helpers(build_dir_path, tmp_path):
    """cmake --install puts beanstalkd/ and drivers/ beside the other drivers: the installed
    binary finds resty.beanstalkd with no -I flag."""
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", build_dir_path, "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lua_dir = prefix / "share" / "cosocket" / "lua" / "resty"
    for rel in ("beanstalkd.lua", "cosocket/driver.lua", "cosocket/bytes.lua"):
        assert (lua_dir / rel).is_file(), rel
    r = subprocess.run([str(prefix / "bin" / "cosocket"), "-e",
                        'print(package.searchpath("resty.beanstalkd", package.path)) '
                        'print(require("resty.beanstalkd")._VERSION)'],
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    found, version = r.stdout.splitlines()
    assert os.path.realpath(found) == os.path.realpath(lua_dir / "beanstalkd.lua")
    assert version == "0.1.0"
