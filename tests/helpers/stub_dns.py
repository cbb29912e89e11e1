#!/usr/bin/python3
"""A tiny authoritative stub DNS server (Debian python3-dnslib), UDP + TCP on one port.

In-process (the stub_dns fixture):  StubDNS() -> .host .port .flag .queries .stop()
Standalone:  stub_dns.py [PORT]  (prints "ready PORT", logs each query, stops on SIGTERM)

Answers:
    cosocket.test, www.cosocket.test   A 127.0.0.1
    two.cosocket.test                  A 127.0.0.1, A 127.0.0.2
    v6.cosocket.test                   AAAA ::1
    tc.cosocket.test                   over UDP: empty reply with TC=1; over TCP: A 127.0.0.1
    servfail.cosocket.test             SERVFAIL
    badid.cosocket.test                a reply whose id does not match (must be ignored)
    slow.cosocket.test                 never answered (resolver timeouts)
    a known name, other type           NOERROR, no answer, SOA in authority (NODATA)
    anything else                      NXDOMAIN (+ SOA for names in cosocket.test)
More records: stub.add("x.cosocket.test", "A", "127.0.0.9").
Every query is recorded in .queries as Query(proto, name, qtype, id), name lower-case
without the final dot, qtype a string ("A", "AAAA"...).
"""
import collections
import socket
import struct
import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, SOA, TXT, A, DNSHeader, DNSRecord

HOST = "127.0.0.1"
ZONE = "cosocket.test"
POLL = 0.05
Query = collections.namedtuple("Query", "proto name qtype id")

DEFAULT_RECORDS = [
    ("cosocket.test", "A", "127.0.0.1"),
    ("www.cosocket.test", "A", "127.0.0.1"),
    ("two.cosocket.test", "A", "127.0.0.1"),
    ("two.cosocket.test", "A", "127.0.0.2"),
    ("v6.cosocket.test", "AAAA", "::1"),
    ("tc.cosocket.test", "A", "127.0.0.1"),
]
# name -> behaviour
SPECIAL = {"slow.cosocket.test": "drop", "servfail.cosocket.test": "servfail",
           "tc.cosocket.test": "truncate", "badid.cosocket.test": "badid"}
RDATA = {"A": A, "AAAA": AAAA, "TXT": TXT}


def _norm(name):
    return str(name).rstrip(".").lower()


class StubDNS:
    def __init__(self, host=HOST, port=0, ttl=60, log=None):
        self.host, self.ttl, self.log = host, ttl, log
        self.records = collections.defaultdict(list)     # (name, qtype) -> [rdata]
        self.special = dict(SPECIAL)
        for name, qtype, value in DEFAULT_RECORDS:
            self.add(name, qtype, value)
        self.queries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns = []
        self.udp, self.tcp = self._bind(port)
        self.port = self.udp.getsockname()[1]
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._udp_loop, self._tcp_loop)]
        for t in self._threads:
            t.start()

    # -- public -------------------------------------------------------------
    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    @property
    def flag(self):
        """The cosocket command-line flag that points its resolver here."""
        return f"--resolver={self.host}:{self.port}"

    def add(self, name, qtype, value):
        self.records[(_norm(name), qtype.upper())].append(value)

    def names(self):
        """The names queried so far, in order."""
        with self._lock:
            return [q.name for q in self.queries]

    def clear(self):
        with self._lock:
            self.queries.clear()

    def wait_queries(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.queries) < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self):
        self._stop.set()
        for s in [self.udp, self.tcp]:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- internals ----------------------------------------------------------
    def _bind(self, port):
        for _ in range(100):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.host, port))
            p = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((self.host, p))
            except OSError:
                tcp.close()
                udp.close()
                if port:
                    raise
                continue
            tcp.listen(16)
            tcp.settimeout(POLL)
            udp.settimeout(POLL)
            return udp, tcp
        raise OSError("stub_dns: no free port for both UDP and TCP")

    def _soa(self):
        return RR(ZONE, QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            "ns1." + ZONE, "hostmaster." + ZONE, (1, 3600, 600, 86400, self.ttl)))

    def answer(self, data, proto):
        """The reply bytes for one query, or None for no reply."""
        try:
            req = DNSRecord.parse(data)
        except Exception:       # dnslib raises DNSError and others on garbage
            return None
        if not req.questions:
            return None
        q = req.q
        name, qtype = _norm(q.qname), QTYPE.get(q.qtype)
        with self._lock:
            self.queries.append(Query(proto, name, qtype, req.header.id))
        if self.log:
            print(f"{proto} {req.header.id} {name} {qtype}", file=self.log, flush=True)
        special = self.special.get(name)
        reply = req.reply(ra=0, aa=1)
        if special == "drop":
            return None
        if special == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if special == "truncate" and proto == "udp":
            return DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, tc=1, rd=req.header.rd),
                             q=q).pack()
        if special == "badid":
            reply.header.id = (req.header.id + 1) & 0xFFFF
        values = self.records.get((name, qtype), [])
        for v in values:
            reply.add_answer(RR(q.qname, q.qtype, ttl=self.ttl, rdata=RDATA[qtype](v)))
        if not values:
            known = any(n == name for n, _ in self.records) or name in self.special
            if not known:
                reply.header.rcode = RCODE.NXDOMAIN
            if name == ZONE or name.endswith("." + ZONE):
                reply.add_auth(self._soa())
        return reply.pack()

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self.answer(data, "udp")
            if out is not None:
                try:
                    self.udp.sendto(out, peer)
                except OSError:
                    pass

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(POLL)
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_exact(self, conn, n):
        buf = b""
        while len(buf) < n and not self._stop.is_set():
            try:
                chunk = conn.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf if len(buf) == n else None

    def _tcp_conn(self, conn):
        try:
            while True:
                head = self._recv_exact(conn, 2)
                if head is None:
                    return
                data = self._recv_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                out = self.answer(data, "tcp")
                if out is not None:       # "drop": say nothing, keep the connection
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()


if __name__ == "__main__":
    import signal
    stub = StubDNS(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0, log=sys.stdout)
    print(f"ready {stub.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    while not done.wait(1):
        pass
    stub.stop()
