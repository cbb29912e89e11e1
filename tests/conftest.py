"""Fixtures for the whole cosocket test suite. Run with: /usr/bin/python3 -m pytest

Binary:      cosocket_bin (str): $COSOCKET_BIN, else <repo>/<$COSOCKET_BUILD_DIR or build>/cosocket/cosocket
             build_dir (str): <repo>/<$COSOCKET_BUILD_DIR or build>
Running Lua: run_lua(code=None, *args, file=None, flags=(), timeout=30, env=None, stdin=None, cwd=None)
               -> Result(.rc .out .err .out_bytes .err_bytes .argv .duration)
             run_lua_ok(...) same arguments -> stdout (str); asserts rc == 0 and a clean stderr
Real servers (session-scoped, tests/services.py; env vars point at running ones instead):
             redis, memcached, mariadb, knot, ws_echo, beanstalkd -> .host .port .addr
             (.path unix socket)
Helpers (function-scoped, threads in this process, tests/helpers/):
             stub_dns -> .host .port .flag .queries .names() .add()
             fake_server(steps, unix=False) -> .port/.path .received .connections .errors
             echo_server -> .port .connections .active .received .close_all(); echo_server(unix=True)
             udp_echo -> .port .received; udp_echo(unix=True)
             tcp_port_closed -> a loopback port with nothing listening (connection refused)
No test skips: a missing binary or server fails the test.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import services  # noqa: E402
from helpers.fake_server import EchoServer, FakeServer, UdpEcho  # noqa: E402
from helpers.stub_dns import StubDNS  # noqa: E402

# Sanitizer and leak-check reports in a child's stderr. UBSan lines look like
# "file.cc:12:5: runtime error: ..."; the anchored pattern keeps a Lua error
# message that merely says "runtime error:" from matching.
SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: AddressSanitizer"
    r"|SUMMARY: UndefinedBehaviorSanitizer|ThreadSanitizer"
    r"|^\S+:\d+:\d+: runtime error: "
    r"|^cosocket: leak check: ", re.M)

# Every cosocket the tests start checks at exit that it left no descriptor open beyond the
# ones it started with (runtime/fd_census.h); its report fails the test like a sanitizer's.
os.environ.setdefault("COSOCKET_CHECK_LEAKS", "1")


def build_dir():
    return os.path.join(REPO, os.environ.get("COSOCKET_BUILD_DIR") or "build")


def cosocket_path():
    return os.environ.get("COSOCKET_BIN") or os.path.join(build_dir(), "cosocket", "cosocket")


def sanitizer_report(text):
    """The sanitizer report lines in text ('' when there is none)."""
    return "\n".join(line for line in text.splitlines() if SANITIZER_RE.search(line))


def pytest_report_header(config):
    return f"cosocket: {cosocket_path()} (COSOCKET_BUILD_DIR={os.environ.get('COSOCKET_BUILD_DIR') or 'build'})"


# --------------------------------------------------------------------------
# the binary and running Lua

@pytest.fixture(scope="session")
def build_dir_path():
    return build_dir()


@pytest.fixture(scope="session")
def cosocket_bin():
    path = cosocket_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"cosocket binary not found at {path}: build it with scripts/bootstrap "
                    "(or set COSOCKET_BIN / COSOCKET_BUILD_DIR)", pytrace=False)
    return path


class Result:
    def __init__(self, argv, rc, out, err, duration):
        self.argv, self.rc, self.duration = argv, rc, duration
        self.out_bytes, self.err_bytes = out, err
        self.out = out.decode("utf-8", errors="replace")
        self.err = err.decode("utf-8", errors="replace")

    def __repr__(self):
        return f"<Result rc={self.rc} out={self.out[:200]!r} err={self.err[:200]!r}>"

    def describe(self):
        return (f"command: {' '.join(self.argv)}\nrc: {self.rc}\n"
                f"--- stdout ---\n{self.out[-6000:]}\n--- stderr ---\n{self.err[-6000:]}")


class LuaRunner:
    def __init__(self, binary, tmp_path):
        self.binary, self.tmp, self.n = binary, tmp_path, 0

    def __call__(self, code=None, *args, file=None, flags=(), timeout=30, env=None,
                 stdin=None, cwd=None):
        argv = [self.binary, *[str(f) for f in flags]]
        if code is not None and file is not None:
            raise ValueError("run_lua: give code or file, not both")
        if code is not None:
            self.n += 1
            file = self.tmp / f"script{self.n}.lua"
            file.write_text(code)
        if file is not None:
            argv.append(str(file))
        argv += [str(a) for a in args]
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        if isinstance(stdin, str):
            stdin = stdin.encode()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                                cwd=str(cwd or self.tmp), start_new_session=True)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            r = Result(argv, None, out, err, time.monotonic() - t0)
            pytest.fail(f"cosocket timed out after {timeout} s (killed)\n{r.describe()}", pytrace=False)
        r = Result(argv, proc.returncode, out, err, time.monotonic() - t0)
        report = sanitizer_report(r.err)
        if report:
            pytest.fail(f"sanitizer report in cosocket's stderr:\n{report}\n{r.describe()}", pytrace=False)
        return r


@pytest.fixture
def run_lua(cosocket_bin, tmp_path):
    """run_lua(code=None, *args, file=None, flags=(), timeout=30, env=None, stdin=None, cwd=None)

    Writes code to a temp .lua file (or runs file=...), runs `cosocket [flags] script.lua args`
    (no script when both are None, e.g. flags=["-e", code]) with stdin from /dev/null unless
    stdin= is given, in tmp_path unless cwd=. env= entries are added to the environment (None
    removes one). Returns a Result; fails the test on timeout or on a sanitizer report."""
    return LuaRunner(cosocket_bin, tmp_path)


@pytest.fixture
def run_lua_ok(run_lua):
    """Like run_lua but asserts rc == 0 and returns stdout (str)."""
    def run(*a, **kw):
        r = run_lua(*a, **kw)
        if r.rc != 0:
            pytest.fail(f"cosocket exited with rc={r.rc}\n{r.describe()}", pytrace=False)
        return r.out
    return run


# --------------------------------------------------------------------------
# real servers (session-scoped)

def _service(name):
    try:
        svc = services.get(name)
    except services.ServiceError as e:
        pytest.fail(f"could not start {name}: {e}", pytrace=False)
    return svc


@pytest.fixture(scope="session")
def redis():
    svc = _service("redis")
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def memcached():
    svc = _service("memcached")
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def mariadb():
    svc = _service("mariadb")
    svc.database, svc.users = services.MARIADB_DATABASE, dict(services.MARIADB_USERS)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def knot():
    svc = _service("knot")
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def beanstalkd():
    svc = _service("beanstalkd")
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def ws_echo():
    svc = _service("ws_echo")
    svc.url = f"ws://{svc.addr}/"
    yield svc
    svc.stop()


# --------------------------------------------------------------------------
# in-process helper servers (function-scoped)

@pytest.fixture
def stub_dns():
    stub = StubDNS()
    yield stub
    stub.stop()


@pytest.fixture
def fake_server():
    started = []

    def make(steps, unix=False):
        srv = FakeServer(steps, unix=unix)
        started.append(srv)
        return srv
    yield make
    for srv in started:
        srv.stop()
    errors = [e for srv in started for e in srv.errors]
    if errors:
        pytest.fail("fake_server saw unexpected bytes:\n" + "\n".join(errors), pytrace=False)


class _Factory:
    """A started default server (attributes forwarded) that can also start more: f(unix=True)."""

    def __init__(self, cls):
        self._cls, self._started = cls, []
        self._default = self(unix=False)

    def __call__(self, unix=False):
        srv = self._cls(unix=unix)
        self._started.append(srv)
        return srv

    def __getattr__(self, name):
        return getattr(self._default, name)

    def stop_all(self):
        for srv in self._started:
            srv.stop()


@pytest.fixture
def echo_server():
    f = _Factory(EchoServer)
    yield f
    f.stop_all()


@pytest.fixture
def udp_echo():
    f = _Factory(UdpEcho)
    yield f
    f.stop_all()


@pytest.fixture
def tcp_port_closed():
    """A loopback TCP port nothing listens on (connecting gets ECONNREFUSED)."""
    return services.free_port()


# --------------------------------------------------------------------------
# TLS (tests/tlsenv.py): a test CA and certificates, a real redis-server with TLS

@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    import tlsenv
    return tlsenv.make_certs(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def redis_tls(tls_certs):
    import tlsenv
    try:
        svc = tlsenv.start_redis_tls(tls_certs)
    except services.ServiceError as e:
        pytest.fail(f"could not start redis-server with TLS: {e}", pytrace=False)
    yield svc
    svc.stop()


# --------------------------------------------------------------------------
# TLS-enabled real servers for the driver tests (tests/tlsenv.py)

def _tls_service(what, start, *args):
    try:
        return start(*args)
    except services.ServiceError as e:
        pytest.fail(f"could not start {what}: {e}", pytrace=False)


@pytest.fixture(scope="session")
def redis_mtls(tls_certs):
    """redis-server whose TLS port .tls_port requires a client certificate (test CA)."""
    import tlsenv
    svc = _tls_service("redis-server with client certificates required", tlsenv.start_redis_mtls,
                       tls_certs)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def memcached_tls(tls_certs):
    """memcached -Z: TLS only on .port, the test CA's server certificate."""
    import tlsenv
    svc = _tls_service("memcached with TLS", tlsenv.start_memcached_tls, tls_certs)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def mariadb_tls(tls_certs):
    """mariadbd with TLS (--ssl-ca/--ssl-cert/--ssl-key from tls_certs): .port .path,
    database testdb, users native/nativepw, edu/edpw, sslonly/sslpw (REQUIRE SSL),
    x509user/x509pw (REQUIRE X509)."""
    import tlsenv
    svc = _tls_service("MariaDB with TLS", tlsenv.start_mariadb_tls, tls_certs)
    svc.database = services.MARIADB_DATABASE
    yield svc
    svc.stop()


# --------------------------------------------------------------------------
# cosocket processes running server scripts (tests/helpers/cosocket_server.py)

@pytest.fixture
def server(cosocket_bin, tmp_path):
    """server(code=None, file=..., args=(), flags=()) starts `cosocket [flags] script args` in its
    own session; .port() waits for "listening on PORT"; killed at the end (with any worker
    processes) if still running."""
    from helpers.cosocket_server import ServerProc, children_of
    procs = []

    def start(code=None, **kw):
        p = ServerProc(cosocket_bin, tmp_path, code, name=f"server{len(procs)}.lua", **kw)
        procs.append(p)
        return p
    yield start
    for p in procs:
        kids = children_of(p.pid)  # -w workers too
        if p.p.poll() is None:
            p.kill()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
