"""require "ngx.semaphore": new / wait / post / count.

Expected values checked against OpenResty 0.10.23 (ngx_lua + lua-resty-core's ngx.semaphore).
"""

# prints its arguments with tostring, tables as "table", separated by spaces
P = r'''
local semaphore = require "ngx.semaphore"
local function P(...)
  local t, n = {...}, select("#", ...)
  for i = 1, n do t[i] = type(t[i]) == "table" and "table" or tostring(t[i]) end
  ngx.say(table.concat(t, " ", 1, n))
end
'''


def lines(out):
    return out.splitlines()


def test_new_wait_post_count(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local sema, err = semaphore.new()
P("new:", type(sema), err, "count", sema:count())
P("wait0:", sema:wait(0))
local s2 = semaphore.new(2)
P("count2", s2:count())
P(s2:wait(0), s2:wait(0), s2:count())
P(s2:wait(0))
P("post:", s2:post(3), "count", s2:count())
P("post nil count before", s2:count(), s2:post(), s2:count())
P("post str", s2:post("2"), s2:count())
P("wait str", s2:wait("0"), s2:count())
local s15 = semaphore.new(1.5) P("s15", s15:count())
P("new 0", semaphore.new(0):count(), "new str", semaphore.new("3"):count())
''')
    assert lines(out) == [
        "new: table nil count 0",
        "wait0: nil timeout",
        "count2 2",
        "true true 0",
        "nil timeout",
        "post: true count 3",
        "post nil count before 3 true 4",
        "post str true 6",
        "wait str true 5",
        "s15 1",
        "new 0 0 new str 3",
    ]


def test_wait_with_timeout_times_out(run_lua_ok):
    # checked against OpenResty 0.10.23: wait(0) gives nil, "timeout" but a wait that really
    # waited and timed out gives false, "timeout"
    out = run_lua_ok(P + r'''
local sema = semaphore.new()
local t0 = ngx.now()
P("wait timeout:", sema:wait(0.02))
ngx.update_time()
P("waited long enough:", ngx.now() - t0 >= 0.015)
P("count after timeout:", sema:count())
''')
    assert lines(out) == ["wait timeout: false timeout", "waited long enough: true", "count after timeout: 0"]


def test_post_with_a_fraction_rounds_down(run_lua_ok):
    # checked against OpenResty 0.10.23: the count is an integer
    out = run_lua_ok(P + r'''
local s = semaphore.new(0)
P(s:post(1.5), s:count())
''')
    assert lines(out) == ["true 1"]


def test_bad_arguments_raise(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local sema = semaphore.new()
P("post0:", pcall(sema.post, sema, 0))
P("post-1:", pcall(sema.post, sema, -1))
P("new-1:", pcall(semaphore.new, -1))
P("wait-1:", pcall(sema.wait, sema, -1))
''')
    assert lines(out) == [
        "post0: false positive number required",
        "post-1: false positive number required",
        "new-1: false no negative number",
        "wait-1: false no negative number",
    ]


def test_not_a_semaphore_instance(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local sema = semaphore.new()
P(pcall(sema.wait, {}, 1))
P(pcall(sema.post, {}, 1))
P(pcall(sema.count, {}))
''')
    assert lines(out) == ["false not a semaphore instance"] * 3


def test_waiters_wake_in_fifo_order(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local order = {}
local s = semaphore.new(0)
for i = 1, 5 do
  ngx.thread.spawn(function() local ok, e = s:wait(1) order[#order+1] = i .. ":" .. tostring(ok) end)
end
P("count", s:count())
s:post(2)
P("count", s:count())
ngx.sleep(0.01)
P("order:", table.concat(order, ","))
s:post(1)
ngx.sleep(0.01)
P("order:", table.concat(order, ","))
s:post(10)
P("count", s:count())
ngx.sleep(0.01)
P("order:", table.concat(order, ","), "count", s:count())
''')
    assert lines(out) == [
        "count -5",
        "count -3",
        "order: 1:true,2:true",
        "order: 1:true,2:true,3:true",
        "count 8",
        "order: 1:true,2:true,3:true,4:true,5:true count 8",
    ]


def test_posting_more_than_waiters_keeps_the_rest(run_lua_ok):
    # checked against OpenResty 0.10.23: a resource posted while a waiter is queued goes to
    # the waiter, not to a newcomer's wait(0)
    out = run_lua_ok(P + r'''
local s5 = semaphore.new(0)
local q = ngx.thread.spawn(function() local ok = s5:wait(1) return ok end)
s5:post(1)
P("count after post", s5:count())
P("newcomer wait0:", s5:wait(0))
P("q:", ngx.thread.wait(q))
s5:post(3)
P("count", s5:count(), s5:wait(0), s5:wait(0), s5:wait(0), s5:wait(0))
''')
    assert lines(out) == [
        "count after post 0",
        "newcomer wait0: nil timeout",
        "q: true true",
        "count 3 true true true nil timeout",
    ]


def test_successful_wait_after_waiting_returns_two_values(run_lua_ok):
    # checked against OpenResty 0.10.23: `true` (1 value) when a resource was there at once,
    # `true, nil` (2 values) after waiting
    out = run_lua_ok(r'''
local semaphore = require "ngx.semaphore"
local s = semaphore.new(1)
ngx.say(select("#", s:wait(0)))
local t = ngx.thread.spawn(function() return select("#", s:wait(1)) end)
s:post()
ngx.say(ngx.thread.wait(t))
''')
    assert lines(out) == ["1", "true2"]


def test_killed_waiter_leaves_the_queue(run_lua_ok):
    # checked against OpenResty 0.10.23: the killed waiter no longer counts, the post goes
    # to the next one
    out = run_lua_ok(P + r'''
local s3 = semaphore.new(0)
local w1 = ngx.thread.spawn(function() s3:wait(1) ngx.say("w1 woke (BAD)") end)
local w2 = ngx.thread.spawn(function() local ok = s3:wait(1) P("w2:", ok) end)
P("count3", s3:count())
P("kill w1:", ngx.thread.kill(w1))
P("count3 after kill", s3:count())
s3:post(1)
ngx.thread.wait(w2)
P("count3 end", s3:count())
''')
    assert lines(out) == ["count3 -2", "kill w1: 1", "count3 after kill -1", "w2: true", "count3 end 0"]


def test_killed_waiter_post_goes_to_next(run_lua_ok):
    # the end state does not depend on how the count is kept (checked against OpenResty 0.10.23)
    out = run_lua_ok(P + r'''
local s = semaphore.new(0)
local w1 = ngx.thread.spawn(function() s:wait(1) ngx.say("w1 woke (BAD)") end)
local w2 = ngx.thread.spawn(function() local ok = s:wait(1) P("w2:", ok) end)
ngx.thread.kill(w1)
s:post(1)
ngx.thread.wait(w2)
P("count end", s:count())
''')
    assert lines(out) == ["w2: true", "count end 0"]


def test_timed_out_waiter_frees_its_place(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local s4 = semaphore.new(0)
-- (the exact first value of a timed-out wait is checked in test_wait_with_timeout_times_out)
local t4 = ngx.thread.spawn(function() local ok, err = s4:wait(0.01) return tostring(not ok) .. "," .. err end)
P("count4", s4:count())
P(ngx.thread.wait(t4))
P("count4 after timeout", s4:count())
s4:post(1)
P("count4 after post", s4:count(), s4:wait(0))
local s7 = semaphore.new(0)
local a = ngx.thread.spawn(function() local ok = s7:wait(0.05) return "a", ok end)
local b = ngx.thread.spawn(function() local ok, err = s7:wait(0.01) return "b", tostring(not ok), err end)
P(ngx.thread.wait(a, b))
P("count7", s7:count())
s7:post(1)
local ok, name, res = ngx.thread.wait(a)
P(ok, name, res)
P("count7 end", s7:count())
''')
    assert lines(out) == [
        "count4 -1",
        "true true,timeout",
        "count4 after timeout 0",
        "count4 after post 1 true",
        "true b true timeout",
        "count7 -1",
        "true a true",
        "count7 end 0",
    ]


def test_post_from_a_timer_wakes_the_entry_thread(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(P + r'''
local s6 = semaphore.new(0)
ngx.timer.at(0.01, function() s6:post(1) end)
local ok = s6:wait(1)
P("s6:", ok)
''')
    assert lines(out) == ["s6: true"]


def test_producer_consumer_through_a_semaphore(run_lua_ok):
    out = run_lua_ok(P + r'''
local s = semaphore.new(0)
local queue, got = {}, {}
local consumer = ngx.thread.spawn(function()
  for i = 1, 20 do
    assert(s:wait(1))
    got[#got+1] = table.remove(queue, 1)
  end
end)
for i = 1, 20 do
  queue[#queue+1] = i
  s:post(1)
  if i % 3 == 0 then ngx.sleep(0.001) end
end
ngx.thread.wait(consumer)
P(table.concat(got, ","), s:count())
''')
    assert lines(out) == [",".join(str(i) for i in range(1, 21)) + " 0"]
