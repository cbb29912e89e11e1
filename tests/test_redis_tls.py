"""resty.redis over TLS (connect opts ssl, ssl_verify, server_name, ssl_client_cert,
ssl_client_priv_key) against real redis-servers with a tls-port: `redis_tls` (client
certificates optional) and `redis_mtls` (client certificates required). The test CA is
trusted with `cosocket --ssl-trusted-certificate`.

The Lua helpers P / PC come from tests/lua/socket/prelude.lua, S / PS from
tests/lua/redis/prelude.lua.
"""
import os

from helpers.socket_lua import PRELUDE

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "lua", "redis", "prelude.lua")) as _f:
    REDIS_PRELUDE = _f.read()

# the redis prelude's R() needs @HOST@/@PORT@; these tests connect by hand
TLS_PRELUDE = r"""
local CERT, KEY = "@CERT@", "@KEY@"
local function readf(p) local f = assert(io.open(p)) local d = f:read("*a") f:close() return d end
local function T(port, extra)
  local red = assert(redis:new())
  red:set_timeout(3000)
  local opts = { ssl = true, server_name = "localhost" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local ok, err = red:connect("127.0.0.1", port, opts)
  return ok and red or nil, err
end
"""


def rtls(run_lua_ok, code, certs, flags=None, **subst):
    subst.setdefault("HOST", "127.0.0.1")
    subst.setdefault("PORT", 0)
    subst.setdefault("CERT", certs.client_crt)
    subst.setdefault("KEY", certs.client_key)
    code = PRELUDE + REDIS_PRELUDE + TLS_PRELUDE + code
    for k, v in subst.items():
        code = code.replace(f"@{k}@", str(v))
    if flags is None:
        flags = ["--ssl-trusted-certificate", certs.ca]
    lines = run_lua_ok(code, flags=flags, timeout=60).splitlines()
    if os.environ.get("RDUMP"):
        print("\nDUMP", repr(lines))
    return lines


def test_get_set_binary_and_big_values_over_tls(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
local red = assert(T(@TLS@))
P(red:set("tls:k", "hello"), red:get("tls:k"))
local v = string.rep("\0\r\n\255abc", 200000)          -- 1.4 MB, crosses many TLS records
P(red:set("tls:big", v), red:get("tls:big") == v, red:strlen("tls:big"))
PS(red:hmset("tls:h", { a = "1" }), red:hgetall("tls:h"))
PS(red:get("tls:none"), red:incr("tls:k"))
""", tls_certs, TLS=redis_tls.tls_port)
    assert out[:3] == ["OK|hello", "OK|true|1400000", '"OK"|{"a","1"}']
    assert out[3].startswith('null|false|"ERR value is not an integer')


def test_pipeline_over_tls(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
local red = assert(T(@TLS@))
red:init_pipeline(2000)
for i = 1, 1000 do red:set("tlspl:" .. i, i) red:get("tlspl:" .. i) end
local res, err = red:commit_pipeline()
local ok = #res == 2000
for i = 1, 1000 do ok = ok and res[2 * i - 1] == "OK" and res[2 * i] == tostring(i) end
P(ok, #res, err)
""", tls_certs, TLS=redis_tls.tls_port)
    assert out == ["true|2000|nil"]


def test_pubsub_over_tls(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
local sub = assert(T(@TLS@))
local pub = assert(T(@TLS@))
PS(sub:subscribe("tlschan"))
local t = ngx.thread.spawn(function()
  ngx.sleep(0.05)
  return pub:publish("tlschan", "over tls")
end)
PS(sub:read_reply())
PS(ngx.thread.wait(t))
PS(sub:unsubscribe("tlschan"))
P(sub:set_keepalive())
""", tls_certs, TLS=redis_tls.tls_port)
    assert out == ['{"subscribe","tlschan",1}', '{"message","tlschan","over tls"}|nil', "true|1",
                   '{"unsubscribe","tlschan",0}|nil', "1"]


def test_verification_failures_are_connect_errors(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
-- wrong name: the certificate is for localhost / 127.0.0.1
local red = assert(redis:new())
red:set_timeout(3000)
P(red:connect("127.0.0.1", @TLS@, { ssl = true, server_name = "example.com", ssl_verify = true }))
P(red:get("x"))                                       -- the failed connection is closed
-- no server_name: the connect address is checked (127.0.0.1 is in the SAN)
P(red:connect("127.0.0.1", @TLS@, { ssl = true, ssl_verify = true }), red:ping())
red:close()
-- verification off explicitly: any name goes
P(red:connect("127.0.0.1", @TLS@, { ssl = true, server_name = "example.com", ssl_verify = false }),
  red:ping())
red:close()
-- TLS to the plain port: the server does not talk TLS (it waits for a command line)
red:set_timeout(300)
P(red:connect("127.0.0.1", @PLAIN@, { ssl = true, server_name = "localhost" }))
-- bad options are refused before connecting
P(red:connect("127.0.0.1", @TLS@, { ssl = true, server_name = 12 }))
P(red:connect("127.0.0.1", @TLS@, { ssl = true, ssl_client_cert = "x" }))
P(red:connect("127.0.0.1", @TLS@, { ssl = true, ssl_client_cert = "junk", ssl_client_priv_key = "junk" }))
""", tls_certs, TLS=redis_tls.tls_port, PLAIN=redis_tls.port)
    assert out[0] == "nil|failed to do ssl handshake: certificate host mismatch"
    assert out[1] == "nil|closed"
    assert out[2] == "1|PONG"
    assert out[3] == "1|PONG"
    assert out[4].startswith("nil|failed to do ssl handshake: ")
    assert out[5] == "nil|bad server_name option: string expected, got number"
    assert out[6] == "nil|ssl_client_cert and ssl_client_priv_key must be given together"
    assert out[7].startswith("nil|failed to set ssl client certificate: ")


def test_untrusted_without_the_ca_and_secure_by_default(run_lua_ok, tls_certs, redis_tls):
    # no --ssl-trusted-certificate: the system store does not know the test CA, and with no
    # ssl_verify option the runtime verifies (its default)
    code = r"""
local red = assert(redis:new())
red:set_timeout(3000)
P(red:connect("127.0.0.1", @TLS@, { ssl = true, server_name = "localhost" }))
P(red:connect("127.0.0.1", @TLS@, { ssl = true, server_name = "localhost", ssl_verify = false }))
P(red:ping())
"""
    out = rtls(run_lua_ok, code, tls_certs, flags=[], TLS=redis_tls.tls_port)
    assert out[0].startswith("nil|failed to do ssl handshake: 19: self-signed certificate")
    assert out[1:] == ["1", "PONG"]
    # --ssl-verify=off turns the default off
    out = rtls(run_lua_ok, code, tls_certs, flags=["--ssl-verify=off"], TLS=redis_tls.tls_port)
    assert out == ["1", "1", "PONG"]


def test_mutual_tls(run_lua_ok, tls_certs, redis_mtls):
    out = rtls(run_lua_ok, r"""
local ssl = require "ngx.ssl"
-- without a client certificate the server ends the connection during or right after the
-- handshake (TLS 1.3 sends the alert after the client's Finished)
local red, err = T(@TLS@)
if red then
  P("connected", red:ping())
else
  P("refused", err)
end
-- PEM text
red = assert(T(@TLS@, { ssl_client_cert = readf(CERT), ssl_client_priv_key = readf(KEY) }))
P(red:ping(), red:get_reused_times())
P(red:set_keepalive())
-- parsed objects (ngx.ssl)
local c = assert(ssl.parse_pem_cert(readf(CERT)))
local k = assert(ssl.parse_pem_priv_key(readf(KEY)))
red = assert(T(@TLS@, { ssl_client_cert = c, ssl_client_priv_key = k }))
P(red:ping(), red:get_reused_times())
-- the PEM one again: from its pool (same certificate text -> same pool)
red = assert(T(@TLS@, { ssl_client_cert = readf(CERT), ssl_client_priv_key = readf(KEY) }))
P(red:ping(), red:get_reused_times())
""", tls_certs, TLS=redis_mtls.tls_port)
    # either way no command gets through without a certificate
    assert out[0].startswith("refused|failed to do ssl handshake: ") or \
        out[0].startswith("connected|nil|"), out
    assert out[1:] == ["PONG|0", "1", "PONG|0", "PONG|1"]


def test_pool_reuse_over_tls_without_a_new_handshake(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
local red = assert(T(@TLS@))
P(red:client("setname", "tlspooled"), red:get_reused_times())
local id = red:client("id")
P(red:set_keepalive(10000, 4))
for i = 1, 3 do
  red = assert(T(@TLS@))
  P(red:get_reused_times(), red:client("id") == id, red:client("getname"))
  P(red:set_keepalive(10000, 4))
end
""", tls_certs, TLS=redis_tls.tls_port)
    assert out == ["OK|0", "1", "1|true|tlspooled", "1", "2|true|tlspooled", "1",
                   "3|true|tlspooled", "1"]


def test_plain_and_tls_pools_kept_apart(run_lua_ok, tls_certs, redis_tls):
    # the same redis-server on its plain port and its TLS port is "the same host:port" only
    # when the ports match, so use a unix-less trick: a plain connection and a TLS one to
    # the TLS port's address share host:port; the pool names must still differ
    out = rtls(run_lua_ok, r"""
local redis = require "resty.redis"
P(redis.pool_name("127.0.0.1", 6379, nil))
P(redis.pool_name("127.0.0.1", 6379, { ssl = true, server_name = "localhost" }))
P(redis.pool_name("127.0.0.1", 6379, { ssl = true, ssl_verify = false }))
P(redis.pool_name("127.0.0.1", 6379, { ssl = true, ssl_verify = true, username = "u", password = "p", db = 2 }))
P(redis.pool_name("unix:/tmp/r.sock", nil, { ssl = true, server_name = "h", ssl_verify = true,
                                             ssl_client_cert = "C", ssl_client_priv_key = "K" }))
-- real connections: a TLS one pooled, then a plain connect to the same host:port (the TLS
-- port) must not be handed the TLS connection (it opens its own: plain text to a TLS port
-- fails), and a TLS connect with other settings opens its own too
local red = assert(T(@TLS@))
local id = red:client("id")
P(red:set_keepalive(10000, 4))
local plain = assert(redis:new())
plain:set_timeout(1000)
P(plain:connect("127.0.0.1", @TLS@), plain:get_reused_times())
local res, err = plain:ping()
P(res, err ~= nil)
plain:close()
local other = assert(T(@TLS@, { server_name = "127.0.0.1" }))
P(other:get_reused_times(), other:client("id") ~= id)
other:close()
red = assert(T(@TLS@))
P(red:get_reused_times(), red:client("id") == id)
-- and the other way round: a plain pooled connection is never given to an ssl connect
local p1 = assert(redis:new()); p1:set_timeout(2000)
assert(p1:connect("127.0.0.1", @PLAIN@))
local pid = p1:client("id")
P(p1:set_keepalive(10000, 4))
local t = assert(redis:new()); t:set_timeout(300)
P(t:connect("127.0.0.1", @PLAIN@, { ssl = true, server_name = "localhost" }))
local p2 = assert(redis:new()); p2:set_timeout(2000)
assert(p2:connect("127.0.0.1", @PLAIN@))
P(p2:get_reused_times(), p2:client("id") == pid)
""", tls_certs, TLS=redis_tls.tls_port, PLAIN=redis_tls.port)
    assert out[:5] == [
        "127.0.0.1:6379",
        "127.0.0.1:6379/ssl/localhost/default",
        "127.0.0.1:6379/ssl//noverify",
        "127.0.0.1:6379/u/2/ssl//verify",
        "unix:/tmp/r.sock/ssl/h/verify/" + __import__("hashlib").md5(b"C\0K").hexdigest()]
    assert out[5] == "1"
    assert out[6] == "1|0"
    assert out[7] == "nil|true"
    assert out[8] == "0|true"
    assert out[9] == "1|true"
    assert out[10] == "1"
    assert out[11].startswith("nil|failed to do ssl handshake: ")
    assert out[12] == "1|true"


def test_auth_and_db_over_tls(run_lua_ok, tls_certs, redis_tls):
    out = rtls(run_lua_ok, r"""
local red = assert(T(@TLS@, { db = 3 }))
P(red:set("tls:db3", "x"), red:get_reused_times())
P(red:set_keepalive())
red = assert(T(@TLS@, { db = 3 }))
P(red:get("tls:db3"), red:get_reused_times())
red = assert(T(@TLS@))
PS(red:get("tls:db3"))
-- AUTH over TLS: the default user has no password, so a wrong one is refused
local bad = assert(redis:new()); bad:set_timeout(2000)
P(bad:connect("127.0.0.1", @TLS@, { ssl = true, server_name = "localhost", password = "nope" }))
""", tls_certs, TLS=redis_tls.tls_port)
    assert out[:4] == ["OK|0", "1", "x|1", "null"]
    assert out[4].startswith("nil|failed to authenticate: ")


def test_cluster_and_sentinel_take_the_tls_options(run_lua_ok, tls_certs, redis_tls):
    # a single node stands in for a cluster node / a data node here: the connect options
    # (and so the pool name) must carry TLS; the commands go over TLS
    out = rtls(run_lua_ok, r"""
local cluster = require "resty.redis.cluster"
local c = cluster:new({ nodes = { "127.0.0.1:@TLS@" }, ssl = true, server_name = "localhost",
                        ssl_verify = true })
local red, err = c:refresh()
P(red, err)                                  -- not a cluster: CLUSTER SLOTS fails over TLS
local sentinel = require "resty.redis.sentinel"
local s = sentinel:new({ sentinels = { { "127.0.0.1", @TLS@ } }, master_name = "m",
                         sentinel_ssl = true, ssl = true, server_name = "localhost" })
P(s:get_master())                            -- a plain redis answers SENTINEL with an error
""", tls_certs, TLS=redis_tls.tls_port)
    assert out[0].startswith("nil|failed to load the cluster slot map: ") and \
        out[0].endswith("ERR This instance has cluster support disabled"), out
    assert out[1].startswith("nil|sentinel 127.0.0.1:") and "ERR unknown command 'sentinel'" in out[1]
