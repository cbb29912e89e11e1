"""Requests own their sockets (docs/lifetimes.md): the main chunk, a timer's callback and a
cosocket.listen connection handler each act as OpenResty's request -- when it and the light
threads it spawned are finished, the sockets they connected and did not put in the pool are
closed, as lua-nginx-module's request cleanup finalizes them. The tests stop the garbage
collector where it matters, to show that it is the end of the request that closes them.

"checked against resty-cli" = the same script gave the same lines under
/work/shared/tools/resty-ref.
"""
from test_threads import FD_HELPERS


def lines(out):
    return out.splitlines()


def test_a_timers_socket_is_closed_when_the_timer_ends(run_lua_ok):
    # checked against resty-cli: the timer's socket, kept in a global, says "closed" to
    # the main chunk once the timer is done
    out = run_lua_ok(FD_HELPERS + r'''
settle()
local before = nfds()
collectgarbage("stop")
local kept
ngx.timer.at(0, function()
  kept = ngx.socket.tcp()
  ngx.say("timer connect ", kept:connect("127.0.0.1", port))
end)
ngx.sleep(0.05)
ngx.say("open after the timer: ", nfds() - before)
ngx.say("main send ", kept:send("x"))
ngx.say("main close ", kept:close())
srv:close()
''')
    assert lines(out) == ["timer connect 1", "open after the timer: 0", "main send nilclosed",
                          "main close nilclosed"]


def test_errored_timers_release_their_sockets_at_once(run_lua_ok):
    # 100 timers connect and fail: no collection needed, every descriptor is back
    out = run_lua_ok(FD_HELPERS + r'''
settle()
local before = nfds()
collectgarbage("stop")
for i = 1, 100 do
  ngx.timer.at(0, function()
    local s = ngx.socket.tcp()
    assert(s:connect("127.0.0.1", port))
    local t = ngx.thread.spawn(function()
      local s2 = ngx.socket.tcp()
      assert(s2:connect("127.0.0.1", port))
      ngx.sleep(0.01)
      error("thread boom " .. i)
    end)
    error("timer boom " .. i)
  end)
end
-- the 200 descriptors come back as the requests end (in ~10 ms); a loaded machine may take
-- longer, so wait up to 10 s for it rather than a fixed time
local deadline = ngx.now() + 10
repeat ngx.sleep(0.02) ngx.update_time() until nfds() == before or ngx.now() > deadline
ngx.say("left open: ", nfds() - before)
srv:close()
''', timeout=20)
    assert lines(out) == ["left open: 0"]


def test_the_request_ends_with_its_last_light_thread(run_lua_ok):
    # the timer returns at once; the socket lives as long as a thread it spawned still runs
    out = run_lua_ok(FD_HELPERS + r'''
collectgarbage("stop")
local kept
ngx.timer.at(0, function()
  kept = ngx.socket.tcp()
  assert(kept:connect("127.0.0.1", port))
  ngx.thread.spawn(function() ngx.sleep(0.1) end)
end)
ngx.sleep(0.05)
ngx.say("while its thread runs: ", kept:send("x\n"))
ngx.sleep(0.1)
ngx.say("after: ", kept:send("x\n"))
srv:close()
''')
    assert lines(out) == ["while its thread runs: 2", "after: nilclosed"]


def test_pooled_connections_stay_pooled(run_lua_ok, echo_server):
    # a timer that puts its connection in the pool gives it to the next request
    out = run_lua_ok(r'''
local port = tonumber(arg[1])
ngx.timer.at(0, function()
  local s = ngx.socket.tcp()
  assert(s:connect("127.0.0.1", port))
  assert(s:send("ping\n"))
  assert(s:receive() == "ping")
  ngx.say("pooled ", s:setkeepalive())
end)
ngx.sleep(0.05)
local s = ngx.socket.tcp()
assert(s:connect("127.0.0.1", port))
ngx.say("reused ", s:getreusedtimes())
assert(s:send("pong\n"))
ngx.say(s:receive())
''', echo_server.port)
    assert lines(out) == ["pooled 1", "reused 1", "pong"]


def test_the_main_chunks_sockets_close_when_it_ends(run_lua_ok):
    # (resty-cli ends the process with its main chunk; here timers may outlive it, and
    # find its sockets closed, as a timer finds another ended request's)
    out = run_lua_ok(FD_HELPERS + r'''
local s = ngx.socket.tcp()
assert(s:connect("127.0.0.1", port))
ngx.timer.at(0.05, function()
  ngx.say("timer send ", s:send("x"))
  srv:close()
end)
''')
    assert lines(out) == ["timer send nilclosed"]


def test_a_handlers_sockets_close_when_the_connection_is_done(run_lua_ok, echo_server):
    # each connection is a request: an upstream socket its handler's thread opened and
    # left behind is closed when the handler and that thread are finished
    out = run_lua_ok(FD_HELPERS + r'''
local cosocket = require "cosocket"
local upstream = tonumber(arg[1])
settle()
collectgarbage("stop")
local left = {}
local proxy = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  local t = ngx.thread.spawn(function()
    local u = ngx.socket.tcp()
    assert(u:connect("127.0.0.1", upstream))
    left[#left + 1] = u
  end)
  ngx.thread.wait(t)
  sock:send("ok\n")
end })
local before = nfds()
for i = 1, 20 do
  local c = ngx.socket.tcp()
  assert(c:connect("127.0.0.1", proxy:port()))
  assert(c:receive() == "ok")
  c:close()
end
ngx.sleep(0.05)
local closed = 0
for _, u in ipairs(left) do
  local ok, err = u:send("x")
  if not ok and err == "closed" then closed = closed + 1 end
end
ngx.say(#left, " left behind, ", closed, " closed, open: ", nfds() - before)
proxy:close()
srv:close()
''', echo_server.port)
    assert lines(out) == ["20 left behind, 20 closed, open: 0"]


def test_a_udp_socket_is_closed_with_its_request(run_lua_ok, udp_echo):
    out = run_lua_ok(r'''
local port = tonumber(arg[1])
local kept
ngx.timer.at(0, function()
  kept = ngx.socket.udp()
  kept:settimeout(2000)
  assert(kept:setpeername("127.0.0.1", port))
  assert(kept:send("hi"))
  ngx.say("timer ", kept:receive())
end)
ngx.sleep(0.1)
ngx.say("main send ", kept:send("x"))
''', udp_echo.port)
    assert lines(out) == ["timer hi", "main send nilclosed"]


def test_another_request_may_use_a_live_requests_socket(run_lua_ok, echo_server):
    # lua-nginx-module raises "bad request" here; cosocket lets a request use a socket of
    # another that is still running (a connect moves the socket to the connecting request)
    out = run_lua_ok(r'''
local port = tonumber(arg[1])
local shared
ngx.timer.at(0, function()
  shared = ngx.socket.tcp()
  assert(shared:connect("127.0.0.1", port))
  ngx.sleep(0.2)
end)
ngx.sleep(0.05)
assert(shared:send("hello\n"))
ngx.say("main reads ", shared:receive())
assert(shared:connect("127.0.0.1", port))  -- now the main chunk's
ngx.sleep(0.3)                             -- the timer has ended
assert(shared:send("still\n"))
ngx.say("after the timer ", shared:receive())
''', echo_server.port)
    assert lines(out) == ["main reads hello", "after the timer still"]
