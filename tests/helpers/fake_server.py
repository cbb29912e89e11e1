"""Scripted TCP / unix-socket / UDP servers that run as threads in the test process.

FakeServer(steps, unix=False)  follows the same script on every accepted connection:
    ("expect", b"GET\\r\\n")   read exactly these bytes; a mismatch is recorded in
                               .errors and the connection is closed
    ("read", n)               read n bytes, whatever they are
    ("read_until", b"\\r\\n")   read up to and including the delimiter
    ("reply", b"...")         send bytes
    ("delay", 0.5)            sleep (seconds)
    ("shutdown",)             half-close: shutdown(SHUT_WR), keep reading
    ("close",)                graceful close: SHUT_WR, read until the client goes (2 s cap), close
    ("reset",)                abortive close: SO_LINGER 0 then close, the client sees RST
    ("stall",)                keep the connection open, say nothing, until the client goes
  When the script ends without close/reset/stall the connection is closed gracefully.
  Reads wait at most STEP_TIMEOUT seconds; a client that disconnects early just ends the script.
  .port (.path for unix), .connections (accepted), .received (bytes per connection),
  .errors (expect mismatches), .wait_connections(n), .stop()

EchoServer(unix=False)  echoes everything, keeps connections open; .connections counts accepts,
  .active the open ones, .received bytes per connection; .close_all() drops every connection.

UdpEcho(unix=False)     echoes each datagram back; .received lists the datagrams.
"""
import os
import shutil
import socket
import struct
import tempfile
import threading
import time

HOST = "127.0.0.1"
STEP_TIMEOUT = 10.0
POLL = 0.05


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class _Listener:
    """Shared accept loop: a listening socket and one thread per connection."""

    kind = socket.SOCK_STREAM

    def __init__(self, unix=False):
        self.unix = unix
        self.host, self.port, self.path, self._dir = HOST, None, None, None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._conns = []          # open connection sockets (to unblock them at stop)
        self._received = []       # bytearray per connection
        self.connections = 0
        self.errors = []
        if unix:
            self._dir = tempfile.mkdtemp(prefix="cosocket-fake.")
            self.path = os.path.join(self._dir, "sock")
            self.sock = socket.socket(socket.AF_UNIX, self.kind)
            self.sock.bind(self.path)
        else:
            self.sock = socket.socket(socket.AF_INET, self.kind)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((HOST, 0))
            self.port = self.sock.getsockname()[1]
        self.sock.settimeout(POLL)
        if self.kind == socket.SOCK_STREAM:
            self.sock.listen(64)
        self._spawn(self._serve_loop)

    @property
    def addr(self):
        return f"unix:{self.path}" if self.unix else f"{self.host}:{self.port}"

    @property
    def received(self):
        with self._lock:
            return [bytes(b) for b in self._received]

    @property
    def active(self):
        with self._lock:
            return len(self._conns)

    def wait_connections(self, n, timeout=10.0):
        """Wait until at least n connections were accepted; returns True if so."""
        return _wait(lambda: self.connections >= n, timeout)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _serve_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(POLL)
            with self._lock:
                idx = len(self._received)
                self._received.append(bytearray())
                self._conns.append(conn)
                self.connections += 1
            self._spawn(self._conn_main, conn, idx)

    def _conn_main(self, conn, idx):
        try:
            self.handle(conn, idx)
        except OSError:
            pass
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _recv(self, conn, idx, timeout=STEP_TIMEOUT):
        """One recv: bytes, b"" on EOF, None on timeout/stop."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return b""
            with self._lock:
                self._received[idx] += data
            return data
        return None

    def _drain(self, conn, idx, timeout):
        while True:
            data = self._recv(conn, idx, timeout)
            if not data:
                return

    def handle(self, conn, idx):
        raise NotImplementedError

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class FakeServer(_Listener):
    STEPS = {"expect": 1, "read": 1, "read_until": 1, "reply": 1, "delay": 1,
             "shutdown": 0, "close": 0, "reset": 0, "stall": 0}

    def __init__(self, steps, unix=False):
        steps = [tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in steps]
        for s in steps:
            if not s or s[0] not in self.STEPS or len(s) != 1 + self.STEPS[s[0]]:
                raise ValueError(f"bad fake_server step {s!r}; known: {sorted(self.STEPS)}")
            if s[0] in ("expect", "reply", "read_until") and not isinstance(s[1], (bytes, bytearray)):
                raise ValueError(f"fake_server step {s!r}: the argument must be bytes")
        self.steps = steps
        super().__init__(unix=unix)

    def _fill(self, conn, idx, buf, enough):
        """Read into buf until enough(buf); False on EOF/timeout."""
        while not enough(buf):
            data = self._recv(conn, idx)
            if not data:
                return False
            buf += data
        return True

    def handle(self, conn, idx):
        buf = bytearray()      # bytes read but not consumed by a step yet
        for step in self.steps:
            op = step[0]
            if op == "expect":
                want = bytes(step[1])
                ok = self._fill(conn, idx, buf, lambda b: len(b) >= len(want))
                got = bytes(buf[:len(want)])
                if got != want[:len(got)] or (ok and got != want):
                    with self._lock:
                        self.errors.append(f"connection {idx}: expected {want!r}, got {got!r}")
                    _reset(conn)
                    return
                if not ok:
                    return        # the client went away first
                del buf[:len(want)]
            elif op == "read":
                if not self._fill(conn, idx, buf, lambda b: len(b) >= step[1]):
                    return
                del buf[:step[1]]
            elif op == "read_until":
                delim = bytes(step[1])
                if not self._fill(conn, idx, buf, lambda b: delim in b):
                    return
                del buf[:buf.index(delim) + len(delim)]
            elif op == "reply":
                try:
                    conn.settimeout(STEP_TIMEOUT)
                    conn.sendall(step[1])
                    conn.settimeout(POLL)
                except OSError:
                    return
            elif op == "delay":
                if self._stop.wait(step[1]):
                    return
            elif op == "shutdown":
                conn.shutdown(socket.SHUT_WR)
            elif op == "reset":
                _reset(conn)
                return
            elif op == "stall":
                while not self._stop.is_set():
                    if self._recv(conn, idx, 3600) == b"":
                        return
                return
            elif op == "close":
                break
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return
        self._drain(conn, idx, 2.0)


class EchoServer(_Listener):
    def handle(self, conn, idx):
        while not self._stop.is_set():
            data = self._recv(conn, idx, 3600)
            if not data:
                return
            conn.settimeout(STEP_TIMEOUT)
            conn.sendall(data)
            conn.settimeout(POLL)

    def close_all(self):
        """Close every open connection from the server side (FIN)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class UdpEcho(_Listener):
    kind = socket.SOCK_DGRAM

    def _serve_loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._received.append(bytearray(data))
                self.connections += 1
            if peer:           # an unbound unix datagram client cannot be answered
                try:
                    self.sock.sendto(data, peer)
                except OSError:
                    pass
