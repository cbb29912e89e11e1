"""resty.mysql over TLS (connect{ ssl = true, ssl_verify, server_name, ssl_client_cert,
ssl_client_priv_key }) against a real MariaDB started with --ssl-ca/--ssl-cert/--ssl-key
(`mariadb_tls`), and the session `mariadb` (no TLS) for "ssl disabled on server".
Whether a session is encrypted is asked of the server: SHOW SESSION STATUS 'Ssl_cipher' /
'Ssl_version'; handshakes are counted by SHOW GLOBAL STATUS 'Ssl_accepts'."""
from helpers.socket_lua import lua

MYT = r'''
local mysql = require "resty.mysql"
local function readf(p) local f = assert(io.open(p)) local d = f:read("*a") f:close() return d end
local function C(extra, user, pass)
  local db = assert(mysql:new())
  db:set_timeout(5000)
  local o = { user = user or "native", password = pass or "nativepw", database = "testdb",
              host = "127.0.0.1", port = @PORT@, ssl = true, ssl_verify = true,
              server_name = "localhost" }
  for k, v in pairs(extra or {}) do o[k] = v end
  if o.ssl == "no" then o.ssl = nil end
  local ok, err, errno, sqlstate = db:connect(o)
  if not ok then return nil, err, errno, sqlstate end
  return db
end
local function status(db, scope, name)
  local res, err = db:query("show " .. scope .. " status like '" .. name .. "'")
  if not res then return "ERR " .. tostring(err) end
  return res[1] and res[1].Value or "none"
end
'''


def myt(run_lua_ok, svc, certs, code, flags=None, **subst):
    s = {"PORT": svc.port, "CERT": certs.client_crt, "KEY": certs.client_key}
    s.update(subst)
    if flags is None:
        flags = ["--ssl-trusted-certificate", certs.ca]
    return lua(run_lua_ok, MYT + code, s, flags=flags, timeout=60)


def test_query_over_tls(run_lua_ok, mariadb_tls, tls_certs):
    out = myt(run_lua_ok, mariadb_tls, tls_certs, r'''
local db = assert(C())
local v = status(db, "session", "Ssl_version")
P(v == "TLSv1.3" or v == "TLSv1.2", status(db, "session", "Ssl_cipher") ~= "")
local res = assert(db:query("select 1 + 1 as two, 'h\195\169llo' as s, repeat('x', 100000) as big"))
P(res[1].two, res[1].s, #res[1].big)
P(db:query("create temporary table t (id int primary key, v varchar(20))") ~= nil)
local r = assert(db:query("insert into t values (1, 'a'), (2, 'b')"))
P(r.affected_rows)
res = assert(db:query("select v from t order by id"))
P(#res, res[1].v, res[2].v)
P(db:close())
''')
    assert out == ["true|true", "2|h\u00e9llo|100000", "true", "2", "2|a|b", "1"]


def test_prepared_statements_over_tls(run_lua_ok, mariadb_tls, tls_certs):
    out = myt(run_lua_ok, mariadb_tls, tls_certs, r'''
local db = assert(C())
local stmt = assert(db:prepare("select ? + 1 as n, ? as s, cast(? as datetime) as d"))
local res = assert(db:execute(stmt, 41, string.rep("\0\255", 5000), "2024-01-02 03:04:05"))
P(res[1].n, #res[1].s, res[1].s == string.rep("\0\255", 5000), res[1].d)
res = assert(stmt:execute(1, "x", "1999-12-31 23:59:59"))
P(res[1].n, res[1].s, res[1].d)
P(status(db, "session", "Ssl_cipher") ~= "")
P(stmt:close())
''')
    assert out == ["42|10000|true|2024-01-02 03:04:05", "2|x|1999-12-31 23:59:59", "true", "1"]


def test_pool_reuse_over_tls_without_a_second_handshake(run_lua_ok, mariadb_tls, tls_certs):
    out = myt(run_lua_ok, mariadb_tls, tls_certs, r'''
local db = assert(C())
local id = db:query("select connection_id() as id")[1].id
local accepts = status(db, "global", "Ssl_accepts")
P(db:get_reused_times(), db:set_keepalive(10000, 4))
for i = 1, 3 do
  db = assert(C())
  P(db:get_reused_times(), db:query("select connection_id() as id")[1].id == id,
    status(db, "session", "Ssl_cipher") ~= "", status(db, "global", "Ssl_accepts") == accepts)
  -- a prepared statement on the pooled TLS connection
  local stmt = assert(db:prepare("select ? * 2 as d"))
  P(db:execute(stmt, i)[1].d)
  P(db:set_keepalive(10000, 4))
end
''')
    assert out == ["0|1",
                   "1|true|true|true", "2", "1",
                   "2|true|true|true", "4", "1",
                   "3|true|true|true", "6", "1"]


def test_plain_and_tls_pools_kept_apart(run_lua_ok, mariadb_tls, tls_certs):
    out = myt(run_lua_ok, mariadb_tls, tls_certs, r'''
local plain = assert(C({ ssl = "no" }))
P(status(plain, "session", "Ssl_cipher"))
local pid = plain:query("select connection_id() as id")[1].id
P(plain:set_keepalive(10000, 4))
local tls = assert(C())
P(tls:get_reused_times(), status(tls, "session", "Ssl_cipher") ~= "")
local tid = tls:query("select connection_id() as id")[1].id
P(tls:set_keepalive(10000, 4))
-- other TLS settings: another pool
local other = assert(C({ ssl_verify = false }))
P(other:get_reused_times(), other:query("select connection_id() as id")[1].id ~= tid)
other:close()
plain = assert(C({ ssl = "no" }))
P(plain:get_reused_times(), plain:query("select connection_id() as id")[1].id == pid,
  status(plain, "session", "Ssl_cipher"))
tls = assert(C())
P(tls:get_reused_times(), tls:query("select connection_id() as id")[1].id == tid)
''')
    assert out == ["", "1", "0|true", "1", "0|true", "1|true|", "1|true"]


def test_verification_failures(run_lua_ok, mariadb_tls, tls_certs):
    code = r'''
local db, err = C({ server_name = "example.com" })
P(db, err)
db, err = C({ server_name = "example.com", ssl_verify = false })
P(db ~= nil, err)
db, err = C({ ssl_verify = nil, server_name = nil })     -- runtime default; 127.0.0.1 checked
P(db ~= nil, err)
P(C({ server_name = 5 }))
P(C({ ssl_client_cert = "c" }))
'''
    out = myt(run_lua_ok, mariadb_tls, tls_certs, code)
    assert out == ["nil|failed to do ssl handshake: certificate host mismatch", "true|nil",
                   "true|nil", "nil|bad server_name option: string expected, got number|nil|nil",
                   "nil|ssl_client_cert and ssl_client_priv_key must be given together|nil|nil"]
    # the test CA not trusted (the system store): verification fails by default
    out = myt(run_lua_ok, mariadb_tls, tls_certs, code, flags=[])
    assert out[0].startswith("nil|failed to do ssl handshake: 2") or \
        out[0].startswith("nil|failed to do ssl handshake: 19"), out
    assert out[1] == "true|nil"
    assert out[2].startswith("false|failed to do ssl handshake: "), out


def test_server_without_ssl(run_lua_ok, mariadb, tls_certs):
    out = myt(run_lua_ok, mariadb, tls_certs, r'''
local db = assert(mysql:new())
db:set_timeout(5000)
P(db:connect{ host = "127.0.0.1", port = @PORT@, user = "native", password = "nativepw",
              database = "testdb", ssl = true })
P(db:query("select 1"))
P(db:connect{ host = "127.0.0.1", port = @PORT@, user = "native", password = "nativepw",
              database = "testdb" })
P(db:query("select 1 as one")[1].one)
''')
    assert out[0] == "nil|ssl disabled on server|nil|nil"
    assert out[1].startswith("nil|")
    assert out[2:] == ["1", "1"]


def test_require_ssl_and_x509_users(run_lua_ok, mariadb_tls, tls_certs):
    out = myt(run_lua_ok, mariadb_tls, tls_certs, r'''
-- REQUIRE SSL
P(C({ ssl = "no" }, "sslonly", "sslpw"))
local db = assert(C({}, "sslonly", "sslpw"))
P(db:query("select current_user() as u")[1].u, status(db, "session", "Ssl_cipher") ~= "")
db:close()
-- REQUIRE X509: a client certificate from the test CA
P(C({}, "x509user", "x509pw"))
local ssl = require "ngx.ssl"
db = assert(C({ ssl_client_cert = readf("@CERT@"), ssl_client_priv_key = readf("@KEY@") },
              "x509user", "x509pw"))
P(db:query("select current_user() as u")[1].u)
P(db:set_keepalive())
-- parsed objects, and the PEM pool again
db = assert(C({ ssl_client_cert = assert(ssl.parse_pem_cert(readf("@CERT@"))),
                ssl_client_priv_key = assert(ssl.parse_pem_priv_key(readf("@KEY@"))) },
              "x509user", "x509pw"))
P(db:get_reused_times(), db:query("select current_user() as u")[1].u)
db = assert(C({ ssl_client_cert = readf("@CERT@"), ssl_client_priv_key = readf("@KEY@") },
              "x509user", "x509pw"))
P(db:get_reused_times())
''')
    assert out[0].startswith("nil|Access denied for user 'sslonly'@'127.0.0.1'"), out
    assert out[0].endswith("|1045|28000")
    assert out[1] == "sslonly@%|true"
    assert out[2].startswith("nil|Access denied for user 'x509user'@'127.0.0.1'") and \
        out[2].endswith("|1045|28000"), out
    assert out[3:] == ["x509user@%", "1", "0|x509user@%", "1"]
