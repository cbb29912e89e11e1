"""The leak check at exit (COSOCKET_CHECK_LEAKS=1, runtime/fd_census.h), which every test of
the suite runs under (conftest): a descriptor the runtime did not have when it started and
still has once its Lua state, pools and resolver are closed is reported on stderr, with what
it is. These tests run cosocket directly, since the harness would fail on the report."""
import os
import re
import subprocess


def run(cosocket_bin, code, check="1"):
    env = dict(os.environ, COSOCKET_CHECK_LEAKS=check)
    return subprocess.run([cosocket_bin, "-e", code], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, env=env)


LEAK_A_PIPE = r'''
local ffi = require "ffi"
ffi.cdef "int pipe(int fds[2]);"
local fds = ffi.new("int[2]")
assert(ffi.C.pipe(fds) == 0)
print(fds[0], fds[1])
'''


def test_a_descriptor_left_open_is_reported_with_what_it_is(cosocket_bin):
    # a raw pipe opened through the FFI: nothing in the runtime owns it, so nothing closes it
    r = run(cosocket_bin, LEAK_A_PIPE)
    assert r.returncode == 0, r.stderr
    a, b = r.stdout.split()
    m = re.search(r"^cosocket: leak check: 2 descriptors left open at exit: (.*)$", r.stderr, re.M)
    assert m, r.stderr
    assert re.search(rf"\b{a} \(pipe:\[\d+\]\)", m.group(1)) and re.search(rf"\b{b} \(pipe:\[\d+\]\)", m.group(1)), m.group(1)


def test_sockets_pools_timers_and_threads_leave_nothing_open(cosocket_bin):
    # what the runtime owns is closed by exit: a socket kept in a global, one in the pool,
    # a listening server, a light thread parked on a socket, a pending timer, at an
    # os.exit. The one raw pipe shows the check ran: it is all that is reported.
    r = run(cosocket_bin, LEAK_A_PIPE + r'''
local srv = assert(require("cosocket").listen{ host = "127.0.0.1", port = 0, handler = function(s)
  s:settimeout(10000) s:receive()
end })
local port = srv:port()
_G.kept = ngx.socket.tcp()
assert(_G.kept:connect("127.0.0.1", port))
local p = ngx.socket.tcp()
assert(p:connect("127.0.0.1", port))
assert(p:setkeepalive())
local u = ngx.socket.udp()
assert(u:setpeername("127.0.0.1", 9))
ngx.thread.spawn(function()
  local s = ngx.socket.tcp()
  assert(s:connect("127.0.0.1", port))
  s:receive()
end)
ngx.timer.at(100, function() end)
ngx.sleep(0.05)
print("exiting")
os.exit(0)
''')
    assert r.returncode == 0, r.stderr
    a, b, word = r.stdout.split()
    assert word == "exiting"
    reports = re.findall(r"^cosocket: leak check: .*$", r.stderr, re.M)
    assert len(reports) == 1, r.stderr
    assert re.fullmatch(rf"cosocket: leak check: 2 descriptors left open at exit: "
                        rf"{a} \(pipe:\[\d+\]\) {b} \(pipe:\[\d+\]\)", reports[0]), reports[0]


def test_off_unless_asked(cosocket_bin):
    r = run(cosocket_bin, LEAK_A_PIPE, check="0")
    assert r.returncode == 0 and "leak check" not in r.stderr, r.stderr
