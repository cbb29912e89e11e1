"""resty.redis (redis/resty/redis.lua) against the session redis-server, plus servers of its own
(ACL users, kill/restart) and fake servers for hostile replies.

The Lua helpers P / PC / Q come from tests/lua/socket/prelude.lua, R / S / PS from
tests/lua/redis/prelude.lua (S renders replies exactly: tables, ngx.null, escaped bytes).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import services
from helpers.socket_lua import PRELUDE

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "lua", "redis", "prelude.lua")) as _f:
    REDIS_PRELUDE = _f.read()


def rl(run_lua_ok, code, host="127.0.0.1", port=0, **subst):
    """Runs the preludes + code with @KEY@ replaced; returns stdout's lines."""
    subst.setdefault("HOST", host)
    subst.setdefault("PORT", port)
    code = PRELUDE + REDIS_PRELUDE + code
    for k, v in subst.items():
        code = code.replace(f"@{k}@", str(v))
    lines = run_lua_ok(code).splitlines()
    if os.environ.get("RDUMP"): print("\nDUMP", repr(lines))
    return lines


def cli(port, *args, **kw):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=10, **kw).stdout.strip()


class OwnRedis:
    """A redis-server of the test's own, with extra config lines, restartable on the same port."""

    def __init__(self, conf_lines=(), port=None):
        self.dir = tempfile.mkdtemp(prefix="cosocket-redis-test.")
        self.port = port or services.free_port()
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write(f"bind 127.0.0.1\nport {self.port}\ndir {self.dir}\nsave \"\"\nappendonly no\n")
            for line in conf_lines:
                f.write(line + "\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                 text=True).stdout
            if "PONG" in out or "NOAUTH" in out:
                return
            time.sleep(0.02)
        raise RuntimeError("own redis did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# replies

def test_reply_types(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
red:del("rt:s", "rt:l", "rt:missing")
PS(red:set("rt:s", "v"))                 -- status
PS(red:ping())
PS(red:get("rt:s"))                      -- bulk
PS(red:get("rt:missing"))                -- nil bulk
PS(red:incr("rt:n"), red:incrby("rt:n", -5))  -- integers
PS(red:rpush("rt:l", "a", "b", "c"))
PS(red:lrange("rt:l", 0, -1))            -- array
PS(red:lrange("rt:missing", 0, -1))      -- empty array
PS(red:blpop("rt:missing", 0.01))        -- nil array
PS(red:get("rt:l"))                      -- server error
PS(red:nosuchcommand())
PS(red:mget("rt:s", "rt:missing"))       -- array with a nil
PS(red:eval("return {1, 'x', {2}, redis.error_reply('boom')}", 0))  -- nested, error inside
PS(red:set("rt:big", 2^60), red:get("rt:big"))
PS(red:set("rt:f", 1.5), red:incrbyfloat("rt:f", 1))
red:del("rt:n")
""", port=redis.port)
    assert out == [
        '"OK"', '"PONG"', '"v"', 'null', '1|-4', '3',
        '{"a","b","c"}', '{}', 'null',
        'false|"WRONGTYPE Operation against a key holding the wrong kind of value"',
        'false|"ERR unknown command \'nosuchcommand\', with args beginning with: "',
        '{"v",null}', '{1,"x",{2},{false,"ERR boom"}}',
        '"OK"|"1152921504606846976"', '"OK"|"2.5"']


def test_return_counts(run_lua_ok, redis):
    # how many values each call returns, as lua-resty-redis 0.27 (checked in nginx + ngx_lua
    # with Debian's lua-nginx-redis): a reply is one value, a server error or a failure two
    out = rl(run_lua_ok, """
local function N(...) return select("#", ...) end
local red = redis:new()
P("set_timeout", N(red:set_timeout(1000)), "connect", N(red:connect("127.0.0.1", @PORT@)))
P("status", N(red:set("rc:s", "v")), "bulk", N(red:get("rc:s")), "nil", N(red:get("rc:none")),
  "int", N(red:incr("rc:n")), "array", N(red:mget("rc:s", "rc:none")),
  "empty", N(red:lrange("rc:none", 0, -1)), "nilarr", N(red:blpop("rc:none", 0.01)),
  "error", N(red:incr("rc:s")), "ping", N(red:ping()), "hmset", N(red:hmset("rc:h", {a = 1})),
  "args3", N(red:mset("rc:a", 1, "rc:b", 2)), "noargs", N(red:dbsize()))
P("init", N(red:init_pipeline()), "queued", N(red:get("rc:s")), N(red:set("rc:s", "v")),
  "commit", N(red:commit_pipeline()), "nopipe", N(red:commit_pipeline()),
  "cancel", N(red:init_pipeline(2)), N(red:cancel_pipeline()))
P("multi", N(red:multi()), "queued", N(red:get("rc:s")), "exec", N(red:exec()))
P("sub", N(red:subscribe("rc:ch")), "unsub", N(red:unsubscribe("rc:ch")),
  "notsub", N(red:read_reply()), "keepalive", N(red:set_keepalive()))
local r2 = redis:new()
P("closed", N(r2:get("rc:s")), N(r2:close()), "refused", N(r2:connect("127.0.0.1", 1)))
red:connect("127.0.0.1", @PORT@)
red:hello(3)
P("resp3", N(red:hgetall("rc:h")), N(red:get("rc:s")), N(red:get("rc:none")), N(red:incr("rc:s")))
red:close()
""", port=redis.port)
    assert out == [
        "set_timeout|0|connect|1",
        "status|1|bulk|1|nil|1|int|1|array|1|empty|1|nilarr|1|error|2|ping|1|hmset|1"
        "|args3|1|noargs|1",
        "init|0|queued|0|0|commit|1|nopipe|2|cancel|0|0",
        "multi|1|queued|1|exec|1",
        "sub|1|unsub|2|notsub|2|keepalive|1",
        "closed|2|2|refused|2",
        "resp3|1|1|1|2"]


def test_command_families(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
red:del("cf:h", "cf:s", "cf:z", "cf:x", "cf:l", "cf:hl")
PS(red:hset("cf:h", "f1", "v1", "f2", "v2"), red:hget("cf:h", "f1"), red:hexists("cf:h", "f3"))
PS(red:hmset("cf:h", {f3 = "v3"}), red:hmget("cf:h", "f1", "f3", "nope"))
PS(red:array_to_hash(red:hgetall("cf:h")))
PS(red:sadd("cf:s", "a", "b", "a"), red:sismember("cf:s", "b"), red:scard("cf:s"))
PS(red:zadd("cf:z", 1, "one", 2.5, "two"), red:zrange("cf:z", 0, -1, "WITHSCORES"), red:zscore("cf:z", "two"))
PS(red:lpush("cf:l", "x", "y"), red:lpop("cf:l"), red:llen("cf:l"))
local id = red:xadd("cf:x", "*", "k", "v")
PS(type(id), red:xlen("cf:x"), (red:xrange("cf:x", "-", "+")[1][2]))
PS(red:expire("cf:s", 100), red:ttl("cf:s") > 0, red:type("cf:z"))
PS(red:multi(), red:set("cf:t", 1), red:incr("cf:t"), red:exec())
PS(red:eval("return redis.call('get', KEYS[1])", 1, "cf:t"))
PS(red:object("encoding", "cf:t"), red:config("get", "maxmemory-policy"))
PS(red:SET("cf:upper", "u"), red:Get("cf:upper"))
""", port=redis.port)
    assert out == [
        '2|"v1"|0', '"OK"|{"v1","v3",null}',
        '{f1="v1",f2="v2",f3="v3"}', '2|1|2',
        '2|{"one","1","two","2.5"}|"2.5"', '2|"y"|1',
        '"string"|1|{"k","v"}', '1|true|"zset"',
        '"OK"|"QUEUED"|"QUEUED"|{"OK",2}', '"2"',
        '"int"|{"maxmemory-policy","noeviction"}', '"OK"|"u"']


def test_binary_safe_and_10mb(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
local v = table.concat(all) .. "\\r\\n$3\\r\\n*1\\r\\n\\0"
PS(red:set("bin:" .. v, v))
local got = red:get("bin:" .. v)
P(got == v, #got)
local big = string.rep("0123456789\\r\\n\\0\\255", 10 * 1024 * 1024 / 14 + 1)
P(red:set("bin:big", big), #big > 10 * 1024 * 1024)
local back = red:get("bin:big")
P(back == big, red:strlen("bin:big") == #big)
local r = red:mget("bin:big", "bin:" .. v)
P(r[1] == big, r[2] == v)
red:del("bin:big", "bin:" .. v)
""", port=redis.port)
    assert out == ['"OK"', 'true|267', 'OK|true', 'true|true', 'true|true']


def test_many_arguments(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
local t = {}
for i = 1, 100000 do t["f" .. i] = i end
P(red:hmset("many:h", t), red:hlen("many:h"), red:hget("many:h", "f77777"))
local args = { "many:s" }
for i = 1, 5000 do args[#args + 1] = "m" .. i end
P(red:sadd(unpack(args)), red:scard("many:s"), red:del("many:h", "many:s"))
""", port=redis.port)
    assert out == ["OK|100000|77777", "5000|5000|2"]


def test_module_prefix_and_unknown_commands(run_lua_ok, redis):
    out = rl(run_lua_ok, """
redis.register_module_prefix("json")
local red = R()
PS(red:json():get("x"))          -- sends JSON.GET
PS(red:xlen("nostream"), red:strlen("nostream"))
PS(type(red.frobnicate), red._sock ~= nil, red._nothing)
""", port=redis.port)
    assert out[0].startswith('false|"ERR unknown command \'json.get\'')
    assert out[1:] == ['0|0', '"function"|true|nil']


def test_arguments_and_connect_errors(run_lua_ok, redis, tcp_port_closed):
    out = rl(run_lua_ok, """
local red = redis:new()
PC(red.connect, red, 1)
PC(red.connect, red, "127.0.0.1", "x")
P(red:connect("127.0.0.1", @CLOSED@))
red:set_timeout(300)
P(red:connect("127.0.0.1", @PORT@, { ssl = true, ssl_verify = false }))  -- TLS to a plain port
red:set_timeout(2000)
PC(red.set, red, "k", {})
P(red:connect("127.0.0.1", @PORT@), red:set("n1", 12), red:get("n1"), red:set("n2", true), red:get("n2"))
P(red:close(), red:get("n1"))
""", port=redis.port, CLOSED=tcp_port_closed)
    assert out == [
        "err|bad argument #1 host: string expected, got number",
        "err|bad argument #2 port: number expected, got string",
        "nil|connection refused", "nil|failed to do ssl handshake: timeout",
        "err|bad argument #2 to 'set': table given",
        "1|OK|12|OK|true", "1|nil|closed"]


# ---------------------------------------------------------------------------------------
# pipelines

def test_pipeline_1000(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
red:init_pipeline(1000)
for i = 1, 500 do red:set("pl:" .. i, i) red:get("pl:" .. i) end
local res, err = red:commit_pipeline()
local ok = #res == 1000
for i = 1, 500 do ok = ok and res[2 * i - 1] == "OK" and res[2 * i] == tostring(i) end
P(ok, #res)
red:init_pipeline()
red:set("pl:x", "s") red:lpush("pl:x", 1) red:get("pl:nope") red:incr("pl:x")
PS(red:commit_pipeline())
P(red:commit_pipeline())
red:init_pipeline() red:set("pl:c", 1) red:cancel_pipeline()
PS(red:get("pl:c"))
red:init_pipeline() PS(red:commit_pipeline())
""", port=redis.port)
    assert out == [
        "true|1000",
        '{"OK",{false,"WRONGTYPE Operation against a key holding the wrong kind of value"},'
        'null,{false,"ERR value is not an integer or out of range"}}',
        "nil|no pipeline", "null", "{}"]


# ---------------------------------------------------------------------------------------
# pub/sub

def test_pubsub_two_connections(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local sub = R()
PS(sub:subscribe("ch1"))
PS(sub:psubscribe("pat.*", "other.*"))
PS(sub:get("x"))                                   -- refused while subscribed
PS(sub:set_keepalive())
local pub = ngx.thread.spawn(function()
  local p = R()
  for i = 1, 3 do p:publish("ch1", "m" .. i) end
  p:publish("pat.a", "pm")
  ngx.sleep(0.3)                                   -- an idle period longer than the timeout
  p:publish("ch1", "late")
  p:close()
end)
for i = 1, 4 do PS(sub:read_reply()) end
sub:set_timeout(100)
PS(sub:read_reply())                               -- timeout, connection kept
sub:set_timeout(2000)
PS(sub:read_reply())
ngx.thread.wait(pub)
PS(sub:ping())
PS(sub:unsubscribe())
PS(sub:punsubscribe())
PS(sub:read_reply())
PS(sub:get("x"), sub:set_keepalive())
""", port=redis.port)
    assert out == [
        '{"subscribe","ch1",1}',
        '{{"psubscribe","pat.*",2},{"psubscribe","other.*",3}}',
        'nil|"cannot run \'get\' in subscribed state: only (p)subscribe, (p)unsubscribe, ping, '
        'quit and reset are allowed"',
        'nil|"subscribed state"',
        '{"message","ch1","m1"}|nil', '{"message","ch1","m2"}|nil', '{"message","ch1","m3"}|nil',
        '{"pmessage","pat.*","pat.a","pm"}|nil',
        'nil|"timeout"', '{"message","ch1","late"}|nil',
        '{"pong",""}', '{"unsubscribe","ch1",2}|nil',
        '{{"punsubscribe","pat.*",1},{"punsubscribe","other.*",0}}|nil',
        'nil|"not subscribed"', 'null|1']


# ---------------------------------------------------------------------------------------
# connections: keepalive, unix, auth

def test_keepalive_reuse_counts(run_lua_ok, redis):
    out = rl(run_lua_ok, """
for i = 1, 4 do
  local red = R()
  P(red:get_reused_times(), red:ping(), red:set_keepalive(10000, 10))
end
local red = R()
P(red:get_reused_times(), red:multi(), red:set_keepalive())
P(red:discard(), red:set_keepalive())
local other = R()
P(other:get_reused_times(), other:get_reused_times() == 5, other:close(), other:set_keepalive())
local fresh = redis:new()
P(fresh:get_reused_times())
""", port=redis.port)
    assert out == ["0|PONG|1", "1|PONG|1", "2|PONG|1", "3|PONG|1", "4|OK|nil|in transaction",
                   "OK|1", "5|true|1|nil|closed", "nil|closed"]


def test_unix_socket(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = redis:new()
P(red:connect("unix:@PATH@"), red:set("ux", "1"), red:get("ux"), red:set_keepalive())
red = redis:new()
P(red:connect("unix:@PATH@", { pool = "ux" }), red:get_reused_times())
red = redis:new()
P(red:connect("unix:@PATH@"), red:get_reused_times())
""", PATH=redis.path)
    assert out == ["1|OK|1|1", "1|0", "1|1"]


@pytest.fixture(scope="module")
def acl_redis():
    srv = OwnRedis(["requirepass s3cret", "user alice on >alicepw ~* &* +@all",
                    "user bob on >bobpw ~bob:* -@all +get +set +ping"])
    yield srv
    srv.stop()


def test_auth_and_acl(run_lua_ok, acl_redis):
    out = rl(run_lua_ok, """
local red = R()
PS(red:get("x"))
PS(red:auth("wrong"))
PS(red:auth("s3cret"), red:set("k", "v"))
red:close()
red = R()
PS(red:auth("alice", "alicepw"), red:acl("whoami"))
red:close()
red = R()
PS(red:auth("bob", "bobpw"), red:set("bob:1", "x"), red:set("other", "x"), red:del("bob:1"))
red:close()
-- credentials in connect opts: AUTH only on a fresh connection, a pool per user
for i = 1, 2 do
  local c = redis:new()
  P(c:connect("127.0.0.1", @PORT@, { username = "alice", password = "alicepw" }),
    c:get_reused_times(), c:acl("whoami"), c:set_keepalive())
end
local c = redis:new()
P(c:connect("127.0.0.1", @PORT@, { password = "s3cret", db = 2 }), c:get_reused_times(), c:acl("whoami"))
c = redis:new()
P(c:connect("127.0.0.1", @PORT@, { username = "bob", password = "nope" }))
""", port=acl_redis.port)
    assert out == [
        'false|"NOAUTH Authentication required."',
        'false|"WRONGPASS invalid username-password pair or user is disabled."',
        '"OK"|"OK"', '"OK"|"alice"',
        '"OK"|"OK"|false|false|"NOPERM this user has no permissions to run the \'del\' command"',
        "1|0|alice|1", "1|1|alice|1", "1|0|default",
        "nil|failed to authenticate: WRONGPASS invalid username-password pair or user is disabled."]


# ---------------------------------------------------------------------------------------
# faults

def test_hostile_replies(run_lua_ok, fake_server):
    cases = [b"$99999999999\r\n", b"*99999999999\r\n", b"$-5x\r\n", b"?what\r\n",
             b"$5\r\nabc", b"$3\r\nabcXY", b"*3\r\n:1\r\n", b":12ab\r\n", b"\r\n",
             b"%2\r\n+a\r\n", b"*2000000000000\r\n"]
    servers = [fake_server([("read_until", b"\r\nk\r\n"), ("reply", c), ("close",)])
               for c in cases]
    ports = ",".join(str(s.port) for s in servers)
    out = rl(run_lua_ok, """
for _, port in ipairs({@PORTS@}) do
  local red = redis:new()
  red:set_timeout(2000)
  assert(red:connect("127.0.0.1", port))
  local res, err = red:get("k")
  P(res, err, red:set_keepalive())
end
""", PORTS=ports)
    assert out == [
        'nil|protocol error: bulk length too large: "$99999999999"|nil|closed',
        'nil|protocol error: too many elements: "*99999999999"|nil|closed',
        'nil|protocol error: bad bulk length: "$-5x"|nil|closed',
        'nil|protocol error: unknown reply type: "?what"|nil|closed',
        "nil|closed|nil|closed",
        'nil|protocol error: bulk string not terminated by CRLF: "$3"|nil|closed',
        "nil|closed|nil|closed",
        'nil|protocol error: bad integer: ":12ab"|nil|closed',
        'nil|protocol error: empty reply line: ""|nil|closed',
        "nil|closed|nil|closed",
        'nil|protocol error: too many elements: "*2000000000000"|nil|closed']


def test_split_and_endless_lines(run_lua_ok, fake_server):
    """Replies cut anywhere by TCP (CR and LF in different segments, a bulk string's header,
    data and CRLF apart) are read whole; a line without end is refused at 16 MB, closed."""
    split = fake_server([("read_until", b"\r\nk\r\n"), ("reply", b"+PO"), ("delay", 0.05),
                         ("reply", b"NG\r"), ("delay", 0.05), ("reply", b"\n$1"), ("delay", 0.05),
                         ("reply", b"0\r\n01234"), ("delay", 0.05), ("reply", b"56789\r"),
                         ("delay", 0.05), ("reply", b"\n:4"), ("delay", 0.05), ("reply", b"2\n"),
                         ("stall",)])
    endless = fake_server([("read_until", b"\r\nk\r\n"),
                           ("reply", b"+" + b"x" * (17 * 1024 * 1024)), ("stall",)])
    out = rl(run_lua_ok, """
local red = redis:new()
red:set_timeout(5000)
assert(red:connect("127.0.0.1", @SPLIT@))
red:init_pipeline() red:get("k") red:get("k") red:get("k")
PS(red:commit_pipeline())
P(red:set_keepalive())
red = redis:new()
red:set_timeout(5000)
assert(red:connect("127.0.0.1", @ENDLESS@))
local res, err = red:get("k")
P(res, err, red:set_keepalive())
""", SPLIT=split.port, ENDLESS=endless.port)
    assert out == ['{"PONG","0123456789",42}', "1",
                   'nil|protocol error: line too long: "+' + "x" * 39 + '..."|nil|closed']


def test_stalled_server_times_out_not_pooled(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"ping\r\n"), ("reply", b"+PONG\r\n"),
                       ("read_until", b"ping\r\n"), ("reply", b"$10\r\nab"), ("stall",)])
    out = rl(run_lua_ok, """
local red = redis:new()
red:set_timeout(1000)  -- the fake server is a Python thread: room for a loaded machine
P(red:connect("127.0.0.1", @P@), red:ping())
local t0 = ngx.now()
P(red:ping())
P(red:set_keepalive(), red:ping())
red = redis:new()
red:set_timeout(1000)
P(red:connect("127.0.0.1", @P@), red:get_reused_times())
""", P=srv.port)
    assert out == ["1|PONG", "nil|timeout", "nil|nil|closed", "1|0"]
    assert srv.connections == 2


def test_server_killed_mid_pipeline(run_lua, tmp_path):
    srv = OwnRedis()
    try:
        script = (PRELUDE + REDIS_PRELUDE + """
local red = R()
red:init_pipeline()
for i = 1, 5 do red:set("k" .. i, "v") end
red:blpop("nolist", 3)                  -- keeps the server busy until it is killed
for i = 1, 5 do red:get("k" .. i) end
io.stdout:write("sent\\n") io.stdout:flush()
local res, err = red:commit_pipeline()
P(res, err, red:set_keepalive())
ngx.flush(true) io.stdout:flush()
io.read("*l")
red = redis:new()
red:set_timeout(2000)
P(red:connect("127.0.0.1", @PORT@), red:get_reused_times(), red:set("after", "1"), red:get("after"))
""").replace("@HOST@", "127.0.0.1").replace("@PORT@", str(srv.port))
        path = tmp_path / "kill.lua"
        path.write_text(script)
        from conftest import cosocket_path
        proc = subprocess.Popen([cosocket_path(), str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stdout.readline()
        assert line == b"sent\n", proc.stderr.read()
        time.sleep(0.2)
        srv.kill()
        first = proc.stdout.readline().decode().strip()
        srv.start()
        out, err = proc.communicate(b"go\n", timeout=10)
        assert proc.returncode == 0, err
        assert first in ("nil|closed|nil|closed", "nil|connection reset by peer|nil|closed"), first
        assert out.decode().splitlines() == ["1|0|OK|1"]
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------
# RESP3

def test_resp3_mapping(run_lua_ok, redis):
    out = rl(run_lua_ok, """
local red = R()
red:del("r3:h", "r3:s", "r3:z")
red:hset("r3:h", "a", "1", "b", "2") red:sadd("r3:s", "x") red:zadd("r3:z", 1.5, "m")
PS(red:hgetall("r3:h"))                    -- RESP2: flat array
local hello = red:hello(3)
P(hello.proto, hello.server)
PS(red:hgetall("r3:h"))                    -- map -> table
PS(red:smembers("r3:s"))                   -- set -> array
PS(red:zscore("r3:z", "m"))                -- double -> number
PS(red:get("r3:none"))                     -- null -> ngx.null
PS(red:eval("redis.setresp(3); return true", 0), red:eval("redis.setresp(3); return false", 0))
PS(red:eval("redis.setresp(3); return {double = 3.25}", 0))
PS(red:eval("redis.setresp(3); return {big_number = '123456789012345678901234567890'}", 0))
PS(red:get("r3:h"))
PS(red:set("r3:t", "v"), red:get("r3:t"))
PS(red:info("server"):sub(1, 8))          -- verbatim "txt:" dropped
PS(red:array_to_hash(red:hello(2)).proto, red:hgetall("r3:h"))
""", port=redis.port)
    assert out == [
        '{"a","1","b","2"}', "3|redis",
        '{a="1",b="2"}', '{"x"}', '1.5', 'null',
        'true|false', '3.25', '"123456789012345678901234567890"',
        'false|"WRONGTYPE Operation against a key holding the wrong kind of value"',
        '"OK"|"v"', '"# Server"', '2|{"a","1","b","2"}']


def test_resp3_push_and_attributes(run_lua_ok, redis, fake_server):
    srv = fake_server([("read_until", b"ping\r\n"),
                       ("reply", b">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n_\r\n"
                                 b"|1\r\n+ttl\r\n:3\r\n+PONG\r\n"),
                       ("read_until", b"get\r\n$1\r\nk\r\n"),
                       ("reply", b"!9\r\nERR oops!\r\n=9\r\nmkd:hello\r\n,inf\r\n#x\r\n"),
                       ("close",)])
    out = rl(run_lua_ok, """
local red = R()
P(red:hello(3).proto)
PS(red:subscribe("c3"))
PS(red:get("r3:none"))                           -- commands allowed while subscribed in RESP3
local pub = R()
PS(pub:publish("c3", "hi"))
PS(red:read_reply())
PS(red:unsubscribe("c3"), red:get("r3:none"))
-- a fake server: a push before the reply, an attribute, blob error, verbatim, inf, bad boolean
local f = redis:new()
f:set_timeout(2000)
f:connect("127.0.0.1", @F@)
f._resp = 3
PS(f:ping(), f:get_attributes())
PS(f:read_reply())
f:init_pipeline() f:get("k") f:get("k") f:get("k") f:get("k")
PS(f:commit_pipeline())
""", port=redis.port, F=srv.port)
    assert out == [
        "3", '{"subscribe","c3",1}', 'null', '1', '{"message","c3","hi"}|nil',
        '{"unsubscribe","c3",0}|null',
        '"PONG"|{ttl=3}', '{"invalidate",{"k"},null}',
        'nil|"protocol error: bad boolean: \\034#x\\034"']
