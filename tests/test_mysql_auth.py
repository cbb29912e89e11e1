"""resty.mysql's caching_sha2_password and sha256_password (MySQL's SHA-256 authentication)
and the refused mysql_clear_password.

Debian 12 has no server speaking these plugins: its default-mysql-server is MariaDB 10.11,
whose plugin directory has neither caching_sha2_password nor sha256_password (asserted below
against the real server). So the pieces are checked against independent implementations:
the scramble against hashlib, the RSA-OAEP encryption by decrypting it with the `openssl`
command, and the whole exchange against a small fake server (a thread in this process) that
does exactly what MySQL 8 does: a fast-auth success, or full authentication with a public-key
request, the password decrypted with `openssl pkeyutl` and checked.
"""
import hashlib
import os
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

from helpers.socket_lua import lua
from test_mysql import root_sql

CRYPTO = r'''
local mysql = require "resty.mysql"
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
'''


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("rsa")
    key, pub = d / "key.pem", d / "pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True, timeout=30)
    return str(key), pub.read_bytes()


def rsa_decrypt(key_path, data):
    r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", key_path, "-pkeyopt",
                        "rsa_padding_mode:oaep"], input=data, capture_output=True, timeout=30)
    return r.stdout if r.returncode == 0 else None


def xor(a, b):
    return bytes(x ^ b[i % len(b)] for i, x in enumerate(a))


def sha2_scramble(password, nonce):
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    return xor(p1, hashlib.sha256(p2 + nonce).digest())


def test_mariadb_has_no_sha256_plugins(mariadb):
    out = root_sql(mariadb, "select count(*) from information_schema.ALL_PLUGINS where "
                   "plugin_name in ('caching_sha2_password', 'sha256_password')")
    assert out == "0"


def test_scramble_and_rsa_against_hashlib_and_openssl(run_lua_ok, rsa_key):
    key_path, pem = rsa_key
    nonce = bytes(range(30, 50))
    out = lua(run_lua_ok, CRYPTO + r'''
local crypto = require "resty.mysql.crypto"
P(hex(crypto.sha256("")), hex(crypto.sha256("abc")))
P(hex(mysql._caching_sha2_scramble("pässword", unhex("@NONCE@"))))
P(mysql._caching_sha2_scramble("", unhex("@NONCE@")) == "")
local pem = unhex("@PEM@")
P(hex(crypto.rsa_oaep_encrypt(pem, "hello\0world")))
P(hex(crypto.rsa_oaep_encrypt(pem, "hello\0world")))
P(crypto.rsa_oaep_encrypt("not a key", "x"))
P(crypto.rsa_oaep_encrypt(pem, ("x"):rep(300)))
''', {"NONCE": nonce.hex(), "PEM": pem.hex()})
    assert out[0] == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855|"
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert out[1] == sha2_scramble("pässword".encode(), nonce).hex()
    assert out[2] == "true"
    c1, c2 = bytes.fromhex(out[3]), bytes.fromhex(out[4])
    assert len(c1) == 256 and c1 != c2          # OAEP is randomized
    assert rsa_decrypt(key_path, c1) == b"hello\0world" == rsa_decrypt(key_path, c2)
    assert out[5] == "nil|bad server public key"
    assert out[6] == "nil|RSA encryption failed (password too long for the key?)"


def ed25519_sign(seed, msg):
    """RFC 8032 Ed25519 signature of msg with the 32-byte seed, by the openssl command."""
    with tempfile.TemporaryDirectory() as d:
        key, data = os.path.join(d, "k.der"), os.path.join(d, "m.bin")
        with open(key, "wb") as f:
            f.write(bytes.fromhex("302e020100300506032b657004220420") + seed)  # PKCS#8
        with open(data, "wb") as f:
            f.write(msg)
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-keyform", "DER",
                               "-rawin", "-in", data], capture_output=True, check=True).stdout


def pkt(body, seq):
    return struct.pack("<I", len(body))[:3] + bytes([seq & 0xff]) + body


class Sha2Server:
    """A MySQL 8 lookalike for the authentication exchange only. mode:
    "fast"       caching_sha2_password, the server's cache knows the user: 0x01 0x03, OK
    "full"       caching_sha2_password, cache miss: 0x01 0x04, key request 0x02, PEM, RSA
    "sha256"     sha256_password: the client asks for the key (0x01), PEM, RSA
    "switch:P"   greets with mysql_native_password, then switches to plugin P
    Afterwards it answers every command with OK, until COM_QUIT or EOF.
    tls: a server ssl.SSLContext; the greeting then offers CLIENT_SSL and a client's
    SSLRequest is followed by the TLS handshake (self.tls_sessions counts them); over TLS
    the full authentication takes the password in clear (no key request), as MySQL 8 does,
    and "switch:mysql_clear_password" is accepted."""

    def __init__(self, mode, password, key_path, pem, tls=None):
        self.mode, self.password, self.key_path, self.pem = mode, password, key_path, pem
        self.tls, self.tls_sessions, self.on_tls = tls, 0, False
        self.log = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(10)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def recv(self, c):
        hdr = self.recvn(c, 4)
        n = hdr[0] | hdr[1] << 8 | hdr[2] << 16
        self.seq = hdr[3]
        return self.recvn(c, n)

    @staticmethod
    def recvn(c, n):
        buf = b""
        while len(buf) < n:
            d = c.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return buf

    def send(self, c, body):
        self.seq += 1
        c.sendall(pkt(body, self.seq))

    def serve(self):
        try:
            while True:
                c, _ = self.lsock.accept()
                c.settimeout(10)
                try:
                    self.session(c)
                except (EOFError, OSError) as e:
                    self.log.append(f"eof {e!r}")
                finally:
                    c.close()
        except OSError:
            pass

    def ok(self, c):
        self.send(c, b"\x00\x00\x00\x02\x00\x00\x00")

    def denied(self, c):
        self.send(c, b"\xff\x15\x04#28000Access denied (fake)")

    def session(self, c):
        nonce = os.urandom(20).replace(b"\0", b"\1")
        mode = self.mode
        greet_plugin = b"mysql_native_password" if mode.startswith("switch:") else (
            b"sha256_password" if mode == "sha256" else b"caching_sha2_password")
        caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00020000 | 0x00010000 | 0x8 | 0x1
        if self.tls:
            caps |= 0x800
        self.on_tls = False
        body = (b"\x0a8.0.99-fake\x00" + struct.pack("<I", 9) + nonce[:8] + b"\x00"
                + struct.pack("<H", caps & 0xffff) + b"\xff" + struct.pack("<H", 2)
                + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + nonce[8:] + b"\x00"
                + greet_plugin + b"\x00")
        self.seq = -1
        self.send(c, body)
        resp = self.recv(c)
        if self.tls and len(resp) == 32 and struct.unpack("<I", resp[:4])[0] & 0x800:
            self.log.append(("sslrequest", self.seq))
            c = self.tls.wrap_socket(c, server_side=True)
            self.tls_sessions += 1
            self.on_tls = True
            resp = self.recv(c)
        pos = 32
        user_end = resp.index(b"\0", pos)
        user = resp[pos:user_end]
        alen = resp[user_end + 1]
        auth = resp[user_end + 2:user_end + 2 + alen]
        self.log.append(("user", user.decode(), greet_plugin.decode(), auth.hex()))
        plugin = greet_plugin.decode()
        if mode.startswith("switch:"):
            plugin = mode[7:]
            if plugin == "client_ed25519":
                # as MariaDB: 32 raw random bytes, no NUL after them; this one has a 0 inside
                # and, as one MariaDB nonce in 256 has, a 0 as its last byte
                nonce = os.urandom(15) + b"\0" + os.urandom(15) + b"\0"
                self.send(c, b"\xfe" + plugin.encode() + b"\x00" + nonce)
            else:
                nonce = os.urandom(20).replace(b"\0", b"\1")
                self.send(c, b"\xfe" + plugin.encode() + b"\x00" + nonce + b"\x00")
            auth = self.recv(c)
            self.log.append(("switched", plugin, auth.hex()))
            if plugin == "caching_sha2_password":
                mode = "full"
        if plugin == "caching_sha2_password":
            if self.password == b"":
                good = auth == b""
            else:
                good = auth == sha2_scramble(self.password, nonce)
            if not good:
                return self.denied(c)
            if mode == "fast":
                self.send(c, b"\x01\x03")
                self.ok(c)
            elif self.on_tls:
                self.send(c, b"\x01\x04")
                clear = self.recv(c)
                self.log.append(("clear over tls", clear == self.password + b"\0"))
                if clear != self.password + b"\0":
                    return self.denied(c)
                self.ok(c)
            else:
                self.send(c, b"\x01\x04")
                req = self.recv(c)
                self.log.append(("key request", req.hex()))
                if req != b"\x02":
                    return self.denied(c)
                self.send(c, b"\x01" + self.pem)
                enc = self.recv(c)
                clear = rsa_decrypt(self.key_path, enc)
                self.log.append(("rsa", len(enc), clear is not None))
                if clear is None or xor(clear, nonce) != self.password + b"\0":
                    return self.denied(c)
                self.ok(c)
        elif plugin == "sha256_password":
            if self.password == b"":
                if auth != b"\0":
                    return self.denied(c)
            else:
                if auth != b"\x01":
                    return self.denied(c)
                self.send(c, b"\x01" + self.pem)
                enc = self.recv(c)
                clear = rsa_decrypt(self.key_path, enc)
                self.log.append(("rsa", len(enc), clear is not None))
                if clear is None or xor(clear, nonce) != self.password + b"\0":
                    return self.denied(c)
            self.ok(c)
        elif plugin == "client_ed25519":
            # a 32-byte password is an RFC 8032 seed in MariaDB's derivation: OpenSSL signs
            # the same (Ed25519 signatures are deterministic)
            good = len(self.password) == 32 and auth == ed25519_sign(self.password, nonce)
            self.log.append(("ed25519", good))
            if not good:
                return self.denied(c)
            self.ok(c)
        elif plugin == "mysql_clear_password" and self.on_tls:
            self.log.append(("clear", auth == self.password + b"\0"))
            if auth != self.password + b"\0":
                return self.denied(c)
            self.ok(c)
        else:
            return self.denied(c)
        while True:
            cmd = self.recv(c)
            self.log.append(("cmd", cmd))
            if cmd[:1] == b"\x01":
                return
            self.ok(c)

    def stop(self):
        self.lsock.close()


@pytest.fixture
def sha2_server(rsa_key):
    servers = []

    def make(mode, password=b"s3cr\xc3\xa9t", tls=None):
        s = Sha2Server(mode, password, *rsa_key, tls=tls)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


CONNECT = r'''
local mysql = require "resty.mysql"
for _, pw in ipairs { @PWS@ } do
  local db = mysql:new()
  db:set_timeout(5000)
  local ok, err, errno, sqlstate = db:connect{ host = "127.0.0.1", port = @PORT@, user = "u",
                                               password = pw }
  if ok then
    local r = db:query("do 1")
    P(ok, r and r.affected_rows, db:server_ver())
    db:close()
  else
    P(ok, err, errno, sqlstate)
  end
end
'''


@pytest.mark.parametrize("mode", ["fast", "full", "sha256", "switch:caching_sha2_password",
                                  "switch:sha256_password"])
def test_sha2_exchanges_with_fake_server(run_lua_ok, sha2_server, mode):
    srv = sha2_server(mode)
    out = lua(run_lua_ok, CONNECT, {"PORT": srv.port, "PWS": '"s3cré" .. "t", "wrong"'})
    assert out[0] == "1|0|8.0.99-fake", srv.log
    assert out[1] == "nil|Access denied (fake)|1045|28000"
    rsa = [e for e in srv.log if e[0] == "rsa"]
    if mode == "fast":
        assert rsa == []
    elif mode == "full" or mode.startswith("switch:caching"):
        assert ("key request", "02") in srv.log and rsa[0] == ("rsa", 256, True)
    else:
        assert rsa[0] == ("rsa", 256, True)
    assert ("cmd", b"\x03do 1") in srv.log and ("cmd", b"\x01") in srv.log


@pytest.mark.parametrize("mode", ["fast", "sha256"])
def test_sha2_empty_password(run_lua_ok, sha2_server, mode):
    srv = sha2_server(mode, password=b"")
    out = lua(run_lua_ok, CONNECT, {"PORT": srv.port, "PWS": '""'})
    assert out == ["1|0|8.0.99-fake"], srv.log
    # no RSA without a password: caching_sha2 sends an empty scramble, sha256 a single 0
    assert srv.log[0][3] == ("" if mode == "fast" else "00")


def test_ed25519_switch_with_a_nonce_ending_in_nul(run_lua_ok, sha2_server):
    # MariaDB's ed25519 nonce is 32 random bytes: the driver signs all of them, also when
    # the last is 0 (it once stripped it as a NUL terminator: "Access denied" 1 time in 256)
    srv = sha2_server("switch:client_ed25519", password=b"0123456789abcdef0123456789ABCDEF")
    out = lua(run_lua_ok, CONNECT, {"PORT": srv.port,
                                    "PWS": '"0123456789abcdef0123456789ABCDEF", "wrong"'})
    assert out[0] == "1|0|8.0.99-fake", srv.log
    assert out[1] == "nil|Access denied (fake)|1045|28000"
    assert ("ed25519", True) in srv.log and ("ed25519", False) in srv.log


def test_clear_password_and_unknown_plugin_refused(run_lua_ok, sha2_server):
    clear = sha2_server("switch:mysql_clear_password")
    unknown = sha2_server("switch:auth_gssapi_client")
    out = lua(run_lua_ok, r'''
local mysql = require "resty.mysql"
for _, port in ipairs { @P1@, @P2@ } do
  local db = mysql:new()
  db:set_timeout(5000)
  P(db:connect{ host = "127.0.0.1", port = port, user = "u", password = "pw" })
  P(db:query("select 1"))
end
''', {"P1": clear.port, "P2": unknown.port})
    assert out == ["nil|mysql_clear_password is refused without TLS|nil|nil",
                   "nil|failed to send query: cannot send query in the current context: nil",
                   "nil|unsupported authentication plugin: auth_gssapi_client|nil|nil",
                   "nil|failed to send query: cannot send query in the current context: nil"]
    # the password never went out in clear
    assert not any(b"pw" in bytes.fromhex(e[2]) for e in clear.log if e[0] == "switched")


# ---------------------------------------------------------------------------------------
# over TLS (ssl = true): SSLRequest, the handshake, then the password in clear

@pytest.mark.parametrize("mode", ["full", "switch:caching_sha2_password", "switch:mysql_clear_password",
                                  "fast"])
def test_full_auth_and_clear_password_over_tls(run_lua_ok, sha2_server, tls_certs, mode):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.server_crt, tls_certs.server_key)
    srv = sha2_server(mode, tls=ctx)
    out = lua(run_lua_ok, r'''
local mysql = require "resty.mysql"
for _, pw in ipairs { "s3cr\195\169t", "wrong" } do
  local db = mysql:new()
  db:set_timeout(5000)
  local ok, err, errno, sqlstate = db:connect{ host = "127.0.0.1", port = @PORT@, user = "u",
                                               password = pw, ssl = true, ssl_verify = true,
                                               server_name = "localhost" }
  if ok then
    local r = db:query("do 1")
    P(ok, r and r.affected_rows)
    db:close()
  else
    P(ok, err, errno, sqlstate)
  end
end
''', {"PORT": srv.port}, flags=["--ssl-trusted-certificate", tls_certs.ca])
    assert out == ["1|0", "nil|Access denied (fake)|1045|28000"], srv.log
    assert srv.tls_sessions == 2
    # the SSLRequest is packet 1; no RSA, no public key request over TLS
    assert ("sslrequest", 1) in srv.log
    assert not [e for e in srv.log if e[0] in ("rsa", "key request")]
    if mode == "full" or mode == "switch:caching_sha2_password":
        assert ("clear over tls", True) in srv.log
    elif mode == "switch:mysql_clear_password":
        assert ("clear", True) in srv.log
    assert ("cmd", b"\x03do 1") in srv.log
