"""ngx.timer.at / every / running_count / pending_count, and the graceful shutdown on
SIGINT/SIGTERM (pending timers run with premature = true).

Values marked "checked against OpenResty 0.10.23" came from real nginx + ngx_lua; the
signal handling, exit statuses and command-line limits are cosocket's own (see README).
"""
import os
import re
import select
import signal
import subprocess
import time

import pytest

import conftest


def lines(out):
    return out.splitlines()


# --------------------------------------------------------------------------
# a cosocket process we can signal

class Proc:
    def __init__(self, binary, tmp_path, code, flags=()):
        script = tmp_path / "sig.lua"
        script.write_text(code)
        self.argv = [binary, *[str(f) for f in flags], str(script)]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=str(tmp_path), start_new_session=True)
        self.out = b""

    def wait_for(self, text, timeout=5):
        """Reads stdout until `text` appeared (the script must ngx.flush() it)."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no {text!r} from cosocket within {timeout} s; stdout so far: {self.out!r}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.p.stderr.read().decode(errors="replace")
                    pytest.fail(f"cosocket ended before {text!r}: stdout {self.out!r} stderr {err}")
                self.out += chunk

    def signal(self, sig):
        self.p.send_signal(sig)

    def finish(self, timeout=8):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"cosocket did not exit within {timeout} s after the signal; stdout {self.out!r}")
        self.duration = time.monotonic() - self.t0
        self.out = (self.out + out).decode(errors="replace")
        self.err = err.decode(errors="replace")
        report = conftest.sanitizer_report(self.err)
        assert not report, report
        return self.p.returncode

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.communicate()


@pytest.fixture
def start(cosocket_bin, tmp_path):
    procs = []

    def run(code, flags=()):
        p = Proc(cosocket_bin, tmp_path, code, flags)
        procs.append(p)
        return p
    yield run
    for p in procs:
        if p.p.poll() is None:
            p.kill()


# --------------------------------------------------------------------------
# ngx.timer.at

def test_timers_fire_in_order_of_delay_with_args(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local out = {}
local function cb(premature, name, extra)
  out[#out+1] = name .. ":" .. tostring(premature) .. ":" .. tostring(extra) .. ":" .. ngx.get_phase()
end
ngx.say(ngx.timer.at(0.03, cb, "c", nil))
ngx.say(ngx.timer.at(0.01, cb, "a", 1))
ngx.say(ngx.timer.at(0.02, cb, "b", "x"))
ngx.say(ngx.timer.at(0, cb, "z", true))
ngx.say("pending ", ngx.timer.pending_count(), " running ", ngx.timer.running_count())
ngx.sleep(0.1)
ngx.say(table.concat(out, " "))
''')
    assert lines(out) == ["1", "1", "1", "1", "pending 4 running 0",
                          "z:false:true:timer a:false:1:timer b:false:x:timer c:false:nil:timer"]


def test_timers_with_the_same_delay_fire_in_creation_order(run_lua_ok):
    # checked against OpenResty 0.10.23 (nginx's timer tree keeps equal keys in insertion order)
    out = run_lua_ok(r'''
local got = {}
for i = 1, 10 do ngx.timer.at(0, function() got[#got+1] = i end) end
ngx.sleep(0.02)
ngx.say(table.concat(got, ","))
got = {}
for i = 1, 10 do ngx.timer.at(0.01, function() got[#got+1] = i end) end
ngx.sleep(0.03)
ngx.say(table.concat(got, ","))
''')
    assert lines(out) == ["1,2,3,4,5,6,7,8,9,10"] * 2


def test_timer_argument_passing(run_lua_ok):
    # checked against OpenResty 0.10.23: nil arguments keep their places, tables are passed as is
    out = run_lua_ok(r'''
local got = {}
local tbl = {}
ngx.timer.at(0, function(...) got[#got+1] = select("#", ...) .. ":" .. tostring(select(2, ...)) .. ":" .. tostring(select(4, ...)) end, nil, nil, "x")
ngx.timer.at(0.001, function(...) got[#got+1] = select("#", ...) end)
ngx.timer.at(0.002, function(p, t) got[#got+1] = tostring(t == tbl) end, tbl)
ngx.sleep(0.02)
ngx.say(table.concat(got, " "))
''')
    assert lines(out) == ["4:nil:x 1 true"]


def test_timer_bad_arguments(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local cb = function() end
ngx.say(pcall(ngx.timer.at, 1, "x"))
ngx.say(pcall(ngx.timer.at, "x", cb))
ngx.say(pcall(ngx.timer.at, 0.01, print))
ngx.say(pcall(ngx.timer.every, 0, cb))
''')
    assert lines(out) == [
        "falsebad argument #2 to '?' (Lua function expected)",
        "falsebad argument #1 to '?' (number expected, got string)",
        "falsebad argument #2 to '?' (Lua function expected)",
        "falsedelay cannot be zero",
    ]


def test_timer_too_few_arguments(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(pcall(ngx.timer.at, 1))
ngx.say(pcall(ngx.timer.at))
ngx.say(pcall(ngx.timer.every, 1))
''')
    assert lines(out) == [
        "falseexpecting at least 2 arguments but got 1",
        "falseexpecting at least 2 arguments but got 0",
        "falseexpecting at least 2 arguments but got 1",
    ]


def test_running_and_pending_counts(run_lua_ok):
    # checked against OpenResty 0.10.23: a timer is pending until its callback starts, then running
    out = run_lua_ok(r'''
local res = {}
ngx.timer.at(0, function(p)
  res[#res+1] = "in cb: pending " .. ngx.timer.pending_count() .. " running " .. ngx.timer.running_count()
  ngx.sleep(0.02)
  res[#res+1] = "cb2 running " .. ngx.timer.running_count()
end)
ngx.timer.at(0.01, function() res[#res+1] = "second: running " .. ngx.timer.running_count() .. " pending " .. ngx.timer.pending_count() end)
ngx.say("after at: pending ", ngx.timer.pending_count(), " running ", ngx.timer.running_count())
ngx.sleep(0.05)
ngx.say(table.concat(res, "; "))
ngx.say("end: pending ", ngx.timer.pending_count(), " running ", ngx.timer.running_count())
''')
    assert lines(out) == [
        "after at: pending 2 running 0",
        "in cb: pending 1 running 1; second: running 2 pending 0; cb2 running 1",
        "end: pending 0 running 0",
    ]


def test_timer_callback_may_use_threads_and_sleep(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local out = {}
ngx.timer.at(0, function()
  local t = ngx.thread.spawn(function() ngx.sleep(0.005) return "in-timer-thread" end)
  local ok, v = ngx.thread.wait(t)
  out[#out+1] = v
end)
ngx.sleep(0.03)
ngx.say(table.concat(out))
''')
    assert lines(out) == ["in-timer-thread"]


def test_process_waits_for_pending_timers(run_lua):
    r = run_lua(r'''
ngx.timer.at(0.05, function(premature) ngx.say("timer ran ", tostring(premature)) end)
ngx.say("main done")
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["main done", "timer ran false"]
    assert r.duration >= 0.05


def test_timer_error_is_logged_and_process_carries_on(run_lua):
    # checked against OpenResty 0.10.23: "lua entry thread aborted: runtime error: ..."
    r = run_lua(r'''
ngx.timer.at(0, function() error("timer dies") end)
ngx.sleep(0.02)
ngx.say("main ok")
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["main ok"]
    assert re.search(r"\[error\] .*lua entry thread aborted: runtime error: \S+\.lua:2: timer dies", r.err), r.err


def test_too_many_pending_timers(run_lua_ok):
    out = run_lua_ok(r'''
local f = function() end
ngx.say(ngx.timer.at(0.01, f))
ngx.say(ngx.timer.at(0.01, f))
ngx.say(ngx.timer.at(0.01, f))
ngx.say(ngx.timer.every(0.01, f))
ngx.sleep(0.03)
ngx.say(ngx.timer.at(0, f))
''', flags=["--max-pending-timers", "2"])
    assert lines(out) == ["1", "1", "niltoo many pending timers", "niltoo many pending timers", "1"]


def test_too_many_running_timers(run_lua):
    # ngx_lua logs "N lua_max_running_timers are not enough" (alert) and drops the callback
    r = run_lua(r'''
local ran = 0
ngx.timer.at(0, function() ran = ran + 1 ngx.sleep(0.03) end)
ngx.timer.at(0.01, function() ran = ran + 1 end)
ngx.sleep(0.06)
ngx.say("ran ", ran, " running ", ngx.timer.running_count(), " pending ", ngx.timer.pending_count())
''', flags=["--max-running-timers", "1"])
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["ran 1 running 0 pending 0"]
    assert re.search(r"\[alert\] .*1 lua_max_running_timers are not enough", r.err), r.err


def test_a_burst_of_quick_timers_all_run(run_lua):
    # 300 timers expire in one turn of the loop; each callback returns at once, so no
    # more than one is running at any time and none may be dropped (all 300 run under
    # resty-cli; cosocket used to count the whole burst as running and drop 44)
    r = run_lua(r'''
local n = 0
for i = 1, 300 do assert(ngx.timer.at(0.01, function() n = n + 1 end)) end
ngx.sleep(0.2)
ngx.say("fired ", n, " pending ", ngx.timer.pending_count(), " running ", ngx.timer.running_count())
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["fired 300 pending 0 running 0"]
    assert "lua_max_running_timers" not in r.err, r.err


def test_running_limit_counts_live_callbacks_and_names_the_dropped_one(run_lua):
    # callbacks that sleep stay running: 256 run, the other 44 are refused with
    # lua-nginx-module's alert, which names where the callback was defined (checked
    # against resty-cli, whose main chunk is itself a running timer: 255 there)
    r = run_lua(r'''
local started, done = 0, 0
for i = 1, 300 do
  assert(ngx.timer.at(0.01, function()
    started = started + 1
    ngx.sleep(0.1)
    done = done + 1
  end))
end
ngx.sleep(0.05)
ngx.say("started ", started, " running ", ngx.timer.running_count(), " pending ", ngx.timer.pending_count())
ngx.sleep(0.3)
ngx.say("done ", done, " running ", ngx.timer.running_count())
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["started 256 running 256 pending 0", "done 256 running 0"]
    alerts = re.findall(r"\[alert\] \d+#0: lua failed to run timer with function defined at "
                        r"@\S+\.lua:4: 256 lua_max_running_timers are not enough", r.err)
    assert len(alerts) == 44, r.err


# --------------------------------------------------------------------------
# ngx.timer.every and the graceful shutdown

def test_every_runs_until_sigterm(start):
    # the callback runs with its args every interval (checked against OpenResty 0.10.23), runs
    # overlap when it takes longer than the interval; SIGTERM runs it once more with premature = true
    p = start(r'''
local n = 0
ngx.timer.every(0.02, function(premature, a, b)
  n = n + 1
  if premature then
    ngx.say("premature ", tostring(premature), " exiting ", tostring(ngx.worker.exiting()), " ", a, b, " n>=3 ", tostring(n >= 3))
    ngx.flush()
  elseif n == 3 then
    ngx.say("third run ", tostring(premature), " ", a, b)
    ngx.flush()
  end
end, "A", "B")
ngx.say("exiting before: ", tostring(ngx.worker.exiting()))
ngx.flush()
''')
    p.wait_for("third run")
    p.signal(signal.SIGTERM)
    rc = p.finish()
    assert rc == 0, (p.out, p.err)
    assert lines(p.out) == ["exiting before: false", "third run false AB",
                            "premature true exiting true AB n>=3 true"]
    assert p.duration < 5


def test_every_overlapping_runs(start):
    # checked against OpenResty 0.10.23: a 10 ms every-timer whose callback takes 25 ms has
    # up to 3 runs at once
    p = start(r'''
local running_max, cur = 0, 0
ngx.timer.every(0.01, function(premature)
  if premature then return end
  cur = cur + 1
  if cur > running_max then running_max = cur end
  ngx.sleep(0.025)
  cur = cur - 1
end)
ngx.sleep(0.1)
ngx.say("overlap max ", running_max)
ngx.flush()
''')
    p.wait_for("overlap max")
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.err
    assert lines(p.out) == ["overlap max 3"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_runs_pending_timers_prematurely(start, sig):
    p = start(r'''
ngx.timer.at(60, function(premature, a)
  ngx.say("long timer premature=", tostring(premature), " exiting=", tostring(ngx.worker.exiting()), " a=", a)
end, "A")
ngx.timer.at(30, function(premature)
  ngx.sleep(0.02)  -- a premature callback may still use cosockets
  ngx.say("second timer premature=", tostring(premature))
end)
ngx.say("pending ", ngx.timer.pending_count(), " ready")
ngx.flush()
''')
    p.wait_for("ready")
    p.signal(sig)
    rc = p.finish()
    assert rc == 0, (p.out, p.err)
    assert lines(p.out) == ["pending 2 ready", "long timer premature=true exiting=true a=A",
                            "second timer premature=true"]
    assert p.duration < 5


def test_new_timers_while_exiting(start):
    # ngx_lua: once exiting, a timer with a delay gets nil, "process exiting"; a zero delay runs
    p = start(r'''
ngx.timer.at(60, function(premature)
  ngx.say("at 1: ", ngx.timer.at(1, function() end))
  ngx.say("every: ", ngx.timer.every(1, function() end))
  ngx.say("at 0: ", ngx.timer.at(0, function() ngx.say("zero-delay timer ran") end))
end)
ngx.say("ready")
ngx.flush()
''')
    p.wait_for("ready")
    p.signal(signal.SIGTERM)
    rc = p.finish()
    assert rc == 0, (p.out, p.err)
    assert lines(p.out) == ["ready", "at 1: nilprocess exiting", "every: nilprocess exiting",
                            "at 0: 1", "zero-delay timer ran"]


def test_entry_thread_sees_exiting_and_ends_gracefully(start):
    p = start(r'''
ngx.say("ready")
ngx.flush()
while not ngx.worker.exiting() do ngx.sleep(0.01) end
ngx.say("saw exiting")
''')
    p.wait_for("ready")
    p.signal(signal.SIGINT)
    assert p.finish() == 0, p.err
    assert lines(p.out) == ["ready", "saw exiting"]
    assert p.duration < 5


def test_shutdown_timeout_ends_a_stuck_callback(start):
    p = start(r'''
ngx.timer.at(60, function(premature)
  ngx.say("premature ", tostring(premature))
  ngx.flush()
  ngx.sleep(30)
  ngx.say("never")
end)
ngx.say("ready")
ngx.flush()
''', flags=["--shutdown-timeout", "300"])
    p.wait_for("ready")
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    rc = p.finish()
    elapsed = time.monotonic() - t0
    assert rc == 128 + signal.SIGTERM, (p.out, p.err)
    assert lines(p.out) == ["ready", "premature true"]
    assert 0.25 <= elapsed < 2.5, elapsed


def test_shutdown_timeout_ends_a_sleeping_entry_thread(start):
    p = start(r'''
ngx.say("ready")
ngx.flush()
ngx.sleep(30)
ngx.say("never")
''', flags=["--shutdown-timeout=200"])
    p.wait_for("ready")
    t0 = time.monotonic()
    p.signal(signal.SIGINT)
    rc = p.finish()
    assert rc == 128 + signal.SIGINT, (p.out, p.err)
    assert lines(p.out) == ["ready"]
    assert time.monotonic() - t0 < 2.5


def test_default_shutdown_timeout_is_3_seconds(start):
    p = start(r'''
ngx.timer.at(60, function(premature) ngx.sleep(30) end)
ngx.say("ready")
ngx.flush()
''')
    p.wait_for("ready")
    t0 = time.monotonic()
    p.signal(signal.SIGINT)
    rc = p.finish()
    elapsed = time.monotonic() - t0
    assert rc == 128 + signal.SIGINT, (p.out, p.err)
    assert 2.8 <= elapsed < 6, elapsed


def test_second_signal_exits_at_once(start):
    p = start(r'''
ngx.timer.at(60, function(premature)
  ngx.say("premature ", tostring(premature))
  ngx.flush()
  ngx.sleep(30)
end)
ngx.say("ready")
ngx.flush()
''')
    p.wait_for("ready")
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    p.wait_for("premature true")
    p.signal(signal.SIGTERM)
    rc = p.finish()
    assert rc == 128 + signal.SIGTERM, (p.out, p.err)
    assert time.monotonic() - t0 < 2, "the second signal should end the process at once"
