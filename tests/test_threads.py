"""ngx.thread.spawn / wait / kill: the light-thread rules of ngx_lua.

Expected values were checked against OpenResty 0.10.23 (nginx + ngx_lua, content_by_lua)
unless a comment says the behaviour is cosocket's own (process life time, exit status).
"""
import re


def lines(out):
    return out.splitlines()


def test_spawn_runs_child_first_until_it_yields(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local function f(x)
  ngx.say("child start ", x)
  ngx.sleep(0.01)
  ngx.say("child end")
  return x, "r2"
end
local t = ngx.thread.spawn(f, 1)
ngx.say("after spawn ", type(t))
ngx.say(ngx.thread.wait(t))
''')
    assert lines(out) == ["child start 1", "after spawn thread", "child end", "true1r2"]


def test_wait_returns_true_and_all_results(run_lua_ok):
    # checked against OpenResty 0.10.23: nil holes are kept, a thread returning nothing gives 1 value
    out = run_lua_ok(r'''
local m = ngx.thread.spawn(function() return nil, 2, nil end)
ngx.say(select("#", ngx.thread.wait(m)))
local z = ngx.thread.spawn(function() end)
ngx.say(select("#", ngx.thread.wait(z)))
local r = ngx.thread.spawn(function() ngx.sleep(0.001) return "a", 2, true end)
local ok, a, b, c = ngx.thread.wait(r)
ngx.say(tostring(ok), " ", a, " ", b, " ", tostring(c))
''')
    assert lines(out) == ["4", "1", "true a 2 true"]


def test_wait_twice_and_kill_after_wait(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local t = ngx.thread.spawn(function() ngx.sleep(0.001) return 1 end)
ngx.say(ngx.thread.wait(t))
ngx.say(ngx.thread.wait(t))
ngx.say(ngx.thread.kill(t))
''')
    assert lines(out) == ["true1", "nilalready waited or killed", "nilalready waited or killed"]


def test_kill_rules(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
-- a thread that already finished (a zombie) cannot be killed, and is gone afterwards
local t2 = ngx.thread.spawn(function() return 5 end)
ngx.say(ngx.thread.kill(t2))
ngx.say(ngx.thread.wait(t2))
-- a running thread is killed once
local t3 = ngx.thread.spawn(function() ngx.sleep(1) end)
ngx.say(ngx.thread.kill(t3))
ngx.say(ngx.thread.kill(t3))
ngx.say(ngx.thread.wait(t3))
-- not a user thread
ngx.say(ngx.thread.kill(coroutine.create(function() end)))
ngx.say(ngx.thread.kill(coroutine.running()))
ngx.say(pcall(ngx.thread.kill, 1))
''')
    assert lines(out) == [
        "nilalready terminated",
        "nilalready waited or killed",
        "1",
        "nilalready waited or killed",
        "nilalready waited or killed",
        "nilnot user thread",
        "nilnot user thread",
        "falsebad argument #1 to '?' (lua thread expected)",
    ]


def test_only_the_parent_may_wait_or_kill(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local inner
local outer = ngx.thread.spawn(function()
  inner = ngx.thread.spawn(function() ngx.sleep(0.05) return "inner" end)
  ngx.sleep(0.01)
  return "outer"
end)
ngx.say(ngx.thread.wait(outer))
local ok, err = pcall(ngx.thread.wait, inner)
ngx.say("wait non-child: ", ok, " ", err)
ngx.say("kill non-child: ", ngx.thread.kill(inner))
local a, b
a = ngx.thread.spawn(function() ngx.sleep(0.02) end)
b = ngx.thread.spawn(function()
  ngx.say("b kill a: ", ngx.thread.kill(a))
  local ok3, e3 = pcall(ngx.thread.wait, a)
  ngx.say("b wait a: ", ok3, " ", e3)
end)
ngx.thread.wait(a)
ngx.thread.wait(b)
''')
    assert lines(out) == [
        "trueouter",
        "wait non-child: false only the parent coroutine can wait on the thread",
        "kill non-child: nilkiller not parent",
        "b kill a: nilkiller not parent",
        "b wait a: false only the parent coroutine can wait on the thread",
    ]


def test_bad_arguments(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(pcall(ngx.thread.wait, coroutine.create(function() end)))
ngx.say(pcall(ngx.thread.wait))
ngx.say(pcall(ngx.thread.wait, 1))
''')
    assert lines(out) == [
        "falseattempt to wait on a coroutine that is not a user thread",
        "falseat least one coroutine should be specified",
        "falsebad argument #1 to '?' (lua thread expected)",
    ]


def test_spawn_non_function_error_text(run_lua_ok):
    # checked against OpenResty 0.10.23: "bad argument #1 to '?' (Lua function expected)"
    out = run_lua_ok('ngx.say(pcall(ngx.thread.spawn, 1))')
    assert lines(out) == ["falsebad argument #1 to '?' (Lua function expected)"]


def test_thread_error_via_wait(run_lua):
    # checked against OpenResty 0.10.23: wait gives false first and the error message (with
    # its position when error() had a level) LAST -- OpenResty also returns what else was on
    # the dead coroutine's stack in between (error()'s own argument), so only the first and
    # the last values are asserted. Logged as "lua user thread aborted: runtime error: ...",
    # and the process carries on.
    r = run_lua(r'''
local function show(...)
  local n = select("#", ...)
  ngx.say(tostring((...)), " | ", tostring((select(n, ...))))
end
local t4 = ngx.thread.spawn(function() error("boom") end)
show(ngx.thread.wait(t4))
local t6 = ngx.thread.spawn(function() error("boom2", 0) end)
show(ngx.thread.wait(t6))
local t7 = ngx.thread.spawn(function() ngx.sleep(0.001) local x = nil; return x.y end)
show(ngx.thread.wait(t7))
local t8 = ngx.thread.spawn(function() ngx.sleep(0.001) error("after sleep") end)
ngx.sleep(0.01)
show(ngx.thread.wait(t8))
ngx.say("still alive")
''')
    assert r.rc == 0, r.describe()
    out = lines(r.out)
    assert re.fullmatch(r"false \| \S*script\d+\.lua:6: boom", out[0]), out
    assert out[1] == "false | boom2"
    assert re.fullmatch(r"false \| \S*\.lua:10: attempt to index local 'x' \(a nil value\)", out[2]), out
    assert re.fullmatch(r"false \| \S*\.lua:12: after sleep", out[3]), out
    assert out[4] == "still alive"
    assert r.err.count("lua user thread aborted: runtime error:") == 4, r.err
    assert "boom2" in r.err


def test_thread_error_object_is_passed_through(run_lua_ok):
    # checked against OpenResty 0.10.23: wait gives `false, <the table given to error()>`
    out = run_lua_ok(r'''
local t = ngx.thread.spawn(function() error({code = 7}) end)
local ok, e = ngx.thread.wait(t)
ngx.say(ok, " ", type(e), " ", type(e) == "table" and e.code or "")
''')
    assert lines(out) == ["false table 7"]


def test_thread_error_does_not_kill_process(run_lua):
    # checked against OpenResty 0.10.23 (the error is logged, the rest carries on); exit 0 is cosocket's
    r = run_lua(r'''
ngx.thread.spawn(function() ngx.sleep(0.01) error("thread boom") end)
ngx.thread.spawn(function() ngx.sleep(0.03) ngx.say("other thread done") end)
ngx.say("main returns")
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["main returns", "other thread done"]
    assert re.search(r"\[error\] .*lua user thread aborted: runtime error: \S+\.lua:2: thread boom", r.err), r.err
    assert "stack traceback" in r.err


def test_sleep_zero_yields_to_other_threads(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local log = {}
local function L(s) log[#log+1] = s end
local t1 = ngx.thread.spawn(function() L("a1") ngx.sleep(0) L("a2") ngx.sleep(0) L("a3") end)
local t2 = ngx.thread.spawn(function() L("b1") ngx.sleep(0) L("b2") ngx.sleep(0) L("b3") end)
L("main1")
ngx.sleep(0)
L("main2")
ngx.thread.wait(t1)
ngx.thread.wait(t2)
ngx.say(table.concat(log, " "))
''')
    assert lines(out) == ["a1 b1 main1 a2 b2 main2 a3 b3"]


def test_sleep_argument_errors(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(pcall(ngx.sleep, -1))
ngx.say(pcall(ngx.sleep, -0.5))
ngx.say(pcall(ngx.sleep))
ngx.say(pcall(ngx.sleep, "x"))
ngx.say(pcall(ngx.sleep, "0.001"))
ngx.say(pcall(ngx.sleep, 0.001, 2))
''')
    assert lines(out) == [
        'falseinvalid sleep duration "-1000"',
        'falseinvalid sleep duration "-500"',
        "falseattempt to pass 0 arguments, but accepted 1",
        "falsebad argument #1 to '?' (number expected, got string)",
        "true",
        "falseattempt to pass 2 arguments, but accepted 1",
    ]


def test_wait_on_several_returns_the_first_to_finish(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local s = ngx.thread.spawn(function() ngx.sleep(0.05) return "slow" end)
local f = ngx.thread.spawn(function() ngx.sleep(0.01) return "fast" end)
ngx.say(ngx.thread.wait(s, f))
-- an already finished (zombie) thread among them is returned at once
local d = ngx.thread.spawn(function() return "done" end)
local s2 = ngx.thread.spawn(function() ngx.sleep(0.01) return "s2" end)
ngx.say(ngx.thread.wait(s2, d))
ngx.say(ngx.thread.wait(s2))
ngx.say(ngx.thread.wait(s))
''')
    assert lines(out) == ["truefast", "truedone", "trues2", "trueslow"]


def test_wait_with_an_already_waited_thread_last(run_lua_ok):
    # checked against OpenResty 0.10.23: ngx.thread.wait(alive, waited) returns
    # nil, "already waited or killed" at once when the LAST argument was already waited for
    # (a dead thread that is not last is skipped)
    out = run_lua_ok(r'''
local s = ngx.thread.spawn(function() ngx.sleep(0.05) return "slow" end)
local f = ngx.thread.spawn(function() ngx.sleep(0.01) return "fast" end)
ngx.say(ngx.thread.wait(s, f))
ngx.say(ngx.thread.wait(s, f))
ngx.say(ngx.thread.wait(f, s))
''')
    assert lines(out) == ["truefast", "nilalready waited or killed", "trueslow"]


def test_coroutine_status_of_thread_objects(run_lua_ok):
    # checked against OpenResty 0.10.23: a sleeping light thread reports "running", a finished
    # one that nobody waited for "zombie", a waited one "dead"
    out = run_lua_ok(r'''
local st = ngx.thread.spawn(function() ngx.sleep(0.01) end)
ngx.say("sleeping: ", coroutine.status(st))
local st2 = ngx.thread.spawn(function() return 1 end)
ngx.say("finished: ", coroutine.status(st2))
ngx.thread.wait(st)
ngx.say("waited: ", coroutine.status(st))
ngx.say("self: ", coroutine.status(coroutine.running()))
''')
    assert lines(out) == ["sleeping: running", "finished: zombie", "waited: dead", "self: running"]


def test_coroutine_status_dead_after_wait_and_kill(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local a = ngx.thread.spawn(function() ngx.sleep(0.01) end)
local b = ngx.thread.spawn(function() ngx.sleep(1) end)
ngx.thread.wait(a)
ngx.thread.kill(b)
ngx.say(coroutine.status(a), " ", coroutine.status(b))
''')
    assert lines(out) == ["dead dead"]


def test_parent_finishing_leaves_children_running(run_lua):
    # checked against OpenResty 0.10.23 (the request waits for its light threads);
    # the process ends when they are done
    r = run_lua(r'''
ngx.thread.spawn(function()
  ngx.thread.spawn(function() ngx.sleep(0.05) ngx.say("grandchild done") end)
  ngx.say("child returns")
end)
ngx.thread.spawn(function() ngx.sleep(0.08) ngx.say("child done") end)
ngx.say("main returns")
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["child returns", "main returns", "grandchild done", "child done"]
    assert r.duration >= 0.08


def test_killed_thread_sleep_is_cancelled(run_lua):
    # checked against OpenResty 0.10.23
    r = run_lua(r'''
local k = ngx.thread.spawn(function() ngx.sleep(0.03) ngx.say("killed thread woke") end)
ngx.say("kill: ", ngx.thread.kill(k))
ngx.sleep(0.06)
ngx.say("main done")
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["kill: 1", "main done"]


def test_killed_thread_socket_op_is_cancelled(run_lua, echo_server):
    # a thread blocked in receive() (the echo server never answers an empty send) is
    # killed: no output from it, and the process does not wait for the 60 s read timeout
    r = run_lua(r'''
local port = tonumber(arg[1])
local t = ngx.thread.spawn(function()
  local sock = ngx.socket.tcp()
  assert(sock:connect("127.0.0.1", port))
  ngx.say("connected")
  local data, err = sock:receive(5)
  ngx.say("receive returned ", tostring(data), " ", tostring(err))
end)
ngx.sleep(0.05)
ngx.say("kill: ", ngx.thread.kill(t))
ngx.sleep(0.05)
ngx.say("main done")
''', echo_server.port, timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["connected", "kill: 1", "main done"]
    assert r.duration < 5


def test_thousand_threads_sleeping_concurrently(run_lua):
    r = run_lua(r'''
local ths = {}
local done = 0
local t0 = ngx.now()
for i = 1, 1000 do
  ths[i] = ngx.thread.spawn(function() ngx.sleep(0.01) done = done + 1 return i end)
end
local sum = 0
for i = 1, 1000 do
  local ok, v = ngx.thread.wait(ths[i])
  assert(ok)
  sum = sum + v
end
ngx.update_time()
ngx.say(done, " ", sum, " ", ngx.now() - t0 < 1)
''', timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["1000 500500 true"]
    assert r.duration < 3, r.duration


def test_thousand_threads_finish_without_wait(run_lua):
    # nobody waits: the process still ends once they are all done
    r = run_lua(r'''
local n = 0
for i = 1, 1000 do
  ngx.thread.spawn(function() ngx.sleep(0.01) n = n + 1 if n == 1000 then ngx.say("all done") end end)
end
''', timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["all done"]
    assert r.duration < 3, r.duration


def test_killing_a_thread_that_waits_for_its_own_child(run_lua):
    # the grandchild outlives its killed parent and still runs to the end
    r = run_lua(r'''
local t = ngx.thread.spawn(function()
  local c = ngx.thread.spawn(function() ngx.sleep(0.03) ngx.say("grandchild done") end)
  ngx.thread.wait(c)
  ngx.say("child after wait (never)")
end)
ngx.sleep(0.01)
ngx.say("kill: ", ngx.thread.kill(t))
''', timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["kill: 1", "grandchild done"]


def test_sleep_zero_spinner_does_not_starve_timers_or_sleepers(run_lua):
    # Regression: posted resumes were drained with event_active inside the same loop pass,
    # so a thread looping on ngx.sleep(0) kept timers and sleeping threads from ever
    # running. OpenResty lets both run between the spinner's wake-ups.
    r = run_lua(r'''
local stop, spins = false, 0
local spinner = ngx.thread.spawn(function()
    while not stop do spins = spins + 1; ngx.sleep(0) end
end)
local fired = false
ngx.timer.at(0.02, function() fired = true end)
ngx.sleep(0.05)
stop = true
ngx.thread.wait(spinner)
ngx.say("woke ", tostring(spins > 10), " ", tostring(fired))
''', timeout=10)
    assert r.rc == 0, r.describe()
    assert r.out.strip() == "woke true true"


# --------------------------------------------------------------------------
# what ended light threads hold (docs/lifetimes.md)

FD_HELPERS = r'''
local function nfds()
  local n, f = 0, io.popen("ls /proc/" .. ngx.worker.pid() .. "/fd")
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n - 1  -- less the pipe from ls
end
local function settle()
  collectgarbage("restart")
  collectgarbage() collectgarbage()
  ngx.sleep(0.05)
end
-- a server that holds each connection until the client closes it
local srv = assert(require("cosocket").listen{ host = "127.0.0.1", port = 0, handler = function(s)
  s:settimeout(10000) s:receive()
end })
local port = srv:port()
'''


def test_sockets_of_errored_threads_are_closed_when_collected(run_lua):
    # 100 light threads connect and fail; nobody keeps them: once collected, every
    # descriptor is back (both ends: the server's handler sees the client close). The
    # dead coroutines kept their frames, and with them the sockets, for the life of the
    # script (cosocket's improvement: resty-cli keeps them until its timer ends).
    r = run_lua(FD_HELPERS + r'''
settle()
local before = nfds()
collectgarbage("stop")
for i = 1, 100 do
  ngx.thread.spawn(function()
    local s = ngx.socket.tcp()
    assert(s:connect("127.0.0.1", port))
    error("boom " .. i)
  end)
end
ngx.sleep(0.05)
local during = nfds()
settle()
ngx.say("grew while alive: ", during - before >= 100, "; after gc: ", nfds() - before)
srv:close()
''', timeout=20)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["grew while alive: true; after gc: 0"]
    assert r.err.count("lua user thread aborted: runtime error:") == 100, r.err


def test_zombies_the_parent_keeps_can_still_be_waited_after_gc(run_lua_ok):
    # the weakly held zombie stays as long as its coroutine is reachable: results (and
    # a table error value) survive collections
    out = run_lua_ok(r'''
local ok_t = ngx.thread.spawn(function() return "r1", { 42 } end)
local err_t = ngx.thread.spawn(function() error({ code = 7 }) end)
collectgarbage() collectgarbage()
ngx.sleep(0.01)
collectgarbage()
local ok, a, b = ngx.thread.wait(ok_t)
ngx.say(tostring(ok), " ", a, " ", b[1])
local ok2, e = ngx.thread.wait(err_t)
ngx.say(tostring(ok2), " ", type(e), " ", e.code)
ngx.say(ngx.thread.wait(err_t))
ngx.say(ngx.thread.kill(ok_t))
''')
    assert lines(out) == ["true r1 42", "false table 7", "nilalready waited or killed",
                          "nilalready waited or killed"]


def test_unwaited_zombies_are_freed_when_collected(run_lua_ok):
    # 20,000 threads that end unwaited and unreferenced: their records and results go
    # with the garbage collector instead of piling up until the main chunk ends
    out = run_lua_ok(r'''
local big = string.rep("x", 1000)
collectgarbage() collectgarbage()
local base = collectgarbage("count")
for i = 1, 20000 do
  ngx.thread.spawn(function() return big .. i end)
end
collectgarbage() collectgarbage() collectgarbage()
local grown = collectgarbage("count") - base
ngx.say(grown < 4000 and "freed" or ("kept " .. grown .. " KB"))
''', timeout=30)
    assert lines(out) == ["freed"]


def test_killing_a_thread_closes_the_udp_socket_it_waits_on(run_lua_ok):
    # checked against resty-cli: lua-nginx-module finalizes a socket whose pending
    # operation is cleaned up by ngx.thread.kill; the parent's later calls say "closed"
    out = run_lua_ok(r'''
local u = ngx.socket.udp()
u:settimeout(5000)
ngx.say(u:setpeername("127.0.0.1", 9))
local t = ngx.thread.spawn(function() ngx.say("recv ", u:receive()) end)
ngx.sleep(0.05)
ngx.say("kill ", ngx.thread.kill(t))
ngx.say("send ", u:send("x"))
ngx.say("close ", u:close())
''')
    assert lines(out) == ["1", "kill 1", "send nilclosed", "close nilclosed"]


def test_killing_a_thread_closes_the_tcp_socket_it_reads(run_lua_ok, echo_server):
    # checked against resty-cli: the killed reader's socket is finalized, so nobody reads
    # the rest of a reply it had begun; the parent's later calls say "closed"
    out = run_lua_ok(r'''
local sock = ngx.socket.tcp()
sock:settimeout(5000)
ngx.say("connect ", sock:connect("127.0.0.1", tonumber(arg[1])))
local t = ngx.thread.spawn(function() ngx.say("recv ", sock:receive(5)) end)
ngx.sleep(0.05)
ngx.say("kill ", ngx.thread.kill(t))
ngx.say("send ", sock:send("x"))
ngx.say("recv ", sock:receive(1))
ngx.say("close ", sock:close())
''', echo_server.port)
    assert lines(out) == ["connect 1", "kill 1", "send nilclosed", "recv nilclosed",
                          "close nilclosed"]


def test_killing_a_thread_closes_the_tcp_socket_it_writes(run_lua_ok, echo_server):
    # the script never reads the echo, so the 32 MB send blocks once both buffers are full
    out = run_lua_ok(r'''
local sock = ngx.socket.tcp()
sock:settimeout(5000)
ngx.say("connect ", sock:connect("127.0.0.1", tonumber(arg[1])))
local big = string.rep("x", 32 * 1024 * 1024)
local t = ngx.thread.spawn(function() ngx.say("send ", sock:send(big)) end)
ngx.sleep(0.1)
ngx.say("kill ", ngx.thread.kill(t))
ngx.say("send ", sock:send("x"))
ngx.say("close ", sock:close())
''', echo_server.port)
    assert lines(out) == ["connect 1", "kill 1", "send nilclosed", "close nilclosed"]


def test_killed_reader_wakes_the_writer_of_the_same_socket(run_lua_ok, echo_server):
    # a reader and a writer thread share a socket: killing the reader closes it, and the
    # writer parked on a full send buffer is woken with nil, "closed" (not its timeout)
    out = run_lua_ok(r'''
local sock = ngx.socket.tcp()
sock:settimeout(5000)
assert(sock:connect("127.0.0.1", tonumber(arg[1])))
local w = ngx.thread.spawn(function() return sock:send(string.rep("x", 32 * 1024 * 1024)) end)
local r = ngx.thread.spawn(function() return sock:receiveuntil("never")() end)
ngx.sleep(0.1)
-- the reader may have been woken by echoed bytes; receiveuntil waits for more
ngx.say("kill ", ngx.thread.kill(r))
local t0 = ngx.now()
ngx.say("writer ", ngx.thread.wait(w))
ngx.update_time()
ngx.say("quick ", ngx.now() - t0 < 2)
''', echo_server.port)
    assert lines(out) == ["kill 1", "writer truenilclosed", "quick true"]
