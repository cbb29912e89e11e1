"""The two servers the fuzz client talks to (threads of the Python process, stdlib only).

Both listen on one loopback port for TCP and UDP (DNS) data and on a second port for the
control connection of tests/fuzz/lua/fuzz_run.lua, which asks for its cases one at a time:

    client: next\\n              server: case N SCENARIO\\n   (or end\\n when there is none left)
    client: done N\\n            server: ok\\n

Every data connection and datagram that arrives between "case N" and the next "next" belongs
to case N. FuzzServer replays the server side of case N's conversation with the case's
mutation (tests/fuzz/mutate.py); RecordProxy forwards to a real server and records the bytes
both ways into a Conversation (tests/fuzz/corpus.py).

The pool check: when a client hands a connection to its keepalive pool and takes it out
again, it sends the driver's sentinel request (the last request of the corpus' "sentinel"
conversation). FuzzServer answers it wherever it is in the conversation -- after what a
stalled reply still owed -- with the recorded sentinel reply, so a connection pooled in the
middle of a reply shows up as a wrong sentinel result.
"""
import socket
import struct
import threading
import time

from corpus import Conversation

HOST = "127.0.0.1"
POLL = 0.05
SHORT_REQUEST_WAIT = 0.25   # s of client silence before answering a shorter request than recorded
READ_CAP = 30.0             # s a connection may wait for its client at most


def _reset(conn):
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def _ws_unmask(buf):
    """Client websocket frames with their payloads unmasked and mask keys zeroed (the mask
    is random); other bytes as they are."""
    b = bytes(buf)
    if not b or b[0] & 0x70 or (b[0] & 0x0F) not in (0, 1, 2, 8, 9, 10):
        return b
    out, i = bytearray(), 0
    while i + 2 <= len(b):
        n7 = b[i + 1] & 0x7F
        ext = 2 if n7 == 126 else 8 if n7 == 127 else 0
        masked = b[i + 1] & 0x80
        hl = 2 + ext + (4 if masked else 0)
        if i + hl > len(b):
            break
        n = n7 if n7 < 126 else int.from_bytes(b[i + 2:i + 2 + ext], "big")
        key = b[i + 2 + ext:i + hl] if masked else b"\0\0\0\0"
        payload = b[i + hl:i + hl + n]
        out += b[i:i + 2 + ext] + (b"\0\0\0\0" if masked else b"")
        out += bytes(c ^ key[k % 4] for k, c in enumerate(payload))
        i += hl + len(payload)
        if len(payload) < n:
            return bytes(out)
    return bytes(out + b[i:])


class _Base:
    def __init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._conns = []
        self.errors = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        while True:          # one port number for TCP and UDP
            self.tcp.bind((HOST, 0))
            self.port = self.tcp.getsockname()[1]
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.udp.bind((HOST, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.listen(64)
        self.tcp.settimeout(POLL)
        self.udp.settimeout(POLL)
        self.ctl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ctl.bind((HOST, 0))
        self.ctl.listen(4)
        self.ctl.settimeout(POLL)
        self.ctl_port = self.ctl.getsockname()[1]
        self.current = None           # the case data connections belong to
        for fn in (self._accept_loop, self._udp_loop, self._ctl_loop):
            self._spawn(fn)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _error(self, msg):
        with self._lock:
            self.errors.append(msg)

    # -- control ------------------------------------------------------------------------

    def _ctl_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.ctl.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._ctl_conn, conn)

    def _ctl_conn(self, conn):
        conn.settimeout(POLL)
        f = b""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    return
                f += data
                while b"\n" in f:
                    line, f = f.split(b"\n", 1)
                    words = line.decode().split()
                    if words == ["next"]:
                        conn.sendall(self.next_case().encode() + b"\n")
                    elif len(words) == 2 and words[0] == "done":
                        self.case_done(int(words[1]))
                        conn.sendall(b"ok\n")
                    else:
                        self._error(f"control: bad line {line!r}")
                        return
        except OSError:
            pass
        finally:
            conn.close()

    # -- data ---------------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(conn)
                case = self.current
            self._spawn(self._conn_main, conn, case)

    def _conn_main(self, conn, case):
        try:
            if case is not None:
                self.handle_tcp(conn, case)
        except OSError:
            pass
        except Exception as e:      # a bug of the harness: report it, do not hide it
            self._error(f"server thread: {type(e).__name__}: {e}")
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                case = self.current
            if case is not None:
                self._spawn(self.handle_udp, data, peer, case)

    def stop(self):
        self._stop.set()
        for s in (self.tcp, self.udp, self.ctl):
            try:
                s.close()
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


class _Case:
    def __init__(self, number, plan, conv):
        self.number, self.plan, self.conv = number, plan, conv
        self.tcp_count = 0
        self.udp_count = 0
        self.mutated_used = False
        self.sent = []            # what the mutated turn really put on the wire (for reports)


class FuzzServer(_Base):
    def __init__(self, driver, convs, cases, plan_for, sentinel):
        """cases: the case numbers to serve in order; plan_for(n) -> mutate.Plan;
        sentinel: (request, reply) bytes of the pool check."""
        self.driver, self.convs, self.plan_for = driver, convs, plan_for
        self.cases = list(cases)
        self.sentinel_c, self.sentinel_s = sentinel
        self.norm = _ws_unmask if driver == "websocket" else bytes
        self.sentinel_norm = self.norm(self.sentinel_c)
        self.served = {}          # case number -> _Case
        super().__init__()

    def next_case(self):
        with self._lock:
            if not self.cases:
                self.current = None
                return "end"
            n = self.cases.pop(0)
            p = self.plan_for(n)
            self.current = self.served[n] = _Case(n, p, self.convs[p.scenario])
            return f"case {n} {p.scenario}"

    def case_done(self, n):
        with self._lock:
            self.current = None

    def _take_stream(self, case):
        with self._lock:
            k = case.tcp_count
            case.tcp_count += 1
        name = f"tcp{k}"
        if name not in case.conv.streams:
            return "tcp0", False      # a reconnect (the pool dropped the connection): replayed as is
        mutate = case.plan.stream == name and not case.mutated_used
        if mutate:
            case.mutated_used = True
        return name, mutate

    # -- reading the client ------------------------------------------------------------

    def _find_sentinel(self, buf):
        """Where the sentinel request starts in buf, or -1. Anywhere, not only at the start:
        a request of another length than the recorded one (a mutated reply made the client
        ask for job 45, not 1) leaves the turn framing a few bytes off."""
        return self.norm(buf).find(self.sentinel_norm)

    def _could_be_sentinel(self, buf):
        return self.sentinel_norm.startswith(self.norm(buf))

    def _recv(self, conn, timeout):
        """bytes; b"" on EOF or a reset; None on a timeout or at stop."""
        conn.settimeout(min(timeout, POLL))
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except socket.timeout:
                if time.monotonic() >= deadline:
                    return None
            except (ConnectionResetError, BrokenPipeError):
                return b""
        return None

    def _read_turn(self, conn, buf, want):
        """Reads the client's next request (the recorded one is want) into buf: "turn" (as
        many bytes, or a shorter request followed by silence), "sentinel", or "eof". want
        None: only a sentinel is awaited. A turn that is the sentinel request itself (the
        sentinel scenario) is a turn."""
        deadline = time.monotonic() + READ_CAP
        need = None if want is None else len(want)
        watch = want is None or not self.norm(want).startswith(self.sentinel_norm)
        while True:
            at = self._find_sentinel(buf) if watch and buf else -1
            if at >= 0:
                del buf[:at]
                return "sentinel"
            if need is not None and len(buf) >= need and (
                    not watch or not self._could_be_sentinel(buf)
                    or len(buf) >= len(self.sentinel_c)):
                return "turn"
            short = need is not None and buf
            data = self._recv(conn, SHORT_REQUEST_WAIT if short else max(0.0, deadline - time.monotonic()))
            if data is None:
                if short:
                    return "turn"
                return "eof"
            if not data:
                return "eof"
            buf += data

    def _send(self, conn, data):
        conn.settimeout(10)
        conn.sendall(data)

    # -- serving ------------------------------------------------------------------------

    def handle_tcp(self, conn, case):
        stream, mutate = self._take_stream(case)
        plan = case.plan
        turns = case.conv.streams[stream]
        buf = bytearray()
        pending = b""
        for i, (c, s) in enumerate(turns):
            if c:
                got = self._read_turn(conn, buf, c)
                if got == "eof":
                    return
                if got == "sentinel":
                    break
                del buf[:len(c)]
            if not (mutate and plan.stream == stream and plan.turn == i):
                self._send(conn, s)
                continue
            k = plan.kind
            if k in ("flip", "insert", "length"):
                case.sent.append(plan.data)
                self._send(conn, plan.data)
            elif k == "split":
                for piece, delay in plan.pieces:
                    self._send(conn, piece)
                    if delay:
                        time.sleep(delay)
            elif k.startswith("cut_"):
                self._send(conn, s[:plan.offset])
                if k == "cut_close":
                    conn.shutdown(socket.SHUT_WR)
                    while self._recv(conn, 5.0):
                        pass
                    return
                if k == "cut_reset":
                    time.sleep(0.005)
                    _reset(conn)
                    return
                pending = s[plan.offset:]      # cut_stall: owed, sent before a sentinel reply
                break
        # the conversation is over (or stalled): answer sentinels until the client goes
        while True:
            got = self._read_turn(conn, buf, None)
            if got != "sentinel":
                return
            del buf[:len(self.sentinel_c)]
            self._send(conn, pending + self.sentinel_s)
            pending = b""

    def handle_udp(self, data, peer, case):
        with self._lock:
            i = case.udp_count
            case.udp_count += 1
        turns = case.conv.streams.get("udp", [])
        if i >= len(turns):
            return
        s = turns[i][1]
        plan = case.plan
        out = [s]
        if plan.stream == "udp" and plan.turn == i:
            k = plan.kind
            if k in ("flip", "insert", "length"):
                out = [plan.data]
            elif k == "split":
                out = [p for p, _ in plan.pieces]
            elif k == "cut_stall":
                out = []
            else:                          # cut_close, cut_reset: a truncated datagram
                out = [s[:plan.offset]]
        try:
            for d in out:
                self.udp.sendto(d, peer)
        except OSError:
            pass


class RecordProxy(_Base):
    """Forwards to the real server at (host, port) and records each scenario."""

    def __init__(self, names, host, port):
        self.names = list(names)
        self.upstream = (host, port)
        self.convs = {}
        self._number = 0
        super().__init__()

    def next_case(self):
        with self._lock:
            if not self.names:
                self.current = None
                return "end"
            name = self.names.pop(0)
            self._number += 1
            conv = Conversation(name)
            self.convs[self._number] = conv
            self.current = _Case(self._number, None, conv)
            return f"case {self._number} {name}"

    def case_done(self, n):
        time.sleep(0.1)          # the last bytes of a closing connection
        with self._lock:
            self.current = None

    def handle_tcp(self, conn, case):
        with self._lock:
            stream = f"tcp{case.tcp_count}"
            case.tcp_count += 1
        up = socket.create_connection(self.upstream, timeout=5)
        done = threading.Event()

        def pump(src, dst, direction):
            src.settimeout(POLL)
            try:
                while not self._stop.is_set() and not done.is_set():
                    try:
                        data = src.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        break
                    with self._lock:
                        case.conv.add(stream, direction, data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()
        t = threading.Thread(target=pump, args=(up, conn, "<"), daemon=True)
        t.start()
        pump(conn, up, ">")
        t.join(5)
        up.close()

    def handle_udp(self, data, peer, case):
        with self._lock:
            case.conv.add("udp", ">", data)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(5)
            up.sendto(data, self.upstream)
            reply, _ = up.recvfrom(65535)
        with self._lock:
            case.conv.add("udp", "<", reply)
        self.udp.sendto(reply, peer)
