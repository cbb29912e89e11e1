"""User coroutines (coroutine.create/resume/yield/wrap/status) in light threads, with
cosocket calls inside them, and a require'd module whose top-level code uses cosockets.

Values marked "checked against OpenResty 0.10.23" came from real nginx + ngx_lua.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
LUA_DIR = os.path.join(HERE, "lua", "core")


def lines(out):
    return out.splitlines()


def test_wrap_iterator_calling_sleep(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local function gen(n)
  return coroutine.wrap(function()
    for i = 1, n do ngx.sleep(0.001) coroutine.yield(i) end
  end)
end
local acc = {}
for v in gen(4) do acc[#acc+1] = v end
ngx.say("wrap: ", table.concat(acc, ","))
''')
    assert lines(out) == ["wrap: 1,2,3,4"]


def test_nested_user_coroutines_with_sleep(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local inner = coroutine.create(function(a)
  local b = coroutine.yield(a + 1)
  ngx.sleep(0.001)
  local c = coroutine.yield(b * 2)
  return "inner done", c
end)
local outer = coroutine.create(function()
  local ok, v = coroutine.resume(inner, 1)
  coroutine.yield("o1:" .. tostring(v))
  ngx.sleep(0.001)
  ok, v = coroutine.resume(inner, 10)
  coroutine.yield("o2:" .. tostring(v))
  local ok, r1, r2 = coroutine.resume(inner, "C")
  return "outer:" .. r1 .. ":" .. r2
end)
while true do
  local ok, v = coroutine.resume(outer)
  ngx.say(ok, " ", v, " ", coroutine.status(outer), " ", coroutine.status(inner))
  if coroutine.status(outer) == "dead" then break end
end
ngx.say(coroutine.resume(outer))
''')
    assert lines(out) == [
        "true o1:2 suspended suspended",
        "true o2:20 suspended suspended",
        "true outer:inner done:C dead dead",
        "falsecannot resume dead coroutine",
    ]


def test_resume_error_and_status(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(coroutine.resume(coroutine.create(function() error("cerr") end)))
ngx.say(coroutine.resume(coroutine.create(function() ngx.sleep(0.001) error("after sleep", 0) end)))
local co = coroutine.create(function() ngx.say("in co: ", coroutine.status(coroutine.running())) ngx.sleep(0.001) end)
ngx.say("status ", coroutine.status(co))
coroutine.resume(co)
ngx.say("status ", coroutine.status(co))
local cc = coroutine.create(function() return coroutine.running() end)
local _, r = coroutine.resume(cc)
ngx.say(r == cc, " ", type(coroutine.running()))
''')
    out = lines(out)
    assert out[0].startswith("false") and out[0].endswith(":2: cerr"), out
    assert out[1:] == ["falseafter sleep", "status suspended", "in co: running", "status dead", "true thread"]


def test_yield_at_top_of_entry_thread_gives_way(run_lua_ok):
    # checked against OpenResty 0.10.23: a plain coroutine.yield in a light thread's own
    # body does not abort it
    out = run_lua_ok(r'''
local log = {}
local t = ngx.thread.spawn(function() log[#log+1] = "t1" coroutine.yield() log[#log+1] = "t2" end)
log[#log+1] = "main"
ngx.say(pcall(coroutine.yield, 1))
ngx.thread.wait(t)
ngx.say(table.concat(log, " "))
''')
    assert lines(out) == ["true", "t1 main t2"]


def test_generator_in_light_thread(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local function gen(n)
  return coroutine.wrap(function()
    for i = 1, n do ngx.sleep(0.001) coroutine.yield(i) end
  end)
end
local th = ngx.thread.spawn(function()
  local g = gen(3)
  return g() + g() + g()
end)
ngx.say(ngx.thread.wait(th))
''')
    assert lines(out) == ["true6"]


def test_sleeping_generators_run_concurrently(run_lua):
    # two threads each draining a generator that sleeps 20 ms per step, 10 steps: ~0.2 s, not 0.4
    r = run_lua(r'''
local function gen(tag)
  return coroutine.wrap(function()
    for i = 1, 10 do ngx.sleep(0.02) coroutine.yield(tag .. i) end
  end)
end
local function drain(tag) local n = 0 for v in gen(tag) do n = n + 1 end return n end
local t0 = ngx.now()
local a = ngx.thread.spawn(drain, "a")
local b = ngx.thread.spawn(drain, "b")
local _, na = ngx.thread.wait(a)
local _, nb = ngx.thread.wait(b)
ngx.update_time()
ngx.say(na, " ", nb, " ", ngx.now() - t0 < 0.35)
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["10 10 true"]


def test_wrap_iterator_with_socket_ops(run_lua, echo_server):
    r = run_lua(r'''
local port = tonumber(arg[1])
local function echoes(words)
  return coroutine.wrap(function()
    local sock = ngx.socket.tcp()
    sock:settimeout(2000)
    assert(sock:connect("127.0.0.1", port))
    for _, w in ipairs(words) do
      assert(sock:send(w .. "\n"))
      local line, err = sock:receive("*l")
      coroutine.yield(line or ("error: " .. tostring(err)))
    end
    sock:close()
  end)
end
local got = {}
for line in echoes({"alpha", "beta", "gamma"}) do got[#got+1] = line end
ngx.say(table.concat(got, ","))
''', echo_server.port, timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["alpha,beta,gamma"]
    assert bytes(echo_server.received[0]) == b"alpha\nbeta\ngamma\n"


def test_nested_coroutine_socket_op_in_thread(run_lua, echo_server):
    # a socket call two coroutines deep inside a light thread, while another thread runs
    r = run_lua(r'''
local port = tonumber(arg[1])
local ticks = 0
local ticker = ngx.thread.spawn(function() for i = 1, 5 do ngx.sleep(0.005) ticks = ticks + 1 end end)
local worker = ngx.thread.spawn(function()
  local outer = coroutine.wrap(function()
    local inner = coroutine.wrap(function()
      local sock = ngx.socket.tcp()
      assert(sock:connect("127.0.0.1", port))
      ngx.sleep(0.03)
      assert(sock:send("deep\n"))
      coroutine.yield((sock:receive("*l")))
      sock:close()
    end)
    coroutine.yield("outer got " .. inner())
  end)
  return outer()
end)
ngx.say(ngx.thread.wait(worker))
ngx.thread.wait(ticker)
ngx.say("ticks ", ticks)
''', echo_server.port, timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["trueouter got deep", "ticks 5"]


def test_require_module_with_cosockets_at_top_level(run_lua, echo_server):
    r = run_lua(r'''
local m = require "core_cosocket_module"
ngx.say(m.echo, " | ", m.hello(), " | loads ", m.loads)
local again = require "core_cosocket_module"
ngx.say("same table ", tostring(again == m), " loads ", again.loads)
''', echo_server.port, flags=["-I", LUA_DIR], timeout=10)
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["module top level | hello from module | loads 1", "same table true loads 1"]
    assert echo_server.connections == 1


def test_concurrent_require_waits_for_the_first_load(run_lua, echo_server):
    # the thread starts loading the module (its top level sleeps); the timer requires the
    # same module meanwhile: it must get the module once loaded, not a "loop or previous
    # error loading module" error, and the top level runs once
    r = run_lua(r'''
local res = {}
ngx.timer.at(0, function() res[#res+1] = "timer: " .. require("core_cosocket_module").echo end)
local t = ngx.thread.spawn(function() return require("core_cosocket_module").hello() end)
ngx.sleep(0.2)
ngx.say(select(2, ngx.thread.wait(t)))
ngx.say(table.concat(res))
''', echo_server.port, flags=["-I", LUA_DIR], timeout=10)
    assert r.rc == 0, r.describe()
    out = lines(r.out)
    assert out[0] == "hello from module", r.describe()
    assert out[1] == "timer: module top level", r.describe()
    assert echo_server.connections == 1


def test_require_module_failing_after_yield(run_lua):
    r = run_lua(r'''
local ok, err = pcall(require, "core_failing_module")
ngx.say(ok, " ", err)
ngx.say(package.loaded["core_failing_module"])
local ok2, err2 = pcall(require, "core_failing_module")
ngx.say(ok2, " ", err2 == err)
require "core_nil_module"
ngx.say(tostring(package.loaded["core_nil_module"]), " ", tostring(require "core_nil_module"), " ran ", core_nil_module_ran)
local ok3, err3 = pcall(require, "core_no_such_module")
ngx.say(ok3, " ", err3:match("^module 'core_no_such_module' not found:") ~= nil)
''', flags=["-I", LUA_DIR], timeout=10)
    assert r.rc == 0, r.describe()
    out = lines(r.out)
    assert out[0].startswith("false ") and out[0].endswith("core_failing_module.lua:3: module top level failed"), out
    assert out[1:] == ["nil", "false true", "true true ran 1", "false true"]


def test_resume_returns_exactly_the_values_given(run_lua_ok):
    # recorded under resty-ref (resty-cli): a coroutine that returns nothing, after a
    # cosocket call or not, makes resume return `true` alone
    out = run_lua_ok(r'''
local function n(...) return select("#", ...) end
ngx.say(n(coroutine.resume(coroutine.create(function() ngx.sleep(0.01) end))))
ngx.say(n(coroutine.resume(coroutine.create(function() end))))
ngx.say(n(coroutine.resume(coroutine.create(function() return 1, nil end))))
ngx.say(n(coroutine.resume(coroutine.create(function() coroutine.yield() end))))
ngx.say(n(coroutine.resume(coroutine.create(function() ngx.sleep(0) coroutine.yield(nil, nil) end))))
ngx.say(n(coroutine.wrap(function() ngx.sleep(0) end)()))
''')
    assert lines(out) == ["1", "1", "3", "1", "3", "0"]
