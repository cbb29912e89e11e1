"""TLS material and TLS peers for the tests.

make_certs(dir)   a CA made with the openssl command, and certificates signed by it:
                  server (localhost + 127.0.0.1), client, expired, wrong name; plus a
                  server certificate from another CA (untrusted).
SServer           `openssl s_server -rev` (a real, independent TLS server) with a chosen
                  certificate, optionally requiring a client certificate.
TlsEcho           a threaded Python ssl echo server (many connections, session-reuse report:
                  a line "SESSION?" is answered with "reused=True|False").
Stall             accepts TCP and never answers (a handshake that stalls).
start_redis_tls   a real redis-server with tls-port (services.py machinery).
"""
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import types

import services

HOST = "127.0.0.1"


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout.decode(errors='replace')}")


def _leaf(d, name, ca, subj, ext, days="3650"):
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", days, "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


def make_certs(d):
    os.makedirs(d, exist_ok=True)
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
                 f"/CN=cosocket test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    _leaf(d, "server", "ca", "/CN=localhost", server_ext)
    _leaf(d, "client", "ca", "/CN=cosocket test client", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "expired", "ca", "/CN=localhost", server_ext, days="-1")
    _leaf(d, "wrongname", "ca", "/CN=example.com",
          "subjectAltName=DNS:example.com\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "untrusted", "otherca", "/CN=localhost", server_ext)
    p = lambda n: os.path.join(d, n)
    return types.SimpleNamespace(
        dir=d, ca=p("ca.crt"), server_crt=p("server.crt"), server_key=p("server.key"),
        client_crt=p("client.crt"), client_key=p("client.key"),
        expired_crt=p("expired.crt"), expired_key=p("expired.key"),
        wrongname_crt=p("wrongname.crt"), wrongname_key=p("wrongname.key"),
        untrusted_crt=p("untrusted.crt"), untrusted_key=p("untrusted.key"))


def _wait_port(port, proc=None, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early rc={proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


class SServer:
    """openssl s_server -rev: each line received is sent back reversed. It serves one
    connection at a time; -naccept bounds how many it takes before exiting."""

    def __init__(self, cert, key, client_ca=None, naccept=None):
        self.port = services.free_port()
        argv = ["openssl", "s_server", "-accept", f"{HOST}:{self.port}", "-cert", cert, "-key", key,
                "-rev"]
        if client_ca:
            argv += ["-Verify", "1", "-CAfile", client_ca, "-verify_return_error"]
        if naccept:
            argv += ["-naccept", str(naccept)]
        self.log = tempfile.NamedTemporaryFile(prefix="s_server.", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        # s_server prints ACCEPT once it listens; probing with a TCP connect would use up
        # an accept, so wait for the banner instead
        deadline = time.monotonic() + 10
        while True:
            with open(self.log.name, "rb") as f:
                if b"ACCEPT" in f.read():
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log.name, "rb") as f:
                    raise RuntimeError(f"openssl s_server did not start: {f.read()[-2000:]!r}")
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


class Stall:
    """Accepts TCP connections and never answers; a base for servers that do (serve(c))."""

    backlog = 16

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, 0))
        self.ls.listen(self.backlog)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)
            self.serve(c)

    def serve(self, c):
        pass

    def stop(self):
        self.stopped = True
        self.ls.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class TlsEcho(Stall):
    """A threaded TLS echo server (Python's ssl, i.e. OpenSSL in another process role).
    Counts handshakes; answers the line "SESSION?" with whether the session was resumed."""

    backlog = 256

    def __init__(self, cert, key, client_ca=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.handshakes = 0
        self.errors = []
        self.lock = threading.Lock()
        super().__init__()

    def serve(self, c):
        threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(30)
            s = self.ctx.wrap_socket(c, server_side=True)
            with self.lock:
                self.handshakes += 1
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                if buf or d.startswith(b"SESSION?"):
                    buf += d
                    if b"\n" in buf:
                        line, _, rest = buf.partition(b"\n")
                        if line == b"SESSION?":
                            s.sendall(f"reused={s.session_reused}\n".encode())
                            buf = b""
                            d = rest
                            if not d:
                                continue
                        else:
                            d, buf = buf, b""
                    else:
                        continue
                s.sendall(d)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()


def redis_tls_ping(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection((HOST, port), timeout=1) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_tls(certs):
    """redis-server with both a plain port (svc.port) and a TLS port (svc.tls_port);
    client certificates optional (verified against the test CA when given)."""
    tls_port = services.free_port()

    def build(svc):
        svc.tls_port = tls_port
        services._spawn(svc, [services.which("redis-server"), "--bind", HOST, "--port", str(svc.port),
                              "--tls-port", str(tls_port), "--dir", svc.dir, "--daemonize", "no",
                              "--save", "", "--appendonly", "no",
                              "--tls-cert-file", certs.server_crt, "--tls-key-file", certs.server_key,
                              "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "optional"])
        services._wait(svc, lambda: redis_tls_ping(tls_port, certs.ca))
    return services._launch("redis-tls", build)


# --------------------------------------------------------------------------
# more TLS servers for the driver tests (redis with client certificates required,
# memcached -Z, MariaDB with --ssl-*)

def tls_roundtrip(port, ca, request, end, client=None):
    """Sends request over a verified TLS connection; True when the answer contains end."""
    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(*client)
    try:
        with socket.create_connection((HOST, port), timeout=1) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(request)
                data = b""
                while end not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return end in data
    except OSError:
        return False


def start_redis_mtls(certs):
    """redis-server whose TLS port (svc.tls_port) requires a client certificate signed by
    the test CA (tls-auth-clients yes); plain port svc.port."""
    tls_port = services.free_port()

    def build(svc):
        svc.tls_port = tls_port
        services._spawn(svc, [services.which("redis-server"), "--bind", HOST, "--port", str(svc.port),
                              "--tls-port", str(tls_port), "--dir", svc.dir, "--daemonize", "no",
                              "--save", "", "--appendonly", "no",
                              "--tls-cert-file", certs.server_crt, "--tls-key-file", certs.server_key,
                              "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "yes"])
        services._wait(svc, lambda: tls_roundtrip(tls_port, certs.ca, b"PING\r\n", b"+PONG",
                                                  client=(certs.client_crt, certs.client_key)))
    return services._launch("redis-mtls", build)


def start_memcached_tls(certs):
    """memcached -Z on svc.port (TLS only, one-way: no client certificate asked)."""
    def build(svc):
        argv = [services.which("memcached"), "-l", HOST, "-p", str(svc.port), "-U", "0", "-m", "64",
                "-Z", "-o", f"ssl_chain_cert={certs.server_crt},ssl_key={certs.server_key}"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        services._spawn(svc, argv)
        services._wait(svc, lambda: tls_roundtrip(svc.port, certs.ca, b"version\r\n", b"\r\n"))
    import signal
    return services._launch("memcached-tls", build, stop_signal=signal.SIGKILL)


MARIADB_TLS_SQL = b"""
CREATE USER 'sslonly'@'%' IDENTIFIED BY 'sslpw' REQUIRE SSL;
CREATE USER 'x509user'@'%' IDENTIFIED BY 'x509pw' REQUIRE X509;
GRANT ALL ON testdb.* TO 'sslonly'@'%', 'x509user'@'%';
"""


def start_mariadb_tls(certs):
    """mariadbd with --ssl-ca/--ssl-cert/--ssl-key (TCP svc.port + unix svc.path), the users of
    tests/servers/mariadb-init.sql plus sslonly/sslpw (REQUIRE SSL) and x509user/x509pw
    (REQUIRE X509: a client certificate signed by the test CA)."""
    def build(svc):
        import getpass
        me = "root" if os.geteuid() == 0 else getpass.getuser()
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        data = os.path.join(svc.dir, "data")
        svc.path = os.path.join(svc.dir, "mysqld.sock")
        r = subprocess.run([services.which("mariadb-install-db"), "--no-defaults", "--force", *as_root,
                            f"--datadir={data}", "--skip-test-db", "--skip-name-resolve",
                            f"--auth-root-socket-user={me}"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120, cwd=svc.dir)
        if r.returncode != 0:
            raise services.ServiceError(f"mariadb-install-db failed rc={r.returncode}:\n"
                                        + r.stdout.decode(errors="replace")[-3000:])
        services._spawn(svc, [services.which("mariadbd"), "--no-defaults", *as_root,
                              f"--datadir={data}", f"--bind-address={HOST}", f"--port={svc.port}",
                              "--skip-networking=0", f"--socket={svc.path}",
                              f"--pid-file={svc.dir}/mysqld.pid", f"--log-error={svc.log_path}",
                              "--skip-name-resolve", "--character-set-server=utf8mb4",
                              "--collation-server=utf8mb4_general_ci",
                              "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
                              "--innodb-doublewrite=0", f"--ssl-ca={certs.ca}",
                              f"--ssl-cert={certs.server_crt}", f"--ssl-key={certs.server_key}"])
        services._wait(svc, lambda: services.mysql_greeting(path=svc.path))
        with open(os.path.join(services.SERVERS_DIR, "mariadb-init.sql"), "rb") as f:
            sql = f.read() + MARIADB_TLS_SQL
        r = subprocess.run([services.which("mariadb"), "--no-defaults", f"--socket={svc.path}", "-uroot"],
                           input=sql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise services.ServiceError("mariadb init SQL failed:\n" + r.stdout.decode(errors="replace"))
        services.wait_until(lambda: services.mysql_greeting(svc.host, svc.port),
                            services.START_TIMEOUT, "mariadb-tls (TCP)", svc.proc)
    return services._launch("mariadb-tls", build)
