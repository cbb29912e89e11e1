"""TLS on cosockets: tcpsock:sslhandshake / setclientcert / sslaccept, against real TLS
peers: `openssl s_server`, Python's ssl module and redis-server's tls-port. Expected
strings are OpenResty's (checked with nginx + ngx_lua 0.10.23)."""
import pytest

import tlsenv


@pytest.fixture
def peers():
    started = []

    class P:
        @staticmethod
        def sserver(cert, key, **kw):
            s = tlsenv.SServer(cert, key, **kw)
            started.append(s)
            return s

        @staticmethod
        def echo(cert, key, **kw):
            s = tlsenv.TlsEcho(cert, key, **kw)
            started.append(s)
            return s

        @staticmethod
        def stall():
            s = tlsenv.Stall()
            started.append(s)
            return s
    yield P
    for s in started:
        s.stop()


def trust(certs):
    return ["--ssl-trusted-certificate", certs.ca]


HS = r"""
local port, name, verify = tonumber(arg[1]), arg[2], arg[3]
if name == "-" then name = nil end
if verify == "nil" then verify = nil else verify = verify == "true" end
local s = ngx.socket.tcp()
s:settimeout(3000)
assert(s:connect(arg[4] or "127.0.0.1", port))
local sess, err = s:sslhandshake(nil, name, verify)
ngx.say("hs: ", type(sess), " ", tostring(err))
if sess then
  assert(s:send("hello tls\n"))
  ngx.say("line: ", tostring(s:receive()))
else
  ngx.say("after: ", tostring(select(2, s:send("x"))))
end
"""


def test_handshake_verified_against_s_server(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(HS, srv.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: userdata nil" in out
    assert "line: slt olleh" in out          # s_server -rev reversed the line


def test_untrusted_ca_fails_with_x509_code(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.untrusted_crt, tls_certs.untrusted_key)
    out = run_lua_ok(HS, srv.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: nil 20: unable to get local issuer certificate" in out
    assert "after: closed" in out


def test_secure_by_default(run_lua_ok, tls_certs, peers):
    # no ssl_verify argument: verified (the system store does not know the test CA)
    srv = peers.sserver(tls_certs.server_crt, tls_certs.server_key, naccept=1)
    out = run_lua_ok(HS, srv.port, "localhost", "nil")
    assert "hs: nil 20: unable to get local issuer certificate" in out
    # the same with the CA trusted
    srv = peers.sserver(tls_certs.server_crt, tls_certs.server_key, naccept=1)
    assert "line: slt olleh" in run_lua_ok(HS, srv.port, "localhost", "nil", flags=trust(tls_certs))


def test_verification_off_explicitly_or_by_flag(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.untrusted_crt, tls_certs.untrusted_key)
    out = run_lua_ok(HS, srv.port, "localhost", "false")
    assert "hs: userdata nil" in out and "line: slt olleh" in out
    out = run_lua_ok(HS, srv.port, "localhost", "nil", flags=["--ssl-verify=off"])
    assert "hs: userdata nil" in out and "line: slt olleh" in out
    # an explicit true still verifies under --ssl-verify=off
    out = run_lua_ok(HS, srv.port, "localhost", "true", flags=["--ssl-verify", "off"])
    assert "hs: nil 20: unable to get local issuer certificate" in out


def test_host_name_mismatch(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.wrongname_crt, tls_certs.wrongname_key)
    out = run_lua_ok(HS, srv.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: nil certificate host mismatch" in out
    assert "after: closed" in out
    # the connect host is checked when no server_name is given: 127.0.0.1 is not in it
    out = run_lua_ok(HS, srv.port, "-", "true", flags=trust(tls_certs))
    assert "hs: nil certificate host mismatch" in out
    # the name it does carry passes
    out = run_lua_ok(HS, srv.port, "example.com", "true", flags=trust(tls_certs))
    assert "line: slt olleh" in out


def test_ip_address_and_host_name_checked_without_server_name(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.server_crt, tls_certs.server_key)
    assert "line: slt olleh" in run_lua_ok(HS, srv.port, "-", "true", flags=trust(tls_certs))
    assert "line: slt olleh" in run_lua_ok(HS, srv.port, "-", "true", "localhost", flags=trust(tls_certs))


def test_expired_certificate(run_lua_ok, tls_certs, peers):
    srv = peers.sserver(tls_certs.expired_crt, tls_certs.expired_key)
    out = run_lua_ok(HS, srv.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: nil 10: certificate has expired" in out


def test_not_tls_and_closing_server(run_lua_ok, fake_server, tls_certs):
    garbage = fake_server([("read", 5), ("reply", b"HTTP/1.0 400 Bad Request\r\n\r\n"), ("close",)])
    out = run_lua_ok(HS, garbage.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: nil handshake failed" in out and "after: closed" in out
    closer = fake_server([("read", 5), ("reset",)])
    out = run_lua_ok(HS, closer.port, "localhost", "true", flags=trust(tls_certs))
    assert "hs: nil handshake failed" in out


def test_stalled_handshake_times_out_on_the_connect_timeout(run_lua_ok, peers):
    st = peers.stall()
    out = run_lua_ok(r"""
        local s = ngx.socket.tcp()
        s:settimeouts(300, 5000, 5000)   -- the handshake runs on the connect timeout
        assert(s:connect("127.0.0.1", tonumber(arg[1])))
        local t0 = ngx.now()
        local ok, err = s:sslhandshake(false, "localhost", false)
        ngx.update_time()
        ngx.say(tostring(ok), " ", err, " ", string.format("%.1f", ngx.now() - t0))
        ngx.say("after: ", tostring(select(2, s:receive())))
    """, st.port)
    assert "nil timeout 0.3" in out
    assert "after: closed" in out


def test_client_certificate(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key, client_ca=tls_certs.ca)
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        local function readf(p) local f = assert(io.open(p)); local d = f:read("*a"); f:close(); return d end
        -- without a certificate: TLS 1.3 lets the handshake finish; the server's alert
        -- arrives with the first read
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", port))
        local ok, err = s:sslhandshake(false, "localhost", true)
        local line, rerr
        if ok then s:send("x\n"); line, rerr = s:receive() end
        ngx.say("no cert: ", tostring(ok and line), " ", tostring(err or rerr))
        -- PEM text
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", port))
        ngx.say("set: ", tostring(s:setclientcert(readf(arg[2]), readf(arg[3]))))
        ngx.say("hs: ", tostring(s:sslhandshake(false, "localhost", true)))
        s:send("pem\n"); ngx.say("echo: ", s:receive())
        -- ngx.ssl objects, as in OpenResty
        local ssl = require "ngx.ssl"
        local cert = assert(ssl.parse_pem_cert(readf(arg[2])))
        local key = assert(ssl.parse_pem_priv_key(readf(arg[3])))
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", port))
        ngx.say("set2: ", tostring(s:setclientcert(cert, key)))
        ngx.say("hs2: ", tostring(s:sslhandshake(false, "localhost", true)))
        s:send("obj\n"); ngx.say("echo2: ", s:receive())
        -- argument errors
        ngx.say("e1: ", select(2, s:setclientcert(cert)))
        ngx.say("e2: ", select(2, s:setclientcert(42, key)))
        ngx.say("e3: ", select(2, s:setclientcert(cert, "not a key")))
        ngx.say("e4: ", select(2, ssl.parse_pem_cert("garbage")))
        ngx.say("clear: ", tostring(s:setclientcert()))
    """, srv.port, tls_certs.client_crt, tls_certs.client_key, flags=trust(tls_certs))
    assert "no cert: nil " in out and "certificate required" in out
    assert "set: true" in out and "hs: true" in out and "echo: pem" in out
    assert "set2: true" in out and "hs2: true" in out and "echo2: obj" in out
    assert "e1: client certificate must be supplied with corresponding private key" in out
    assert "e2: bad cert arg" in out and "got number" in out
    assert "e3: bad pkey arg" in out
    assert "e4: PEM_read_bio_X509_AUX() failed" in out
    assert "clear: true" in out


def test_return_values_and_states(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        local s = ngx.socket.tcp(); s:settimeout(3000)
        ngx.say("unconnected: ", select(2, s:sslhandshake()))
        assert(s:connect("127.0.0.1", port))
        ngx.say("false: ", tostring(s:sslhandshake(false, "localhost")))
        local again, err = s:sslhandshake(nil, "localhost")
        ngx.say("again: ", type(again), " ", tostring(err))
        ngx.say("again false: ", tostring(s:sslhandshake(false)))
        ngx.say(tostring(s))
        s:close()
        ngx.say("closed: ", select(2, s:sslhandshake()))
        local ok, e = pcall(s.sslhandshake, s, nil, 42)
        ngx.say("bad name: ", tostring(ok), " ", e)
        local ok, e = pcall(s.sslhandshake, s, nil, nil, nil, nil, 5)
        ngx.say("too many: ", tostring(ok), " ", e)
    """, srv.port, flags=trust(tls_certs))
    assert "unconnected: closed" in out
    assert "false: true" in out
    assert "again: userdata nil" in out
    assert "again false: true" in out
    assert "closed: closed" in out
    assert "bad name: false" in out and "server_name" in out
    assert "too many: false" in out and "expecting 1 ~ 5 arguments" in out


def test_session_reuse_resumes(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        local function round(sess)
          local s = ngx.socket.tcp(); s:settimeout(3000)
          assert(s:connect("127.0.0.1", port))
          local new = assert(s:sslhandshake(sess, "localhost", true))
          assert(s:send("SESSION?\n"))
          local line = assert(s:receive())
          s:close()
          return new, line
        end
        local s1, l1 = round(nil)
        ngx.say("first: ", l1)
        local s2, l2 = round(s1)
        ngx.say("second: ", l2)
        local _, l3 = round(s2)
        ngx.say("third: ", l3)
        local _, l4 = round(nil)
        ngx.say("fresh: ", l4)
    """, srv.port, flags=trust(tls_certs))
    assert "first: reused=False" in out
    assert "second: reused=True" in out
    assert "third: reused=True" in out
    assert "fresh: reused=False" in out
    assert srv.handshakes == 4


def test_pooled_tls_connection_stays_encrypted(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        for i = 1, 3 do
          local s = ngx.socket.tcp(); s:settimeout(3000)
          assert(s:connect("127.0.0.1", port))
          local t0 = ngx.now()
          local sess, err = s:sslhandshake(nil, "localhost", true)
          ngx.say(i, " reused=", s:getreusedtimes(), " hs=", type(sess), " ", tostring(err))
          assert(s:send("round " .. i .. "\n"))
          ngx.say(i, " echo=", s:receive())
          ngx.say(i, " keepalive=", tostring(s:setkeepalive()))
        end
    """, srv.port, flags=trust(tls_certs))
    assert "1 reused=0 hs=userdata nil" in out
    assert "2 reused=1 hs=userdata nil" in out
    assert "3 reused=2 hs=userdata nil" in out
    for i in (1, 2, 3):
        assert f"{i} echo=round {i}" in out and f"{i} keepalive=1" in out
    assert srv.handshakes == 1        # one handshake for three uses


def test_reads_over_tls_behave_as_plain(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(r"""
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", tonumber(arg[1])))
        assert(s:sslhandshake(false, "localhost", true))
        s:send({"line one\r\n", "abcdef", "xyz--END--tail"})
        ngx.say("l: ", s:receive())
        ngx.say("n: ", s:receive(3))
        ngx.say("any: ", s:receiveany(2))
        local it = s:receiveuntil("--END--")
        ngx.say("until: ", it())
        ngx.say("n2: ", s:receive(4))
        -- a read timeout is not fatal, over TLS as over TCP
        s:settimeout(200)
        ngx.say("timeout: ", select(2, s:receive()))
        s:settimeout(3000)
        s:send("after\n")
        ngx.say("after: ", s:receive())
        -- sized receiveuntil
        s:send("0123456789|rest\n")
        local it2 = s:receiveuntil("|")
        local parts = {}
        while true do
          local d, e = it2(4)
          if not d then ngx.say("err ", e) break end
          if d == "" then break end
          parts[#parts + 1] = d
        end
        ngx.say("sized: ", table.concat(parts, ","))
        ngx.say("rest: ", s:receive())
        -- 4 MB both ways, with a reader thread (full duplex)
        local big = string.rep("0123456789abcdef", 262144)
        local th = ngx.thread.spawn(function() return s:receive(#big) end)
        ngx.say("sent: ", s:send(big))
        local ok, got = ngx.thread.wait(th)
        ngx.say("big: ", tostring(got == big))
        -- the peer closes: *a gets the rest
        s:send("last")
        s:settimeout(300)
        ngx.say("last: ", s:receive(4))
    """, srv.port, flags=trust(tls_certs))
    for want in ("l: line one", "n: abc", "any: de", "until: fxyz", "n2: tail", "timeout: timeout",
                 "after: after", "sized: 0123,4567,89", "rest: rest", "sent: 4194304", "big: true",
                 "last: last"):
        assert want in out, want


def test_many_concurrent_tls_connections(run_lua_ok, tls_certs, peers):
    srv = peers.echo(tls_certs.server_crt, tls_certs.server_key)
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        local threads = {}
        for i = 1, 40 do
          threads[i] = ngx.thread.spawn(function()
            local s = ngx.socket.tcp(); s:settimeout(10000)
            assert(s:connect("127.0.0.1", port))
            assert(s:sslhandshake(false, "localhost", true))
            for j = 1, 20 do
              local msg = i .. ":" .. j .. string.rep("x", j * 50)
              assert(s:send(msg .. "\n"))
              local got = assert(s:receive())
              assert(got == msg, "mismatch")
            end
            s:close()
            return true
          end)
        end
        local n = 0
        for i = 1, #threads do
          local ok, r = ngx.thread.wait(threads[i])
          if ok and r then n = n + 1 else ngx.say("failed: ", tostring(r)) end
        end
        ngx.say("done ", n)
    """, srv.port, flags=trust(tls_certs), timeout=60)
    assert "done 40" in out
    assert srv.handshakes == 40


def test_real_redis_over_tls(run_lua_ok, tls_certs, redis_tls):
    out = run_lua_ok(r"""
        local port = tonumber(arg[1])
        local function cmd(s, ...)
          local parts = {"*" .. select("#", ...) .. "\r\n"}
          for i = 1, select("#", ...) do
            local a = tostring(select(i, ...))
            parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
          end
          assert(s:send(parts))
          local line = assert(s:receive())
          if line:sub(1, 1) == "$" then
            local n = tonumber(line:sub(2))
            if n < 0 then return nil end
            local d = assert(s:receive(n + 2))
            return d:sub(1, n)
          end
          return line
        end
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", port))
        local sess = assert(s:sslhandshake(nil, "localhost"))   -- verified by default
        ngx.say("ping: ", cmd(s, "PING"))
        local v = string.rep("\0\r\n\255", 50000)
        ngx.say("set: ", cmd(s, "SET", "tlskey", v))
        ngx.say("get ok: ", tostring(cmd(s, "GET", "tlskey") == v))
        ngx.say("keepalive: ", s:setkeepalive())
        local s2 = ngx.socket.tcp(); s2:settimeout(3000)
        assert(s2:connect("127.0.0.1", port))
        ngx.say("reused: ", s2:getreusedtimes(), " ", type(s2:sslhandshake(nil, "localhost")))
        ngx.say("ping2: ", cmd(s2, "PING"))
        -- and with a client certificate (verified by redis against the test CA)
        local s3 = ngx.socket.tcp(); s3:settimeout(3000)
        assert(s3:connect("127.0.0.1", port, { pool = "mtls" }))
        local f1, f2 = io.open(arg[2]), io.open(arg[3])
        assert(s3:setclientcert(f1:read("*a"), f2:read("*a")))
        assert(s3:sslhandshake(false, "localhost", true))
        ngx.say("mtls: ", cmd(s3, "PING"))
    """, redis_tls.tls_port, tls_certs.client_crt, tls_certs.client_key, flags=trust(tls_certs))
    assert "ping: +PONG" in out
    assert "set: +OK" in out
    assert "get ok: true" in out
    assert "keepalive: 1" in out
    assert "reused: 1 userdata" in out
    assert "ping2: +PONG" in out
    assert "mtls: +PONG" in out


def test_server_side_sslaccept(run_lua_ok, tls_certs):
    """sslaccept on an accepted-style connection: a cosocket server handshake against a
    cosocket client (the listening API wires it; here a socketpair stands in)."""
    out = run_lua_ok(r"""
        local cosocket = require "cosocket"
        local function readf(p) local f = assert(io.open(p)); local d = f:read("*a"); f:close(); return d end
        local ctx, err = cosocket.ssl_server_context(readf(arg[1]), readf(arg[2]))
        ngx.say("ctx: ", type(ctx), " ", tostring(err))
        local bad, berr = cosocket.ssl_server_context("x", "y")
        ngx.say("bad ctx: ", tostring(bad), " ", berr ~= nil)
        local nomatch, nerr = cosocket.ssl_server_context(readf(arg[1]), readf(arg[3]))
        ngx.say("mismatch: ", tostring(nomatch), " ", tostring(nerr):match("does not match") ~= nil)
    """, tls_certs.server_crt, tls_certs.server_key, tls_certs.client_key, flags=trust(tls_certs))
    assert "ctx: userdata nil" in out
    assert "bad ctx: nil true" in out
    assert "mismatch: nil true" in out


# --------------------------------------------------------------------------
# TLS servers: cosocket.listen{ ssl = ... }

import os  # noqa: E402
import subprocess  # noqa: E402

REDIS_SERVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples", "redis_server.lua")


def test_tls_listen_against_cosocket_clients(run_lua_ok, tls_certs):
    out = run_lua_ok(r"""
        local cosocket = require "cosocket"
        local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0,
            ssl = { cert = arg[1], key = arg[2] },
            handler = function(sock, peer)
                while true do
                    local line = sock:receive()
                    if not line then return end
                    sock:send(line:upper() .. "\n")
                end
            end })
        local port = srv:port()
        local threads = {}
        for i = 1, 20 do
            threads[i] = ngx.thread.spawn(function()
                local s = ngx.socket.tcp(); s:settimeout(5000)
                assert(s:connect("127.0.0.1", port))
                assert(s:sslhandshake(false, "localhost", true))
                for j = 1, 10 do
                    s:send("hello " .. i .. " " .. j .. "\n")
                    assert(s:receive() == ("HELLO " .. i .. " " .. j))
                end
                s:close()
                return true
            end)
        end
        local n = 0
        for i = 1, #threads do if select(2, ngx.thread.wait(threads[i])) then n = n + 1 end end
        ngx.say("ok ", n)
        -- a plain client: the handshake fails on the server side, which goes on serving
        local p = ngx.socket.tcp(); p:settimeout(2000)
        assert(p:connect("127.0.0.1", port))
        p:send("PING\r\n")
        ngx.say("plain: ", tostring(p:receive()))
        local s = ngx.socket.tcp(); s:settimeout(2000)
        assert(s:connect("127.0.0.1", port))
        assert(s:sslhandshake(false, "localhost", true))
        s:send("still\n")
        ngx.say("after: ", s:receive())
        s:close()   -- its handler ends; the script ends when the last handler does
        srv:close()
    """, tls_certs.server_crt, tls_certs.server_key, flags=trust(tls_certs), timeout=60)
    assert "ok 20" in out
    assert "plain: nil" in out
    assert "after: STILL" in out


def test_tls_handshake_timeout_on_server(run_lua_ok, tls_certs):
    out = run_lua_ok(r"""
        local cosocket = require "cosocket"
        local handled = 0
        local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0,
            ssl = { cert = arg[1], key = arg[2], handshake_timeout = 200 },
            handler = function(sock) handled = handled + 1 end })
        local s = ngx.socket.tcp(); s:settimeout(3000)
        assert(s:connect("127.0.0.1", srv:port()))
        -- say nothing: the server gives up after 200 ms and closes
        local t0 = ngx.now()
        local d, err = s:receive()
        ngx.update_time()
        ngx.say(tostring(d), " ", err, " ", ngx.now() - t0 < 1.5, " handled ", handled)
        srv:close()
    """, tls_certs.server_crt, tls_certs.server_key, flags=trust(tls_certs))
    assert "nil closed true handled 0" in out


def test_tls_redis_server_example_with_redis_cli_and_benchmark(server, tls_certs):
    srv = server(file=REDIS_SERVER, args=[0, "127.0.0.1", tls_certs.server_crt, tls_certs.server_key])
    port = srv.port()
    tls = ["--tls", "--cacert", tls_certs.ca, "--sni", "localhost"]

    def cli(*args):
        r = subprocess.run(["redis-cli", *tls, "-p", str(port), *args], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout
    assert cli("PING") == "PONG\n"
    assert cli("SET", "tlskey", "v a l") == "OK\n"
    assert cli("GET", "tlskey") == "v a l\n"
    assert cli("INCR", "tlsn") == "1\n"
    r = subprocess.run(["redis-benchmark", *tls, "-p", str(port), "-t", "set,get", "-n", "5000", "-c", "20",
                        "-q", "-P", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rates = {}
    for line in r.stdout.replace("\r", "\n").splitlines():
        if ":" in line and "requests per second" in line:
            name, _, rest = line.partition(":")
            rates[name.strip()] = float(rest.split()[0])
    assert set(rates) == {"SET", "GET"}, r.stdout
    assert all(v > 0 for v in rates.values()), rates
    assert cli("EXISTS", "key:__rand_int__") == "1\n"
    assert srv.stop() == 0
    assert "[error]" not in srv.err, srv.err
