"""Faults between the drivers and their real servers (issue 21, item 5).

resty.redis, resty.memcached, resty.mysql and resty.beanstalkd talk to the session's real
servers through tests/helpers/fault_proxy.py, which resets, closes, half-closes, stalls,
delays or truncates a connection when the test says so. Each case checks that the driver
answers nil, err with the runtime's (OpenResty's) words -- never a crash or a hang: every
script has a 0.5 s socket timeout and the test a bounded run time -- that the broken
connection is never handed to the pool (set_keepalive refuses it; the next connect is a
fresh one, counted by the proxy), and that the next request, on a new or a pooled
connection, gets the right data. The faults hit a reply to a read, a pipeline's replies
(cut in the middle), the connection as it is accepted (connect() or the first exchange
fails), and the connection idle in the pool.

The connection that sits idle in the keepalive pool when the server side goes away
(FIN, RST) is checked both ways: when the event loop runs before the next connect, the pool
sees the close and drops the connection (the next connect is fresh); when the connect comes
first (the loop blocked in io.read at a checkpoint), the stale connection is handed out as
nginx hands it out, the request on it fails with a clear error, the driver refuses to pool
it, and the retry on a new connection gets the right data.

Last, a private redis-server and a private mariadbd are killed (SIGKILL) while a script
streams pipelines / queries at them and restarted on the same port: the in-flight request
fails, connects are refused while the server is down, and the stream then goes on with the
right data.

Scripts stop at checkpoints (tests/helpers/socket_lua.py's Interactive) so the test can arm
a fault at an exact point; stderr is checked for sanitizer and leak-check reports as
run_lua does.
"""
import subprocess
import time

import pytest

import services
from conftest import sanitizer_report
from helpers.fault_proxy import FaultProxy
from helpers.socket_lua import Interactive

TIMEOUT_MS = 500         # every driver's socket timeout in these scripts
RUN_TIMEOUT = 60         # seconds for a whole script (ASan included)
STEP_TIMEOUT = 30        # seconds to reach a checkpoint


class Script(Interactive):
    """Interactive, with run_lua's checks at the end: exit status 0 and no sanitizer or
    leak-check report in stderr."""

    def finish(self, timeout=RUN_TIMEOUT):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"cosocket did not exit within {timeout} s; output: {self.lines!r} "
                        f"{out!r}\nstderr: {err.decode(errors='replace')[-3000:]}", pytrace=False)
        err = err.decode(errors="replace")
        report = sanitizer_report(err)
        if report:
            pytest.fail(f"sanitizer report in cosocket's stderr:\n{report}\n{err[-3000:]}",
                        pytrace=False)
        lines = self.lines + out.decode().splitlines()
        assert self.proc.returncode == 0, f"rc={self.proc.returncode}\n{lines!r}\n{err[-3000:]}"
        return lines


@pytest.fixture
def script(cosocket_bin, tmp_path):
    started = []

    def start(code, **subst):
        s = Script(cosocket_bin, tmp_path, code, subst={"TIMEOUT": TIMEOUT_MS, **subst})
        started.append(s)
        return s
    yield start
    for s in started:
        if s.proc.poll() is None:
            s.kill()
            s.proc.wait()


@pytest.fixture
def fault_proxy():
    started = []

    def make(port):
        p = FaultProxy(port)
        started.append(p)
        return p
    yield make
    for p in started:
        p.stop()
    errors = [e for p in started for e in p.errors]
    if errors:
        pytest.fail("fault_proxy failed:\n" + "\n".join(errors), pytrace=False)


# ---------------------------------------------------------------------------------------
# the drivers behind one small interface: D.connect(port) -> object | nil, err;
# D.write(o, key, value) -> true | nil, err; D.read(o, key) -> value | nil, err;
# D.keepalive(o); D.reused(o); D.setup(o) and D.cleanup(o) when the driver needs them

ADAPTERS = {
    "redis": """
local redis = require "resty.redis"
local D = {}
function D.connect(port)
  local o = redis:new()
  o:set_timeout(@TIMEOUT@)
  local ok, err = o:connect("127.0.0.1", port)
  if not ok then return nil, err end
  return o
end
function D.write(o, k, v)
  local res, err = o:set(k, v)
  if res ~= "OK" then return nil, err end
  return true
end
function D.read(o, k)
  local v, err = o:get(k)
  if not v or v == ngx.null then return nil, err or "missing" end
  return v
end
function D.keepalive(o) return o:set_keepalive(10000, 10) end
function D.reused(o) return o:get_reused_times() end
""",
    "memcached": """
local memcached = require "resty.memcached"
local D = {}
function D.connect(port)
  local o = memcached:new()
  o:set_timeout(@TIMEOUT@)
  local ok, err = o:connect("127.0.0.1", port)
  if not ok then return nil, err end
  return o
end
function D.write(o, k, v)
  local ok, err = o:set(k, v)
  if not ok then return nil, err end
  return true
end
function D.read(o, k)
  local v, _, err = o:get(k)
  if not v then return nil, err or "missing" end
  return v
end
function D.keepalive(o) return o:set_keepalive(10000, 10) end
function D.reused(o) return o:get_reused_times() end
""",
    "mysql": """
local mysql = require "resty.mysql"
local D = {}
function D.connect(port)
  local o = mysql:new()
  o:set_timeout(@TIMEOUT@)
  local ok, err = o:connect({ host = "127.0.0.1", port = port, user = "native",
                              password = "nativepw", database = "testdb" })
  if not ok then return nil, err end
  return o
end
function D.setup(o)
  assert(o:query("CREATE TABLE IF NOT EXISTS faults_kv (k VARCHAR(100) PRIMARY KEY, "
                 .. "v VARCHAR(255))"))
end
function D.write(o, k, v)
  local res, err = o:query("REPLACE INTO faults_kv VALUES (" .. ngx.quote_sql_str(k) .. ", "
                           .. ngx.quote_sql_str(v) .. ")")
  if not res then return nil, err end
  return true
end
function D.read(o, k)
  local res, err = o:query("SELECT v FROM faults_kv WHERE k = " .. ngx.quote_sql_str(k))
  if not res then return nil, err end
  if not res[1] then return nil, "missing" end
  return res[1].v
end
function D.keepalive(o) return o:set_keepalive(10000, 10) end
function D.reused(o) return o:get_reused_times() end
function D.cleanup(o) assert(o:query("DELETE FROM faults_kv")) end
""",
    "beanstalkd": """
local beanstalkd = require "resty.beanstalkd"
local D = {}
local ids = {}
function D.connect(port)
  local o = beanstalkd:new()
  o:set_timeout(@TIMEOUT@)
  local ok, err = o:connect("127.0.0.1", port, { use = "faults" })
  if not ok then return nil, err end
  return o
end
function D.write(o, k, v)
  local id, err = o:put(v)
  if not id then return nil, err end
  ids[k] = id
  return true
end
function D.read(o, k)
  local id, body = o:peek(ids[k])
  if not id then return nil, body end
  return body
end
function D.keepalive(o) return o:set_keepalive(10000, 10) end
function D.reused(o) return o:get_reused_times() end
function D.cleanup(o) for _, id in pairs(ids) do assert(o:delete(id)) end end
""",
}

DRIVERS = list(ADAPTERS)


def server_port(request, driver):
    """The session server of the driver (its fixture started on first use)."""
    name = {"mysql": "mariadb"}.get(driver, driver)
    return request.getfixturevalue(name).port


# ---------------------------------------------------------------------------------------
# a fault on a reply

REPLY_SCRIPT = """
local T = "@TAG@"
local o = assert(D.connect(@PORT@))
if D.setup then D.setup(o) end
P("write", D.write(o, T, "v-" .. T))
checkpoint("arm")
P("fault", D.read(o, T))
P("again", D.read(o, T))
P("keepalive", D.keepalive(o))
local o2 = assert(D.connect(@PORT@))
P("retry", D.reused(o2), D.read(o2, T))
P("keepalive", D.keepalive(o2))
local o3 = assert(D.connect(@PORT@))
P("pooled", D.reused(o3), D.read(o3, T))
if D.cleanup then D.cleanup(o3) end
o3:close()
"""

# fault -> what the runtime says to the driver ("truncate" cuts a reply in the middle of its
# value, "truncate_hold" stalls it there; "delay" holds it past the timeout, "delay_short"
# well within it)
REPLY_FAULTS = {
    "reset": (("reset",), "connection reset by peer"),
    "reset_server": (("reset_server",), "closed"),
    "close": (("close",), "closed"),
    "fin": (("fin",), "closed"),
    "blackhole": (("blackhole",), "timeout"),
    "delay": (("delay", 5.0), "timeout"),
    "delay_short": (("delay", 0.05), None),
    "truncate": (("truncate", "CUT"), "closed"),
    "truncate_hold": (("truncate", "CUT", {"hold": True}), "timeout"),
}

# where a truncate cuts each driver's reply to D.read: inside the value (redis "$N\r\n" line
# is 5 bytes, memcached's "VALUE <key> 0 N\r\n" about 40, beanstalkd's "FOUND <id> N\r\n"
# about 15), for MySQL inside the first column definition packet (after the 5-byte column
# count packet)
CUT = {"redis": 9, "memcached": 45, "mysql": 20, "beanstalkd": 20}


def reply_errors(driver, err, fault):
    """(the failed read's message, the broken object's answer to the next call, to
    set_keepalive) as each driver words them."""
    cut = fault.startswith("truncate")
    if driver == "redis":
        return err, "closed", "closed"
    if driver == "memcached":
        return err, f"connection closed after error: {err}", f"connection closed after error: {err}"
    if driver == "mysql":
        step = "read packet content" if cut else "receive packet header"
        return (f"failed to {step}: {err}",
                "failed to send query: cannot send query in the current context: nil",
                "cannot be reused in the current connection state: nil")
    if driver == "beanstalkd":
        msg = f"failed to read {'job body' if cut else 'reply'}: {err}"
        return msg, f"connection closed after error: {msg}", f"connection closed after error: {msg}"
    raise AssertionError(driver)


@pytest.mark.parametrize("fault", list(REPLY_FAULTS))
@pytest.mark.parametrize("driver", DRIVERS)
def test_reply_fault(request, script, fault_proxy, driver, fault):
    """A fault on the reply to a read: nil, err; the broken object keeps answering nil, err;
    set_keepalive refuses it; the next connect is a fresh connection (the proxy counts 2 in
    all) and reads the right value; that one, pooled, serves the last connect."""
    proxy = fault_proxy(server_port(request, driver))
    tag = f"rf:{driver}:{fault}"
    s = script(ADAPTERS[driver] + REPLY_SCRIPT, PORT=proxy.port, TAG=tag)
    s.expect("arm", STEP_TIMEOUT)
    (name, *args), err = REPLY_FAULTS[fault]
    kw = args.pop() if args and isinstance(args[-1], dict) else {}
    args = [CUT[driver] if a == "CUT" else a for a in args]
    proxy.arm(name, *args, **kw)
    t0 = time.monotonic()
    s.resume()
    out = s.finish()
    value = f"v-{tag}"
    if err is None:       # a short delay: the read succeeds, the connection is pooled
        assert out == ["write|true", "arm", f"fault|{value}", f"again|{value}", "keepalive|1",
                       f"retry|1|{value}", "keepalive|1", f"pooled|2|{value}"]
        assert proxy.connections == 1
    else:
        failed, again, refused = reply_errors(driver, err, fault)
        assert out == ["write|true", "arm", f"fault|nil|{failed}", f"again|nil|{again}",
                       f"keepalive|nil|{refused}", f"retry|0|{value}", "keepalive|1",
                       f"pooled|1|{value}"]
        assert proxy.connections == 2
    assert proxy.fired_names() == [name]
    if name == "delay" and err:
        # the timeout, not the delay, ended the read (the held reply would come after 5 s)
        assert time.monotonic() - t0 < 4.5


# ---------------------------------------------------------------------------------------
# the server side goes away while the connection sits idle in the keepalive pool

IDLE_SCRIPT = """
local T = "@TAG@"
local o = assert(D.connect(@PORT@))
if D.setup then D.setup(o) end
P("write", D.write(o, T, "v-" .. T))
P("keepalive", D.keepalive(o))
checkpoint("idle")            -- the test breaks the pooled connection
ngx.sleep(0.1)                -- the loop runs: the pool sees the FIN / RST
o = assert(D.connect(@PORT@))
P("noticed", D.reused(o), D.read(o, T))
P("keepalive", D.keepalive(o))
checkpoint("idle again")      -- broken again; this time connect comes before the loop runs
o = assert(D.connect(@PORT@))
P("stale", D.reused(o), D.read(o, T))
P("keepalive", D.keepalive(o))
o = assert(D.connect(@PORT@))
P("retry", D.reused(o), D.read(o, T))
if D.cleanup then D.cleanup(o) end
o:close()
"""

# fault -> the error of the request on the stale connection and whether its send failed
# ("fin" and "close" leave EOF in the receive queue; after an RST the send fails;
# "reset_server" sends FIN, and the RST the request draws comes after the EOF)
IDLE_FAULTS = {
    "fin": ("closed", False),
    "close": ("closed", False),
    "reset": ("connection reset by peer", True),
    "reset_server": ("closed", False),
}


def stale_errors(driver, err, on_send):
    """(the failed request's message, set_keepalive's refusal) as each driver words them."""
    if driver == "redis":
        return err, "closed"
    if driver == "memcached":
        return err, f"connection closed after error: {err}"
    if driver == "mysql":
        msg = ("failed to send query: failed to send packet: " if on_send
               else "failed to receive packet header: ") + err
        return msg, "cannot be reused in the current connection state: nil"
    if driver == "beanstalkd":
        msg = f"failed to {'send' if on_send else 'read reply'}: {err}"
        return msg, f"connection closed after error: {msg}"
    raise AssertionError(driver)


@pytest.mark.parametrize("fault", list(IDLE_FAULTS))
@pytest.mark.parametrize("driver", DRIVERS)
def test_idle_pooled_connection_broken(request, script, fault_proxy, driver, fault):
    """The proxy breaks the connection idle in the pool. With a turn of the loop before the
    next connect the pool has dropped it (a fresh connection); without, the stale one is
    handed out (reused 1), its request fails, it is not pooled again, and the retry is a
    fresh connection with the right value: 3 connections in all."""
    proxy = fault_proxy(server_port(request, driver))
    tag = f"idle:{driver}:{fault}"
    value = f"v-{tag}"
    s = script(ADAPTERS[driver] + IDLE_SCRIPT, PORT=proxy.port, TAG=tag)
    s.expect("idle", STEP_TIMEOUT)
    assert proxy.now(fault) == 1
    s.resume()
    s.expect("idle again", STEP_TIMEOUT)
    assert proxy.now(fault) == 1
    s.resume()
    out = s.finish()
    failed, refused = stale_errors(driver, *IDLE_FAULTS[fault])
    assert out == ["write|true", "keepalive|1", "idle", f"noticed|0|{value}", "keepalive|1",
                   "idle again", f"stale|1|nil|{failed}", f"keepalive|nil|{refused}",
                   f"retry|0|{value}"]
    assert proxy.connections == 3
    assert proxy.fired_names() == [fault, fault]


# ---------------------------------------------------------------------------------------
# a fault as the connection is accepted

CONNECT_SCRIPT = """
local T = "@TAG@"
local o = assert(D.connect(@PORT@))
if D.setup then D.setup(o) end
P("write", D.write(o, T, "v-" .. T))
o:close()
checkpoint("arm")             -- the next three connections: reset, close, blackhole
for _ = 1, 3 do
  local c, err = D.connect(@PORT@)
  if c then
    P("connect", "ok", D.read(c, T))
    c:close()
  else
    P("connect", nil, err)
  end
end
o = assert(D.connect(@PORT@))
P("after", D.reused(o), D.read(o, T))
if D.cleanup then D.cleanup(o) end
o:close()
"""


# fault at accept -> the lines each driver may print. An RST right after the accept reaches
# the client before or after its connect() saw the connection established (the proxy's
# thread and the script's loop race), so connect() or the first request fails, both with
# "connection reset by peer"; a FIN or silence leaves connect() to the first exchange.
def connect_outcomes(driver):
    reset = "connection reset by peer"
    if driver in ("redis", "memcached"):
        return [{f"connect|nil|{reset}", f"connect|ok|nil|{reset}"},
                {"connect|ok|nil|closed"}, {"connect|ok|nil|timeout"}]
    if driver == "mysql":
        return [{f"connect|nil|failed to connect: {reset}",
                 f"connect|nil|failed to receive packet header: {reset}"},
                {"connect|nil|failed to receive packet header: closed"},
                {"connect|nil|failed to receive packet header: timeout"}]
    if driver == "beanstalkd":
        setup = "connect|nil|failed to set up the tubes: "
        return [{f"connect|nil|failed to connect: {reset}", f"{setup}failed to send: {reset}",
                 f"{setup}failed to read reply: {reset}"},
                {f"{setup}failed to read reply: closed"}, {f"{setup}failed to read reply: timeout"}]
    raise AssertionError(driver)


@pytest.mark.parametrize("driver", DRIVERS)
def test_connect_faults(request, script, fault_proxy, driver):
    proxy = fault_proxy(server_port(request, driver))
    tag = f"conn:{driver}"
    s = script(ADAPTERS[driver] + CONNECT_SCRIPT, PORT=proxy.port, TAG=tag)
    s.expect("arm", STEP_TIMEOUT)
    for fault in ("reset", "close", "blackhole"):
        proxy.arm(fault, when="next_conn")
    s.resume()
    out = s.finish()
    assert out[:2] == ["write|true", "arm"] and out[5:] == [f"after|0|v-{tag}"], out
    for line, allowed in zip(out[2:5], connect_outcomes(driver)):
        assert line in allowed, out
    assert proxy.connections == 5
    assert proxy.fired_names() == ["reset", "close", "blackhole"]


# ---------------------------------------------------------------------------------------
# a pipeline's replies cut in the middle

PIPELINES = {
    "redis": """
local function pipeline(o, keys)
  o:init_pipeline()
  for _, k in ipairs(keys) do o:get(k) end
  local res, err = o:commit_pipeline()
  if not res then return nil, err end
  local vals = {}
  for i, v in ipairs(res) do vals[i] = v end
  return vals
end
""",
    "memcached": """
local function pipeline(o, keys)
  o:init_pipeline()
  for _, k in ipairs(keys) do o:get(k) end
  local res, err = o:commit_pipeline()
  if not res then return nil, err end
  local vals = {}
  for i, r in ipairs(res) do vals[i] = r[1] end
  return vals
end
""",
}

PIPELINE_SCRIPT = """
local keys, want = {}, {}
local o = assert(D.connect(@PORT@))
for i = 1, 20 do
  keys[i], want[i] = "@TAG@:" .. i, string.rep("x", 200) .. i
  assert(D.write(o, keys[i], want[i]))
end
checkpoint("arm")
P("commit", pipeline(o, keys))
P("keepalive", D.keepalive(o))
o = assert(D.connect(@PORT@))
local vals, err = pipeline(o, keys)
P("retry", D.reused(o), vals and table.concat(vals, ",") == table.concat(want, ","), err)
o:close()
"""


@pytest.mark.parametrize("hold", [False, True], ids=["close", "hold"])
@pytest.mark.parametrize("driver", list(PIPELINES))
def test_pipeline_truncated(request, script, fault_proxy, driver, hold):
    """20 values of ~200 bytes in one pipeline, the replies cut after 1000 bytes (then closed,
    or stalled): commit_pipeline fails as a whole, the connection is not pooled, and a new
    one gets all 20 values right."""
    proxy = fault_proxy(server_port(request, driver))
    s = script(ADAPTERS[driver] + PIPELINES[driver] + PIPELINE_SCRIPT, PORT=proxy.port,
               TAG=f"pipe:{driver}:{hold}")
    s.expect("arm", STEP_TIMEOUT)
    proxy.arm("truncate", 1000, hold=hold)
    s.resume()
    out = s.finish()
    err = "timeout" if hold else "closed"
    refused = "closed" if driver == "redis" else f"connection closed after error: {err}"
    assert out == ["arm", f"commit|nil|{err}", f"keepalive|nil|{refused}", "retry|0|true|nil"]
    assert proxy.connections == 2


# ---------------------------------------------------------------------------------------
# the server killed and restarted on the same port under a stream of requests

STREAM_PRELUDE = """
local function now() ngx.update_time() return ngx.now() end
local function mark(line) io.stdout:write(line, "\\n") io.stdout:flush() end
-- Runs round(i) -> true, reused | nil, stage, err until 5 rounds succeeded after the first
-- failure (40 s at most). Marks "warm" after 2 good rounds, "refused" at the first refused
-- connect; then prints a summary, how many times the first good connection after the
-- failure had been reused, and each failure as "error|stage|err" (refusals not included).
local function stream(round)
  local before, after, refused, errors, reused_after = 0, 0, 0, {}, nil
  local deadline = now() + 40
  local i = 0
  mark("streaming")
  while after < 5 and now() < deadline do
    i = i + 1
    local ok, a, b = round(i)
    if ok and #errors == 0 then
      before = before + 1
      if before == 2 then mark("warm") end
    elseif ok then
      after = after + 1
      if after == 1 then reused_after = a end
    elseif a == "connect" and b:find("connection refused", 1, true) then
      refused = refused + 1
      if refused == 1 then mark("refused") end
      ngx.sleep(0.02)
    else
      errors[#errors + 1] = a .. "|" .. b
    end
  end
  P("before", before > 0, "refused", refused > 0, "after", after, "reused", reused_after)
  for _, e in ipairs(errors) do P("error", e) end
end
"""

REDIS_STREAM = """
local redis = require "resty.redis"
local N = 50
local function connect()
  local red = redis:new()
  red:set_timeout(5000)
  local ok, err = red:connect("127.0.0.1", @PORT@)
  if not ok then return nil, err end
  return red
end
-- a second connection idle in the pool all along: the kill must not leave it there
local a, b = assert(connect()), assert(connect())
assert(a:set_keepalive(10000, 10)) assert(b:set_keepalive(10000, 10))
stream(function(i)
  local red, err = connect()
  if not red then return nil, "connect", err end
  red:init_pipeline()
  for j = 1, N do red:set("st:" .. i .. ":" .. j, i * 1000 + j) end
  red:blpop("st:nolist", 0.2)            -- the server holds the rest of the pipeline here
  for j = 1, N do red:get("st:" .. i .. ":" .. j) end
  local res
  res, err = red:commit_pipeline()
  if not res then return nil, "pipeline", err end
  for j = 1, N do
    if res[j] ~= "OK" or res[N + 1] ~= ngx.null or res[N + 1 + j] ~= tostring(i * 1000 + j) then
      return nil, "pipeline", "wrong reply in round " .. i
    end
  end
  local reused = red:get_reused_times()
  assert(red:set_keepalive(10000, 10))
  return true, reused
end)
"""

MYSQL_STREAM = """
local mysql = require "resty.mysql"
local function connect()
  local db = mysql:new()
  db:set_timeout(5000)
  local ok, err = db:connect({ host = "127.0.0.1", port = @PORT@, user = "native",
                               password = "nativepw", database = "testdb" })
  if not ok then return nil, err end
  return db
end
local a, b = assert(connect()), assert(connect())
assert(a:set_keepalive(10000, 10)) assert(b:set_keepalive(10000, 10))
stream(function(i)
  local db, err = connect()
  if not db then return nil, "connect", err end
  local res
  res, err = db:query("SELECT SLEEP(0.2) AS s, " .. i .. " * 7 AS v")
  if not res then return nil, "query", err end
  if res[1].s ~= 0 or res[1].v ~= i * 7 then return nil, "query", "wrong row in round " .. i end
  local reused = db:get_reused_times()
  assert(db:set_keepalive(10000, 10))
  return true, reused
end)
"""


def redis_blocked_clients(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "clients"], capture_output=True,
                         text=True, timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":")[1])
    return 0


def mariadb_sleeping(svc):
    r = subprocess.run(["mariadb", "--no-defaults", f"--socket={svc.path}", "-uroot", "-N", "-e",
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                        "WHERE INFO LIKE 'SELECT SLEEP%'"],
                       capture_output=True, text=True, timeout=10)
    return r.stdout.strip() == "1"


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.01)


def kill_and_restart(script, svc, code, busy, what):
    """Streams code at svc, kills svc once busy(svc) says the server holds a request (after 2
    good rounds), restarts it on the same port after the script saw a refused connect."""
    try:
        s = script(STREAM_PRELUDE + code, PORT=svc.port)
        s.expect("warm", STEP_TIMEOUT)
        wait_for(lambda: busy(svc), 20, what)
        svc.kill()
        s.expect("refused", STEP_TIMEOUT)
        svc.restart()
        out = s.finish()
    finally:
        svc.stop()
    assert out[:4] == ["streaming", "warm", "refused",
                       "before|true|refused|true|after|5|reused|0"], out
    return out[4:]


def check_errors(errors, in_flight, dying):
    """The first failure is the request the server held when it died. Others (if any) are
    the dying server's last moments: a connection it accepted as it died, or the other
    pooled connection taken before the loop saw its FIN (the in-flight failure and that FIN
    come in one batch of events; nginx hands such a connection out too)."""
    assert errors and errors[0] in in_flight, errors
    assert all(e in dying for e in errors[1:]) and len(errors) <= 3, errors


def test_redis_killed_mid_pipeline_and_restarted(script):
    """A private redis-server is SIGKILLed while it holds a pipeline (its client blocked in
    BLPOP between the SETs and the GETs): that commit_pipeline fails, connects are refused
    while it is down, and after the restart on the same port the stream goes on with the
    right replies, on a fresh connection (the pooled ones of the dead server were dropped)."""
    errors = kill_and_restart(script, services.start_redis(), REDIS_STREAM,
                              lambda svc: redis_blocked_clients(svc.port) == 1,
                              "a pipeline held in BLPOP")
    gone = {"error|pipeline|closed", "error|pipeline|connection reset by peer"}
    check_errors(errors, gone, gone)


def test_mariadb_killed_mid_query_and_restarted(script):
    """A private mariadbd is SIGKILLed while it runs a query of the stream (SELECT SLEEP):
    that query fails, connects are refused while it is down, and after the restart on the
    same port (crash recovery included) the stream goes on with the right rows, on a fresh
    connection."""
    errors = kill_and_restart(script, services.start_mariadb(), MYSQL_STREAM, mariadb_sleeping,
                              "a query running in the server")
    in_flight = {f"error|query|failed to receive packet header: {e}"
                 for e in ("closed", "connection reset by peer")}
    at_connect = {e.replace("|query|", "|connect|") for e in in_flight}
    check_errors(errors, in_flight, in_flight | at_connect)
