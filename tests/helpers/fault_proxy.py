"""A TCP proxy that runs as threads in the test process, between a cosocket script and a real
server (redis, memcached, MariaDB, beanstalkd from tests/services.py), and injects faults when
the test asks for them.

FaultProxy(upstream_port, upstream_host="127.0.0.1")
    listens on .host:.port (.addr); each accepted connection gets its own connection to the
    upstream server and bytes are forwarded both ways until a fault or either side ends it.

Faults (name, arguments):
    "reset"          RST to the client (SO_LINGER 0, close), FIN to the server
    "reset_server"   RST to the server, FIN to the client (the client sees the server go away)
    "close"          FIN to both sides
    "fin"            half-close: FIN to the client, both connections stay open; what the
                     client sends after it and what the server sends are dropped
    "blackhole"      forward nothing more either way, keep both connections open (the client
                     times out)
    "delay", s       hold the reply for s seconds, then forward it (and what follows)
    "truncate", n    forward n bytes of the reply (across chunks), then FIN to both sides;
                     truncate with hold=True: the rest of the reply (and everything after)
                     is never forwarded and the connection stays open (a stalled reply)
  A "reply" is what the server sends first after the fault was armed. delay and truncate
  act on a reply; the others act on a reply when armed for one (the reply is not
  forwarded), else at once.

When a fault acts:
    .arm(fault, *args, when="next_reply")   the next reply on any connection (one-shot)
    .arm(fault, *args, when="next_conn")    the next accepted connection: delay/truncate on
                                            its first reply, the others as soon as it is
                                            accepted (no upstream connection is made)
    .now(fault, *args)                      every open connection, now: returns once each
                                            one applied it (delay/truncate: its next reply);
                                            returns how many connections got it
  Armed faults queue up in order; .pending() tells how many are left.

Counters: .connections (accepted), .active (open), .fired (list of (fault, connection
  index)), .wait_connections(n), .wait_fired(n), .errors (unexpected exceptions in the proxy's
  threads), .stop() closes everything (also a context manager).
"""
import select
import socket
import struct
import threading
import time

HOST = "127.0.0.1"
POLL = 0.05
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0

ACTIONS = ("reset", "reset_server", "close", "fin", "blackhole")
REPLY_FAULTS = ("delay", "truncate")
WHENS = ("next_reply", "next_conn")


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _rst(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _fin_close(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def _check(fault, args, kw):
    if fault in ACTIONS:
        if args or kw:
            raise ValueError(f"fault {fault!r} takes no arguments")
    elif fault == "delay":
        if len(args) != 1 or kw or not isinstance(args[0], (int, float)):
            raise ValueError("fault 'delay' takes the seconds")
    elif fault == "truncate":
        if len(args) != 1 or not isinstance(args[0], int) or args[0] < 0 or set(kw) - {"hold"}:
            raise ValueError("fault 'truncate' takes a byte count (and hold=)")
    else:
        raise ValueError(f"unknown fault {fault!r}; known: {ACTIONS + REPLY_FAULTS}")
    return (fault, args, dict(kw))


class _Conn:
    """One proxied connection: the client's socket, the upstream one, one thread."""

    def __init__(self, proxy, idx, client):
        self.proxy, self.idx, self.client = proxy, idx, client
        self.server = None
        self.mode = "forward"          # forward | fin | blackhole
        self.reply_fault = None        # the fault for this connection's next reply
        self.trunc = None              # [bytes still to forward, hold] while truncating
        self.cmds = []                 # faults from now(): (fault, done Event)
        self.lock = threading.Lock()
        self.done = False

    # --- the thread -----------------------------------------------------------------------

    def main(self, at_accept):
        try:
            if at_accept is not None and at_accept[0] in ACTIONS:
                self.fire(at_accept)
                if self.done:
                    return
            else:
                self.reply_fault = at_accept
                self.server = socket.create_connection(
                    (self.proxy.upstream_host, self.proxy.upstream_port), CONNECT_TIMEOUT)
            self.loop()
        except OSError:
            pass
        except Exception as e:       # a bug in the proxy: the test fails at teardown
            self.proxy.errors.append(f"connection {self.idx}: {e!r}")
        finally:
            self.end()

    def loop(self):
        stop = self.proxy._stop
        while not stop.is_set() and not self.done:
            self.run_cmds()
            if self.done:
                return
            socks = [self.client] + ([self.server] if self.server else [])
            readable, _, _ = select.select(socks, [], [], POLL)
            if self.client in readable:
                data = self.recv(self.client)
                if not data:
                    return                   # the client went: FIN (or RST) to the server
                if self.mode == "forward" and self.server:
                    self.send(self.server, data)
            if self.server and self.server in readable and not self.done:
                data = self.recv(self.server)
                if not data:
                    return                   # the server went: FIN to the client
                if self.mode == "forward":
                    self.on_reply(data)

    def on_reply(self, data):
        if self.trunc is None:
            fault = self.reply_fault or self.proxy._take("next_reply")
            self.reply_fault = None
            if fault is not None:
                name, args, kw = fault
                if name == "delay":
                    self.proxy._fired(name, self.idx)
                    if self.proxy._stop.wait(args[0]):
                        return
                elif name == "truncate":
                    self.proxy._fired(name, self.idx)
                    self.trunc = [args[0], kw.get("hold", False)]
                else:
                    self.fire(fault)         # the reply is not forwarded
                    return
        if self.trunc is not None:
            left, hold = self.trunc
            if left > 0:
                self.send(self.client, data[:left])
                self.trunc[0] = left - min(left, len(data))
            if self.trunc[0] == 0:
                if hold:
                    self.mode = "blackhole"
                else:
                    self.close_both()
            return
        self.send(self.client, data)

    def fire(self, fault):
        name = fault[0]
        self.proxy._fired(name, self.idx)
        if name in REPLY_FAULTS:
            self.reply_fault = fault
        elif name == "reset":
            _rst(self.client)
            if self.server:
                _fin_close(self.server)
            self.done = True
        elif name == "reset_server":
            if self.server:
                _rst(self.server)
            _fin_close(self.client)
            self.done = True
        elif name == "close":
            self.close_both()
        elif name == "fin":
            self.client.shutdown(socket.SHUT_WR)
            self.mode = "fin"
        elif name == "blackhole":
            self.mode = "blackhole"

    def close_both(self):
        if self.server:
            _fin_close(self.server)
        _fin_close(self.client)
        self.done = True

    def run_cmds(self):
        with self.lock:
            cmds, self.cmds = self.cmds, []
        for fault, ev in cmds:
            if not self.done:
                self.fire(fault)
            ev.set()

    def end(self):
        with self.lock:
            self.done = True
            cmds, self.cmds = self.cmds, []
        for _, ev in cmds:
            ev.set()
        for s in (self.client, self.server):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.proxy._ended(self)

    # --- I/O ------------------------------------------------------------------------------

    @staticmethod
    def recv(sock):
        try:
            return sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            return b""

    @staticmethod
    def send(sock, data):
        sock.settimeout(SEND_TIMEOUT)
        sock.sendall(data)

    # --- from the test's thread -----------------------------------------------------------

    def submit(self, fault, ev):
        with self.lock:
            if self.done:
                return False
            self.cmds.append((fault, ev))
            return True


class FaultProxy:
    def __init__(self, upstream_port, upstream_host=HOST):
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.host = HOST
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._armed = {w: [] for w in WHENS}
        self._open = []
        self._threads = []
        self.connections = 0
        self.fired = []
        self.errors = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.sock.settimeout(POLL)
        self._spawn(self._accept_loop)

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    @property
    def active(self):
        with self._lock:
            return len(self._open)

    # --- the test's API -------------------------------------------------------------------

    def arm(self, fault, *args, when="next_reply", **kw):
        if when not in WHENS:
            raise ValueError(f"when must be one of {WHENS}, not {when!r}")
        f = _check(fault, args, kw)
        with self._lock:
            self._armed[when].append(f)

    def now(self, fault, *args, timeout=5.0, **kw):
        f = _check(fault, args, kw)
        with self._lock:
            conns = list(self._open)
        events = []
        for c in conns:
            ev = threading.Event()
            if c.submit(f, ev):
                events.append(ev)
        deadline = time.monotonic() + timeout
        for ev in events:
            if not ev.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"fault {fault!r} not applied within {timeout} s")
        return len(events)

    def pending(self):
        with self._lock:
            return sum(len(v) for v in self._armed.values())

    def fired_names(self):
        with self._lock:
            return [name for name, _ in self.fired]

    def wait_connections(self, n, timeout=10.0):
        return _wait(lambda: self.connections >= n, timeout)

    def wait_fired(self, n, timeout=10.0):
        return _wait(lambda: len(self.fired) >= n, timeout)

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for t in list(self._threads):
            t.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- internals ------------------------------------------------------------------------

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _take(self, when):
        with self._lock:
            armed = self._armed[when]
            return armed.pop(0) if armed else None

    def _fired(self, name, idx):
        with self._lock:
            self.fired.append((name, idx))

    def _ended(self, conn):
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            client.setblocking(True)
            with self._lock:
                idx = self.connections
                self.connections += 1
                conn = _Conn(self, idx, client)
                self._open.append(conn)
                armed = self._armed["next_conn"]
                at_accept = armed.pop(0) if armed else None
            self._spawn(conn.main, at_accept)
