"""resty.memcached over TLS against a real `memcached -Z` (the `memcached_tls` fixture): the
connect options ssl / ssl_verify / server_name / ssl_client_cert / ssl_client_priv_key (an
extension: lua-resty-memcached only has the sslhandshake passthrough, which works too), the
pool naming, pooled TLS connections, verification failures."""
import hashlib

from test_memcached import mc


def mct(run_lua_ok, code, certs, port, flags=None, **subst):
    if flags is None:
        flags = ["--ssl-trusted-certificate", certs.ca]
    subst.setdefault("CERT", certs.client_crt)
    subst.setdefault("KEY", certs.client_key)
    code = r"""
local function TM(extra)
  local m = assert(memcached:new())
  m:set_timeout(3000)
  local opts = { ssl = true, server_name = "localhost" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local ok, err = m:connect("127.0.0.1", @PORT@, opts)
  return ok and m or nil, err
end
""" + code
    return mc(run_lua_ok, code, port, subst, flags=flags, timeout=60)


def test_get_set_multi_get_over_tls(run_lua_ok, tls_certs, memcached_tls):
    out = mct(run_lua_ok, r"""
local m = assert(TM())
P(m:flush_all())
P(m:set("tk", "hello", 0, 7))
P(m:get("tk"))
local v = string.rep("\0\r\nEND\r\n\255", 100000)        -- 800 kB, many TLS records
P(m:set("tbig", v), m:get("tbig") == v)
P(m:add("tk", "x"), m:incr("tn", 1))
P(m:set("tn", 5), m:incr("tn", 3), m:version() ~= nil)
local keys = {}
for i = 1, 300 do keys[i] = "tm" .. i; assert(m:set(keys[i], "v" .. i)) end
keys[#keys + 1] = "tm-missing"
local res = assert(m:get(keys))
local ok, n = true, 0
for k, r in pairs(res) do n = n + 1; ok = ok and r[1] == "v" .. k:sub(3) end
P(ok, n, res["tm-missing"])
""", tls_certs, memcached_tls.port)
    assert out == ["1", "1", "hello|7|nil", "1|true", "nil|nil|NOT_FOUND",
                   "1|8|true", "true|300|nil"]


def test_pipeline_over_tls(run_lua_ok, tls_certs, memcached_tls):
    out = mct(run_lua_ok, r"""
local m = assert(TM())
m:init_pipeline()
for i = 1, 200 do m:set("tp" .. i, i) end
for i = 1, 200 do m:get("tp" .. i) end
m:delete("tp1") m:get("tp1")
local res, err = m:commit_pipeline()
local ok = #res == 402
for i = 1, 200 do ok = ok and res[i][1] == 1 and res[200 + i][1] == tostring(i) end
P(ok, #res, err, res[401][1], res[402][1])
""", tls_certs, memcached_tls.port)
    assert out == ["true|402|nil|1|nil"]


def test_pool_reuse_over_tls(run_lua_ok, tls_certs, memcached_tls):
    # memcached's "stats conns" lists the open connections: a pooled TLS connection is the
    # same connection (same fd) on the next connect, with no new handshake
    out = mct(run_lua_ok, r"""
local m = assert(TM())
P(m:get_reused_times())
local function myfd(mm)
  -- the connection that asks is the one in state conn_parse_cmd (or conn_new_cmd)
  local st = assert(mm:stats("conns"))
  local fds = {}
  for _, line in ipairs(st) do
    local fd, state = line:match("^STAT (%d+):state (%S+)")
    if fd and state:find("parse_cmd", 1, true) then fds[#fds + 1] = fd end
  end
  return table.concat(fds, ",")
end
local fd = myfd(m)
local hs0 = assert(m:stats())
P(m:set_keepalive(10000, 4))
for i = 1, 3 do
  m = assert(TM())
  P(m:get_reused_times(), myfd(m) == fd, m:set("pk", i), m:set_keepalive(10000, 4))
end
-- a plain connect to the TLS port is not handed the pooled TLS connection
local plain = assert(memcached:new()); plain:set_timeout(300)
P(plain:connect("127.0.0.1", @PORT@), plain:get_reused_times())
P(plain:version())
-- a TLS connect with another verification setting gets its own connection
m = assert(TM({ ssl_verify = false }))
P(m:get_reused_times())
m:close()
m = assert(TM())
P(m:get_reused_times(), m:get("pk"))
""", tls_certs, memcached_tls.port)
    assert out[:5] == ["0", "1", "1|true|1|1", "2|true|1|1", "3|true|1|1"]
    assert out[5] == "1|0"
    assert out[6].startswith("nil|")           # the TLS server does not read plain text
    assert out[7:] == ["0", "4|3|0|nil"]


def test_verification_failures(run_lua_ok, tls_certs, memcached_tls):
    out = mct(run_lua_ok, r"""
local m = assert(memcached:new())
m:set_timeout(3000)
P(m:connect("127.0.0.1", @PORT@, { ssl = true, server_name = "example.com", ssl_verify = true }))
P(m:get("x"))
P(m:connect("127.0.0.1", @PORT@, { ssl = true, server_name = "example.com", ssl_verify = false }))
P(m:set("x", 1), m:close())
P(m:connect("127.0.0.1", @PORT@, { ssl = true, server_name = 1 }))
P(m:connect("127.0.0.1", @PORT@, { ssl = true, ssl_client_priv_key = "k" }))
P(m:connect("127.0.0.1", @PORT@, { ssl = true, ssl_client_cert = "c", ssl_client_priv_key = "k" }))
P(memcached.tls_pool_name("127.0.0.1", 11211, { ssl = true, ssl_client_cert = "C", ssl_client_priv_key = "K" }))
""", tls_certs, memcached_tls.port)
    assert out[:4] == ["nil|failed to do ssl handshake: certificate host mismatch", "nil|nil|closed",
                       "1", "1|1"]
    assert out[4] == "nil|bad server_name option: string expected, got number"
    assert out[5] == "nil|ssl_client_cert and ssl_client_priv_key must be given together"
    assert out[6].startswith("nil|failed to set ssl client certificate: ")
    assert out[7] == "127.0.0.1:11211/ssl//default/" + hashlib.md5(b"C\0K").hexdigest()
    # the CA not trusted: verification is the runtime's default
    out = mct(run_lua_ok, r"""
local m = assert(memcached:new())
m:set_timeout(3000)
P(m:connect("127.0.0.1", @PORT@, { ssl = true }))
""", tls_certs, memcached_tls.port, flags=[])
    # memcached sends only its own certificate: the issuer is unknown
    assert out == ["nil|failed to do ssl handshake: 20: unable to get local issuer certificate"]


def test_sslhandshake_passthrough(run_lua_ok, tls_certs, memcached_tls):
    # lua-resty-memcached's way: connect, then memc:sslhandshake(...) (own pool name)
    out = mct(run_lua_ok, r"""
local m = assert(memcached:new())
m:set_timeout(3000)
P(m:connect("127.0.0.1", @PORT@, { pool = "mine" }))
P(type(m:sslhandshake(nil, "localhost", true)))
P(m:set("ph", "v"), m:get("ph"))
P(m:set_keepalive())
P(m:connect("127.0.0.1", @PORT@, { pool = "mine" }), m:get_reused_times())
P(m:sslhandshake(false, "localhost", true))      -- already encrypted: at once
P(m:get("ph"))
m:close()
P(m:connect("127.0.0.1", @PORT@, { pool = "mine2" }))
P(m:sslhandshake(false, "wrong.example", true))
P(m:get("ph"))
""", tls_certs, memcached_tls.port)
    assert out == ["1", "userdata", "1|v|0|nil", "1", "1|1", "true", "v|0|nil", "1",
                   "nil|certificate host mismatch", "nil|nil|connection closed after error: "
                   "certificate host mismatch"]


def test_ring_over_tls(run_lua_ok, tls_certs, memcached_tls):
    # resty.memcached.ring with ssl = true, over two real `memcached -Z`: every key stored and
    # read back over TLS, both servers used (curr_items, asked over TLS), and the same ring
    # without ssl cannot talk to them (all servers fail: the operation errors)
    import tlsenv
    second = tlsenv.start_memcached_tls(tls_certs)
    try:
        out = mct(run_lua_ok, r"""
local ring = require "resty.memcached.ring"
local servers = {"127.0.0.1:@PORT@", "127.0.0.1:@PORT2@"}
local r = ring.new{ servers = servers, ssl = true, server_name = "localhost", timeout = 3000 }
local keys = {}
for i = 1, 200 do keys[i] = "rk" .. i; assert(r:set(keys[i], "v" .. i)) end
local res, errs = r:get_multi(keys)
local ok, n = true, 0
for k, v in pairs(res) do n = n + 1; ok = ok and v[1] == "v" .. k:sub(3) end
P(ok, n, errs)
local items = {}
for i, port in ipairs{@PORT@, @PORT2@} do
  local m = memcached:new(); m:set_timeout(3000)
  assert(m:connect("127.0.0.1", port, { ssl = true, server_name = "localhost" }))
  local st = assert(m:stats())
  for _, line in ipairs(st) do
    local v = line:match("^STAT curr_items (%d+)")
    if v then items[i] = tonumber(v) end
  end
end
P(items[1] > 0, items[2] > 0, items[1] + items[2] >= 200)
local plain = ring.new{ servers = servers, timeout = 300, dead_timeout = 60 }
local v, _, err = plain:get("rk1")    -- value, flags, err (as resty.memcached's get)
P(v, err ~= nil)
""", tls_certs, memcached_tls.port, PORT2=second.port)
    finally:
        second.stop()
    assert out == ["true|200|nil", "true|true|true", "nil|true"]
