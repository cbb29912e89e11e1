#!/usr/bin/python3
"""Real test servers for cosocket, started from Debian packages.

Each server runs as a foreground child process, on 127.0.0.1 on a free port
picked at run time, in its own temporary directory, and is stopped (and its
directory removed) by Service.stop(). start() returns only once the server
gave a real protocol answer (PONG, a DNS SOA, a MySQL greeting, HTTP 101...).

    redis      redis-server (TCP + unix socket)
    memcached  memcached (TCP and UDP on the same port)
    mariadb    mariadbd (TCP + unix socket), database testdb, users
               native/nativepw (mysql_native_password) and edu/edpw (ed25519)
    knot       knotd, authoritative for cosocket.test and 0.0.127.in-addr.arpa
               (zone files in tests/servers/)
    ws_echo    tests/helpers/ws_echo.py (python3-websockets echo peer)
    beanstalkd beanstalkd on TCP, and a second one on a unix socket (.path)

When an environment variable names an already-running server (host:port),
that one is used instead and nothing is started:

    COSOCKET_REDIS  COSOCKET_MEMCACHED  COSOCKET_MARIADB  COSOCKET_DNS  COSOCKET_WS
    COSOCKET_BEANSTALKD
    (optional: COSOCKET_REDIS_SOCKET, COSOCKET_MARIADB_SOCKET, COSOCKET_BEANSTALKD_SOCKET =
    unix socket path; a test that needs .path of an external server without one fails
    naming the variable)

With COSOCKET_EXTERNAL=1 (scripts/test --external) nothing is started for these names:
a service whose variable is unset fails naming it.

Library:  svc = services.get("redis"); svc.host, svc.port, svc.path; svc.stop()
          svc.kill() then svc.restart(): the same server again, same port and directory
CLI:      services.py run [NAMES...] -- CMD ARGS...   (see --help)
"""
import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS_DIR = os.path.join(HERE, "servers")
HELPERS_DIR = os.path.join(HERE, "helpers")
HOST = "127.0.0.1"
START_TIMEOUT = 30.0          # seconds for a server to answer after it was spawned
EXTERNAL_TIMEOUT = 10.0       # seconds for an external server (env var) to answer
STOP_TIMEOUT = 10.0

NAMES = ("redis", "memcached", "mariadb", "knot", "ws_echo", "beanstalkd")
ALIASES = {"dns": "knot", "ws": "ws_echo", "mysql": "mariadb", "memcache": "memcached",
           "beanstalk": "beanstalkd"}
ENV_VARS = {
    "redis": "COSOCKET_REDIS",
    "memcached": "COSOCKET_MEMCACHED",
    "mariadb": "COSOCKET_MARIADB",
    "knot": "COSOCKET_DNS",
    "ws_echo": "COSOCKET_WS",
    "beanstalkd": "COSOCKET_BEANSTALKD",
}
SOCKET_ENV_VARS = {"redis": "COSOCKET_REDIS_SOCKET", "mariadb": "COSOCKET_MARIADB_SOCKET",
                   "beanstalkd": "COSOCKET_BEANSTALKD_SOCKET"}

MARIADB_DATABASE = "testdb"
MARIADB_USERS = {"native": "nativepw", "edu": "edpw"}   # see tests/servers/mariadb-init.sql
DNS_ZONES = ("cosocket.test", "0.0.127.in-addr.arpa")

# Which Debian package provides each program (for error messages).
PACKAGES = {
    "redis-server": "redis-server", "memcached": "memcached",
    "mariadb-install-db": "mariadb-server", "mariadbd": "mariadb-server",
    "mariadb": "mariadb-client", "knotd": "knot", "beanstalkd": "beanstalkd",
}


class ServiceError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# small utilities

def which(prog):
    """Full path of prog; also looks in the sbin directories a non-root PATH lacks."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    found = shutil.which(prog, path=path)
    if not found:
        raise ServiceError(f"{prog} not found: install the Debian package "
                           f"{PACKAGES.get(prog, prog)} (scripts/bootstrap does)")
    return found


def python():
    """The interpreter for helper scripts: Debian's (it has websockets, dnslib)."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def free_port(udp_too=False):
    """A loopback port free for TCP (and for UDP too when udp_too)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((HOST, port))
            return port
        except OSError:
            continue
    raise ServiceError("no free port found")


def wait_until(check, timeout, what, proc=None, interval=0.02):
    """Poll check() until it returns truthy; returns the seconds it took.
    Raises ServiceError when proc exits or the timeout passes."""
    t0 = time.monotonic()
    last = None
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with rc={proc.returncode} before it was ready")
        try:
            if check():
                return time.monotonic() - t0
        except (OSError, ValueError, struct.error) as e:
            last = e
        if time.monotonic() - t0 > timeout:
            raise ServiceError(f"{what} not ready after {timeout:.0f} s"
                               + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def parse_addr(value, var):
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ServiceError(f"{var}={value!r}: expected host:port")
    return host.strip("[]"), int(port)


def _recv_until(sock, end, limit=65536):
    data = b""
    while end not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------
# protocol readiness checks (each does a real exchange, 1 s socket timeout)

def redis_ping(host, port=None, path=None):
    fam, addr = (socket.AF_UNIX, path) if path else (socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        s.connect(addr)
        s.sendall(b"PING\r\n")
        return _recv_until(s, b"\r\n") == b"+PONG\r\n"


def memcached_version(host, port):
    with socket.create_connection((host, port), timeout=1) as s:
        s.sendall(b"version\r\n")
        return _recv_until(s, b"\r\n").startswith(b"VERSION ")


def memcached_udp_version(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as u:
        u.settimeout(1)
        u.connect((host, port))      # connected: a closed port fails at once (ICMP)
        u.send(struct.pack("!HHHH", 1, 0, 1, 0) + b"version\r\n")
        data = u.recv(2048)
        return data[8:].startswith(b"VERSION ")


def _connect(host=None, port=None, path=None):
    """A stream socket with a 1 s timeout, to a unix path or host:port."""
    if path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(path)
        return s
    return socket.create_connection((host, port), timeout=1)


def mysql_greeting(host=None, port=None, path=None):
    """True when the server sends a protocol-10 handshake (not an error packet)."""
    with _connect(host, port, path) as s:
        head = b""
        while len(head) < 5:
            chunk = s.recv(5 - len(head))
            if not chunk:
                return False
            head += chunk
        return head[4] == 10


def dns_query(host, port, name, qtype=6, tcp=False, qid=0x5353):
    """Send one query; return (rcode, ancount, flags). qtype 6 = SOA."""
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", qtype, 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    if tcp:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect((host, port))
            s.sendall(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", s.recv(2))[0]
            r = b""
            while len(r) < n:
                chunk = s.recv(n - len(r))
                if not chunk:
                    break
                r += chunk
    else:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.connect((host, port))  # connected: a closed port fails at once (ICMP)
            s.send(q)
            r = s.recv(65535)
    rid, flags, _qd, an = struct.unpack("!HHHH", r[:8])
    if rid != qid:
        raise ValueError("DNS reply with a wrong id")
    return flags & 0xF, an, flags


def dns_soa(host, port):
    rcode, an, _ = dns_query(host, port, DNS_ZONES[0])
    return rcode == 0 and an >= 1


def beanstalkd_using(host=None, port=None, path=None):
    """True when the server answers list-tube-used with USING default."""
    with _connect(host, port, path) as s:
        s.sendall(b"list-tube-used\r\n")
        return _recv_until(s, b"\r\n") == b"USING default\r\n"


def ws_handshake(host, port):
    with socket.create_connection((host, port), timeout=1) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        return _recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 101")


# --------------------------------------------------------------------------
# a running service

class Service:
    """A started (or external) server: .host .port .addr (.path: unix socket)."""

    def __init__(self, name, host, port, path=None, proc=None, workdir=None,
                 log=None, stop_signal=signal.SIGTERM, external=False):
        self.name, self.host, self.port, self._path = name, host, port, path
        self.proc, self.dir, self.log_path = proc, workdir, log
        self.stop_signal, self.external = stop_signal, external
        self.ready_s = 0.0      # spawn -> first protocol answer
        self.total_s = 0.0      # whole start() including set-up (install-db, users...)
        self._log_file = None
        self._env = None        # the environment it was spawned with (for restart)
        self.others = []        # more servers that belong to this one, stopped with it

    @property
    def addr(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def path(self):
        """The unix socket path. For an external server it comes from the socket variable
        (COSOCKET_REDIS_SOCKET...); without it a test that needs one fails, naming it."""
        if self._path is None and self.external and self.name in SOCKET_ENV_VARS:
            raise ServiceError(
                f"{self.name} is the external server {ENV_VARS[self.name]}={self.addr}, and this "
                f"test needs its unix socket: set {SOCKET_ENV_VARS[self.name]} to a socket path "
                "this machine can open (e.g. a volume of the container; docs/services.md)")
        return self._path

    @path.setter
    def path(self, value):
        self._path = value

    @property
    def socket(self):
        return self.path

    @property
    def flag(self):
        """For DNS: the cosocket flag that points the runtime's resolver here."""
        return f"--resolver={self.addr}"

    def env(self):
        e = {ENV_VARS[self.name]: self.addr}
        if self._path and self.name in SOCKET_ENV_VARS:
            e[SOCKET_ENV_VARS[self.name]] = self._path
        return e

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-limit:].decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def stop(self):
        """SIGTERM (memcached: SIGKILL, its graceful stop takes ~1 s) + wait;
        SIGKILL after STOP_TIMEOUT. Removes the temporary directory."""
        for other in self.others:
            other.stop()
        self.others = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(self.stop_signal)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        self.proc = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def kill(self, sig=signal.SIGKILL):
        """Kills the server process (SIGKILL: a crash) and waits for it; its directory,
        port and data stay for restart()."""
        if self.external or self.proc is None:
            raise ServiceError(f"{self.name}: only a server started here can be killed")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(STOP_TIMEOUT)

    def restart(self):
        """Starts the killed server again with the same command line (same port, same
        directory); returns once it gives a protocol answer on TCP."""
        if self.external or self.proc is None or self.proc.poll() is None:
            raise ServiceError(f"{self.name}: restart() needs a server killed with kill()")
        self.proc = subprocess.Popen(self.proc.args, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     cwd=self.dir, env=self._env, start_new_session=True)
        self.ready_s = wait_until(lambda: CHECKS[self.name](self), START_TIMEOUT,
                                  f"{self.name} (restarted)", self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        kind = "external" if self.external else f"pid {self.proc.pid if self.proc else '-'}"
        return f"<Service {self.name} {self.addr}{' ' + self._path if self._path else ''} ({kind})>"


def _spawn(svc, argv, env=None):
    """Start argv in the foreground as our child, output to svc.log_path.
    setpriv --pdeathsig makes the server die with us if we are killed."""
    svc._log_file = open(svc.log_path, "ab")
    if shutil.which("setpriv"):
        argv = ["setpriv", "--pdeathsig", "TERM", "--"] + argv
    svc._env = env
    svc.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=svc._log_file,
                                stderr=subprocess.STDOUT, cwd=svc.dir, env=env,
                                start_new_session=True)


def _launch(name, build, stop_signal=signal.SIGTERM, udp=False):
    """Make a temp dir and a port, let build(svc) spawn and wait; clean up on failure."""
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix=f"cosocket-{name}.")
    svc = Service(name, HOST, free_port(udp_too=udp), workdir=workdir,
                  log=os.path.join(workdir, f"{name}.log"), stop_signal=stop_signal)
    try:
        build(svc)
    except BaseException as e:
        tail = svc.log_tail()
        svc.stop()
        if isinstance(e, ServiceError):
            raise ServiceError(f"{e}\n--- {name} log ---\n{tail}") from None
        raise
    svc.total_s = time.monotonic() - t0
    return svc


def _wait(svc, check):
    svc.ready_s = wait_until(check, START_TIMEOUT, svc.name, svc.proc)


# --------------------------------------------------------------------------
# the servers

def start_redis():
    def build(svc):
        svc.path = os.path.join(svc.dir, "redis.sock")
        _spawn(svc, [which("redis-server"), "--bind", HOST, "--port", str(svc.port),
                     "--dir", svc.dir, "--daemonize", "no", "--save", "", "--appendonly", "no",
                     "--unixsocket", svc.path, "--unixsocketperm", "700"])
        _wait(svc, lambda: redis_ping(svc.host, svc.port) and redis_ping(None, path=svc.path))
    return _launch("redis", build)


def start_memcached():
    def build(svc):
        argv = [which("memcached"), "-l", HOST, "-p", str(svc.port), "-U", str(svc.port), "-m", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]     # memcached refuses to run as root without it
        _spawn(svc, argv)
        _wait(svc, lambda: memcached_version(svc.host, svc.port)
              and memcached_udp_version(svc.host, svc.port))
    # a cache has nothing to save: SIGKILL stops it in ms instead of ~1 s
    return _launch("memcached", build, stop_signal=signal.SIGKILL, udp=True)


def start_mariadb():
    def build(svc):
        import getpass
        me = "root" if os.geteuid() == 0 else getpass.getuser()
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        data = os.path.join(svc.dir, "data")
        svc.path = os.path.join(svc.dir, "mysqld.sock")
        r = subprocess.run([which("mariadb-install-db"), "--no-defaults", "--force", *as_root,
                            f"--datadir={data}", "--skip-test-db", "--skip-name-resolve",
                            f"--auth-root-socket-user={me}"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120, cwd=svc.dir)
        if r.returncode != 0:
            raise ServiceError(f"mariadb-install-db failed rc={r.returncode}:\n"
                               + r.stdout.decode(errors="replace")[-3000:])
        # --no-defaults must come first: Debian's /etc/mysql would move the socket.
        _spawn(svc, [which("mariadbd"), "--no-defaults", *as_root, f"--datadir={data}",
                     f"--bind-address={HOST}", f"--port={svc.port}", "--skip-networking=0",
                     f"--socket={svc.path}", f"--pid-file={svc.dir}/mysqld.pid",
                     f"--log-error={svc.log_path}", "--skip-name-resolve",
                     "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                     "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
                     "--innodb-doublewrite=0"])
        _wait(svc, lambda: mysql_greeting(path=svc.path))
        with open(os.path.join(SERVERS_DIR, "mariadb-init.sql"), "rb") as f:
            sql = f.read()
        r = subprocess.run([which("mariadb"), "--no-defaults", f"--socket={svc.path}", "-uroot"],
                           input=sql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise ServiceError("mariadb-init.sql failed:\n" + r.stdout.decode(errors="replace"))
        wait_until(lambda: mysql_greeting(svc.host, svc.port), START_TIMEOUT, "mariadb (TCP)", svc.proc)
    return _launch("mariadb", build)


KNOT_CONF = """\
server:
    rundir: "{dir}"
    listen: {host}@{port}
    udp-max-payload: 1232
log:
  - target: stderr
    any: warning
database:
    storage: "{dir}"
template:
  - id: default
    storage: "{dir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
{zones}
"""


def start_knot():
    def build(svc):
        for zone in DNS_ZONES:
            shutil.copy(os.path.join(SERVERS_DIR, f"{zone}.zone"), svc.dir)
        conf = os.path.join(svc.dir, "knot.conf")
        with open(conf, "w") as f:
            f.write(KNOT_CONF.format(dir=svc.dir, host=HOST, port=svc.port,
                                     zones="\n".join(f"  - domain: {z}" for z in DNS_ZONES)))
        _spawn(svc, [which("knotd"), "-c", conf])      # foreground by default
        _wait(svc, lambda: dns_soa(svc.host, svc.port)
              and dns_query(svc.host, svc.port, DNS_ZONES[1], tcp=True)[0] == 0)
    return _launch("knot", build, udp=True)


def start_ws_echo():
    def build(svc):
        _spawn(svc, [python(), os.path.join(HELPERS_DIR, "ws_echo.py"), str(svc.port)])
        _wait(svc, lambda: ws_handshake(svc.host, svc.port))
    return _launch("ws_echo", build)


def start_beanstalkd():
    """beanstalkd listens on one address: the TCP one is the service, a second process on a
    unix socket gives .path (a separate server: its own jobs and tubes)."""
    def build_unix(svc):
        svc.path = os.path.join(svc.dir, "beanstalkd.sock")
        _spawn(svc, [which("beanstalkd"), "-l", "unix:" + svc.path])
        _wait(svc, lambda: beanstalkd_using(path=svc.path))

    def build(svc):
        _spawn(svc, [which("beanstalkd"), "-l", HOST, "-p", str(svc.port)])
        _wait(svc, lambda: beanstalkd_using(svc.host, svc.port))
        unix = _launch("beanstalkd", build_unix)
        svc.others.append(unix)
        svc.path = unix.path
    return _launch("beanstalkd", build)


STARTERS = {"redis": start_redis, "memcached": start_memcached, "mariadb": start_mariadb,
            "knot": start_knot, "ws_echo": start_ws_echo, "beanstalkd": start_beanstalkd}
CHECKS = {
    "redis": lambda s: redis_ping(s.host, s.port),
    "memcached": lambda s: memcached_version(s.host, s.port),
    "mariadb": lambda s: mysql_greeting(s.host, s.port),
    "knot": lambda s: dns_soa(s.host, s.port),
    "ws_echo": lambda s: ws_handshake(s.host, s.port),
    "beanstalkd": lambda s: beanstalkd_using(s.host, s.port),
}


def canonical(name):
    n = ALIASES.get(name, name)
    if n not in NAMES:
        raise ServiceError(f"unknown service {name!r}; known: {', '.join(NAMES)}")
    return n


def external_only():
    """True when the servers must all come from the variables (scripts/test --external)."""
    return os.environ.get("COSOCKET_EXTERNAL", "") not in ("", "0")


def from_env(name):
    """The external server named by the service's env var, or None when unset."""
    var = ENV_VARS[name]
    value = os.environ.get(var)
    if not value:
        if external_only():
            raise ServiceError(f"COSOCKET_EXTERNAL is set (scripts/test --external), so no {name} "
                               f"is started here: set {var}=host:port to the running {name}")
        return None
    host, port = parse_addr(value, var)
    svc = Service(name, host, port, path=os.environ.get(SOCKET_ENV_VARS.get(name, "")) or None,
                  external=True)
    try:
        svc.ready_s = wait_until(lambda: CHECKS[name](svc), EXTERNAL_TIMEOUT, f"{name} at {var}={value}")
    except ServiceError as e:
        raise ServiceError(f"{e}: is the server named by {var} running?") from None
    return svc


def get(name):
    """An external server from the env var if set, else a freshly started one.
    Call .stop() when done (a no-op for external servers)."""
    name = canonical(name)
    return from_env(name) or STARTERS[name]()


# --------------------------------------------------------------------------
# CLI

def _start_all(names):
    started = []
    try:
        for n in names:
            svc = get(n)
            started.append(svc)
            how = "external" if svc.external else f"ready in {svc.total_s:.2f} s"
            print(f"services: {n} at {svc.addr}{' ' + svc._path if svc._path else ''} ({how})",
                  file=sys.stderr, flush=True)
    except BaseException:
        _stop_all(started)
        raise
    return started


def _stop_all(started):
    for svc in reversed(started):
        svc.stop()


def _names(args):
    names = []
    for a in args or ["all"]:
        for n in (NAMES if a == "all" else [canonical(a)]):
            if n not in names:
                names.append(n)
    return names


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        prog="scripts/services",
        description="Start cosocket's test servers on loopback (free ports, temp dirs).",
        epilog="run: starts NAMES (default all), runs CMD with COSOCKET_REDIS=host:port etc. in "
               "its environment, stops the servers, exits with CMD's status. "
               "start: starts NAMES, prints 'export VAR=...' lines, keeps them up until "
               "Ctrl-C/SIGTERM. list: the names and their variables. "
               f"Names: {', '.join(NAMES)} (aliases: {', '.join(ALIASES)}).")
    p.add_argument("action", choices=["run", "start", "list"])
    p.add_argument("names", nargs="*", help="services (default: all)")
    args = p.parse_args(argv)

    if args.action == "list":
        for n in NAMES:
            extra = f" (+{SOCKET_ENV_VARS[n]})" if n in SOCKET_ENV_VARS else ""
            print(f"{n:10} {ENV_VARS[n]}{extra}")
        return 0
    try:
        names = _names(args.names)
    except ServiceError as e:
        print(f"services: {e}", file=sys.stderr)
        return 2
    if args.action == "run" and not cmd:
        p.error("run needs a command after --")

    # SIGTERM/SIGHUP: stop cleanly (the finally blocks below run).
    got = []

    def on_signal(signum, _frame):
        got.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        started = _start_all(names)
    except ServiceError as e:
        print(f"services: failed to start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        env = dict(os.environ)
        for svc in started:
            env.update(svc.env())
        if args.action == "start":
            for k, v in sorted(env.items()):
                if k.startswith("COSOCKET_") and k not in os.environ:
                    print(f"export {k}={v}", flush=True)
            print("services: up; Ctrl-C to stop", file=sys.stderr, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        child = subprocess.Popen(cmd, env=env)
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C already reached the child (same process group); a
                # SIGTERM/SIGHUP sent to us is passed on. Then keep waiting.
                if got and child.poll() is None:
                    child.send_signal(got.pop())
        return rc if rc >= 0 else 128 - rc
    except FileNotFoundError as e:
        print(f"services: {e}", file=sys.stderr)
        return 127
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_all(started)


if __name__ == "__main__":
    sys.exit(main())
