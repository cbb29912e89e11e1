"""resty.dns.resolver (dns/resty/dns/resolver.lua): the lua-resty-dns drop-in.

Protocol behaviour is checked against the real Knot server (the `knot` fixture, zones in
tests/servers/), with `dig` as the independent cross-check; faults use hand-built packets
from small UDP/TCP servers in this file (UdpResponder) and the `fake_server` fixture.
Lua helpers D (dump answers) and P (print values) come from tests/lua/dns/prelude.lua.
"""
import os
import socket
import struct
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
PRELUDE = open(os.path.join(HERE, "lua", "dns", "prelude.lua")).read()


def lua(run_lua_ok, code, **subs):
    for k, v in subs.items():
        code = code.replace(f"@{k}@", str(v))
    return run_lua_ok(PRELUDE + "\n" + code).splitlines()


def dig(knot, *args):
    out = subprocess.run(["dig", "+short", "+norecurse", "-p", str(knot.port), "@" + knot.host,
                          *args], capture_output=True, text=True, timeout=10).stdout
    return sorted(out.split())


# ---------------------------------------------------------------------------------------
# packet building (RFC 1035) for the fault tests

def qname_wire(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def header(qid, flags=0x8180, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name, qtype=1, qclass=1):
    return qname_wire(name) + struct.pack("!HH", qtype, qclass)


def rr(name_bytes, rtype, rdata, ttl=60, rclass=1, rdlen=None):
    return name_bytes + struct.pack("!HHIH", rtype, rclass, ttl,
                                    len(rdata) if rdlen is None else rdlen) + rdata


def parse_query(data):
    """(id, name lower-case, qtype) of a query packet."""
    qid = struct.unpack("!H", data[:2])[0]
    pos, labels = 12, []
    while data[pos]:
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
    return qid, ".".join(labels).lower(), qtype


class UdpResponder:
    """A UDP server on loopback: handler(query_bytes) -> list of datagrams to send back.
    .queries lists (source_port, query_bytes)."""

    def __init__(self, handler):
        self.handler = handler
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries.append((peer[1], data))
            for out in self.handler(data):
                self.sock.sendto(out, peer)

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def reply_with(*builders):
    """A handler that answers each query with builder(qid, name, qtype) datagrams."""
    def handler(data):
        qid, name, qtype = parse_query(data)
        return [b(qid, name, qtype) for b in builders]
    return handler


def good_a(qid, name, qtype, addr=b"\x7f\0\0\x09"):
    return header(qid, an=1) + question(name, qtype) + rr(b"\xc0\x0c", 1, addr)


NEW = """
local resolver = require "resty.dns.resolver"
local r, err = resolver:new{nameservers = {{"127.0.0.1", @PORT@}}, retrans = @RETRANS@,
                            timeout = @TIMEOUT@}
assert(r, err)
"""


def with_responder(run_lua_ok, handler, code, retrans=1, timeout=500, **subs):
    srv = UdpResponder(handler)
    try:
        return lua(run_lua_ok, NEW + code, PORT=srv.port, RETRANS=retrans, TIMEOUT=timeout,
                   **subs), srv
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------
# against Knot

KNOT = """
local resolver = require "resty.dns.resolver"
local r, err = resolver:new{nameservers = {{"@HOST@", @PORT@}}, timeout = 2000}
assert(r, err)
"""


def kn(run_lua_ok, knot, code, **subs):
    return lua(run_lua_ok, KNOT + code, HOST=knot.host, PORT=knot.port, **subs)


def test_a_records_match_dig(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, 'D(r:query("www.cosocket.test"))\n'
                               'D(r:query("WWW.Cosocket.Test.", {qtype = r.TYPE_A}))')
    expect = ["address=127.0.0.10 class=1 name=www.cosocket.test section=1 ttl=300 type=1",
              "address=127.0.0.11 class=1 name=www.cosocket.test section=1 ttl=300 type=1"]
    assert sorted(out[:2]) == expect
    assert len(out) == 4 and sorted(a.split()[0] for a in out[2:]) == \
        ["address=127.0.0.10", "address=127.0.0.11"]
    assert dig(knot, "www.cosocket.test", "A") == ["127.0.0.10", "127.0.0.11"]


def test_aaaa_cname_chain_and_wildcard(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, """
D(r:query("v6.cosocket.test", {qtype = r.TYPE_AAAA}))
D(r:query("dual.cosocket.test", {qtype = r.TYPE_AAAA}))
D(r:query("chain.cosocket.test"))
D(r:query("x.wild.cosocket.test"))
""")
    assert out[0] == "address=0:0:0:0:0:0:0:1 class=1 name=v6.cosocket.test section=1 ttl=300 type=28"
    assert out[1] == "address=2001:db8:0:0:0:0:0:2 class=1 name=dual.cosocket.test section=1 ttl=300 type=28"
    assert out[2] == "class=1 cname=alias.cosocket.test name=chain.cosocket.test section=1 ttl=300 type=5"
    assert out[3] == "class=1 cname=www.cosocket.test name=alias.cosocket.test section=1 ttl=300 type=5"
    assert sorted(out[4:6]) == [
        "address=127.0.0.10 class=1 name=www.cosocket.test section=1 ttl=300 type=1",
        "address=127.0.0.11 class=1 name=www.cosocket.test section=1 ttl=300 type=1"]
    assert out[6] == "address=127.0.0.99 class=1 name=x.wild.cosocket.test section=1 ttl=300 type=1"
    assert dig(knot, "dual.cosocket.test", "AAAA") == ["2001:db8::2"]


def test_mx_srv_txt_ns(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, """
D(r:query("cosocket.test", {qtype = r.TYPE_MX}))
D(r:query("_sip._tcp.cosocket.test", {qtype = r.TYPE_SRV}))
D(r:query("txt.cosocket.test", {qtype = r.TYPE_TXT}))
D(r:query("multi.cosocket.test", {qtype = r.TYPE_TXT}))
D(r:query("cosocket.test", {qtype = r.TYPE_NS, additional_section = true}))
""")
    assert sorted(out[0:2]) == [
        "class=1 exchange=mail.cosocket.test name=cosocket.test preference=10 section=1 ttl=300 type=15",
        "class=1 exchange=mail2.cosocket.test name=cosocket.test preference=20 section=1 ttl=300 type=15"]
    assert sorted(out[2:4]) == [
        "class=1 name=_sip._tcp.cosocket.test port=5060 priority=10 section=1 "
        "target=sip1.cosocket.test ttl=300 type=33 weight=60",
        "class=1 name=_sip._tcp.cosocket.test port=5061 priority=20 section=1 "
        "target=sip2.cosocket.test ttl=300 type=33 weight=40"]
    assert out[4] == "class=1 name=txt.cosocket.test section=1 ttl=300 txt=hello world type=16"
    assert out[5] == "class=1 name=multi.cosocket.test section=1 ttl=300 txt=[part one|part two] type=16"
    assert out[6] == "class=1 name=cosocket.test nsdname=ns1.cosocket.test section=1 ttl=300 type=2"
    assert out[7] == "address=127.0.0.1 class=1 name=ns1.cosocket.test section=3 ttl=300 type=1"
    assert len(out) == 8
    assert dig(knot, "_sip._tcp.cosocket.test", "SRV") == sorted(
        "10 60 5060 sip1.cosocket.test. 20 40 5061 sip2.cosocket.test.".split())


SOA = ("class=1 expire=86400 minimum=60 mname=ns1.cosocket.test name=cosocket.test "
       "refresh=3600 retry=600 rname=hostmaster.cosocket.test section=2 serial=2024010101 "
       "ttl=60 type=6")


def test_nxdomain_nodata_refused_and_soa(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, """
D(r:query("nope.cosocket.test", {authority_section = true}))
print("--")
D(r:query("nope.cosocket.test"))
print("--")
D(r:query("www.cosocket.test", {qtype = r.TYPE_AAAA, authority_section = true}))
print("--")
D(r:query("example.org"))
print("--")
D(r:query("cosocket.test", {qtype = r.TYPE_SOA}))
""")
    assert out == ["errcode=3 errstr=name error", SOA, "--",
                   "errcode=3 errstr=name error", "--",
                   SOA, "--",
                   "errcode=5 errstr=refused", "--",
                   SOA.replace("section=2", "section=1").replace("ttl=60", "ttl=300")]


def test_reverse_query_ptr(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, 'D(r:reverse_query("127.0.0.10"))\nD(r:reverse_query("127.0.0.1"))')
    assert out == [
        "class=1 name=10.0.0.127.in-addr.arpa ptrdname=www.cosocket.test section=1 ttl=300 type=12",
        "class=1 name=1.0.0.127.in-addr.arpa ptrdname=ns1.cosocket.test section=1 ttl=300 type=12"]
    assert dig(knot, "-x", "127.0.0.10") == ["www.cosocket.test."]


def test_truncated_udp_answer_is_retried_over_tcp(run_lua_ok, knot):
    out = kn(run_lua_ok, knot, """
local ans = assert(r:query("big.cosocket.test", {qtype = r.TYPE_TXT}))
P(#ans, type(ans[1].txt), #ans[1].txt, #ans[1].txt[1], ans[1].txt[1]:match("^a+$") ~= nil)
ans = assert(r:query("huge.cosocket.test", {qtype = r.TYPE_TXT}))
P(#ans, #ans[1].txt, #table.concat(ans[1].txt))
ans = assert(r:query("many.cosocket.test"))
P(#ans, ans[1].type)
""")
    assert out == ["1 table 4 250 true", "1 12 3000", "40 1"]


def test_tc_fallback_goes_to_tcp_once(run_lua_ok, stub_dns):
    out = lua(run_lua_ok, """
local r = require("resty.dns.resolver"):new{nameservers = {{"127.0.0.1", @PORT@}}}
D(r:query("tc.cosocket.test"))
""", PORT=stub_dns.port)
    assert out == ["address=127.0.0.1 class=1 name=tc.cosocket.test section=1 ttl=60 type=1"]
    assert [(q.proto, q.name) for q in stub_dns.queries] == [("udp", "tc.cosocket.test"),
                                                             ("tcp", "tc.cosocket.test")]


def test_tcp_query(run_lua_ok, knot, stub_dns):
    out = kn(run_lua_ok, knot, """
D(r:tcp_query("mail.cosocket.test"))
local r2 = require("resty.dns.resolver"):new{nameservers = {{"127.0.0.1", @SPORT@}}}
D(r2:tcp_query("v6.cosocket.test", {qtype = r2.TYPE_AAAA}))
""", SPORT=stub_dns.port)
    assert out == ["address=127.0.0.25 class=1 name=mail.cosocket.test section=1 ttl=300 type=1",
                   "address=0:0:0:0:0:0:0:1 class=1 name=v6.cosocket.test section=1 ttl=60 type=28"]
    assert [q.proto for q in stub_dns.queries] == ["tcp"]


def test_servfail_is_errcode(run_lua_ok, stub_dns):
    out = lua(run_lua_ok, """
local r = require("resty.dns.resolver"):new{nameservers = {{"127.0.0.1", @PORT@}}}
D(r:query("servfail.cosocket.test"))
""", PORT=stub_dns.port)
    assert out == ["errcode=2 errstr=server failure"]


# ---------------------------------------------------------------------------------------
# construction, retries, tries, timeouts

def test_new_errors_set_timeout_destroy(run_lua_ok, knot):
    out = lua(run_lua_ok, """
local resolver = require "resty.dns.resolver"
P(resolver:new())
P(resolver:new{})
P(resolver:new{nameservers = {}})
local r = assert(resolver:new{nameservers = {"127.0.0.1", {"@HOST@", @PORT@}}, no_random = true})
P(r.TYPE_A, r.TYPE_NS, r.TYPE_CNAME, r.TYPE_SOA, r.TYPE_PTR, r.TYPE_MX, r.TYPE_TXT,
  r.TYPE_AAAA, r.TYPE_SRV, r.TYPE_SPF, r.CLASS_IN, r.SECTION_AN, r.SECTION_NS, r.SECTION_AR)
P(r:set_timeout(300))
P(r:query(".bad"))
r:destroy()
P(r:query("www.cosocket.test"))
P(r:tcp_query("www.cosocket.test"))
P(r:set_timeout(10))
""", HOST=knot.host, PORT=knot.port)
    assert out == ["nil no options table specified", "nil no nameservers specified",
                   "nil no nameservers specified",
                   "1 2 5 6 12 15 16 28 33 99 1 1 2 3", "true", "nil bad name",
                   "nil not initialized", "nil not initialized", "nil not initialized"]


def test_dead_first_server_then_next_and_tries(run_lua_ok, knot):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        out = lua(run_lua_ok, """
local resolver = require "resty.dns.resolver"
local r = assert(resolver:new{nameservers = {{"127.0.0.1", @DEAD@}, {"@HOST@", @PORT@}},
                              no_random = true, retrans = 3, timeout = 200})
local tries = {}
local t0 = ngx.now()
local ans, err, t = r:query("www.cosocket.test", nil, tries)
P(#ans, err, t == tries, #tries, tries[1])
ngx.update_time()
P(ngx.now() - t0 >= 0.18)
-- every server dead: one error per try
local r2 = assert(resolver:new{nameservers = {{"127.0.0.1", @DEAD@}}, retrans = 2, timeout = 100})
tries = {"stale", "stale", "stale", "stale"}
ans, err, t = r2:query("www.cosocket.test", nil, tries)
P(ans, err, tries[3], tries[1] == tries[2], tries[1] ~= nil)
""", DEAD=silent.getsockname()[1], HOST=knot.host, PORT=knot.port)
    finally:
        silent.close()
    assert out[0].startswith("2 nil true 1 failed to receive reply from UDP server 127.0.0.1:")
    assert out[0].endswith(": timeout")
    assert out[1] == "true"
    assert out[2].startswith("nil failed to receive reply from UDP server 127.0.0.1:")
    assert out[2].endswith(": timeout nil true true")


def test_no_random_and_round_robin(run_lua_ok):
    a = UdpResponder(reply_with(lambda i, n, t: good_a(i, n, t, b"\x7f\0\0\x01")))
    b = UdpResponder(reply_with(lambda i, n, t: good_a(i, n, t, b"\x7f\0\0\x02")))
    try:
        out = lua(run_lua_ok, """
local resolver = require "resty.dns.resolver"
local seq = {}
for _ = 1, 4 do
  local r = assert(resolver:new{nameservers = {{"127.0.0.1", @A@}, {"127.0.0.1", @B@}},
                                no_random = true})
  seq[#seq + 1] = r:query("x.test")[1].address
end
P(table.concat(seq, ","))
local r = assert(resolver:new{nameservers = {{"127.0.0.1", @A@}, {"127.0.0.1", @B@}},
                              no_random = true})
seq = {}
for _ = 1, 4 do seq[#seq + 1] = r:query("x.test")[1].address end
P(table.concat(seq, ","))
local firsts = {}
for _ = 1, 40 do
  local r = assert(resolver:new{nameservers = {{"127.0.0.1", @A@}, {"127.0.0.1", @B@}}})
  firsts[r:query("x.test")[1].address] = true
end
P(firsts["127.0.0.1"], firsts["127.0.0.2"])
""", A=a.port, B=b.port)
    finally:
        a.stop()
        b.stop()
    assert out == ["127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1",
                   "127.0.0.1,127.0.0.2,127.0.0.1,127.0.0.2", "true true"]


def test_random_ids_and_fresh_source_ports(run_lua_ok):
    out, srv = with_responder(run_lua_ok, reply_with(good_a), """
for i = 1, 64 do assert(r:query("q" .. i .. ".test")) end
P("ok")
""")
    assert out == ["ok"]
    ids = [struct.unpack("!H", q[:2])[0] for _, q in srv.queries]
    ports = [p for p, _ in srv.queries]
    assert len(srv.queries) == 64
    assert len(set(ids)) >= 60           # 64 draws from 65536: collisions are rare
    assert len(set(ports)) >= 60         # a new socket, so a new ephemeral port, per query
    assert max(ids) > 4096               # not a small counter


def test_no_recurse_flag(run_lua_ok):
    srv = UdpResponder(reply_with(good_a))
    try:
        lua(run_lua_ok, """
local resolver = require "resty.dns.resolver"
assert(resolver:new{nameservers = {{"127.0.0.1", @P@}}}):query("a.test")
assert(resolver:new{nameservers = {{"127.0.0.1", @P@}}, no_recurse = true}):query("a.test")
""", P=srv.port)
    finally:
        srv.stop()
    flags = [struct.unpack("!H", q[2:4])[0] for _, q in srv.queries]
    assert flags == [0x0100, 0x0000]


# ---------------------------------------------------------------------------------------
# addresses

def test_ipv6_helpers_and_arpa_str(run_lua_ok):
    out = lua(run_lua_ok, """
local r = require "resty.dns.resolver"
P(r.expand_ipv6_addr("::1"), r.expand_ipv6_addr("2001:db8::2"), r.expand_ipv6_addr("fe80::"),
  r.expand_ipv6_addr("1:2:3:4:5:6:7:8"))
P(r.compress_ipv6_addr("0:0:0:0:0:0:0:1"), r.compress_ipv6_addr("2001:db8:0:0:0:0:0:2"),
  r.compress_ipv6_addr("0:0:0:0:0:0:0:0"), r.compress_ipv6_addr("1:0:0:2:0:0:0:3"),
  r.compress_ipv6_addr("fe80:0:0:0:0:0:0:0"))
P(r.arpa_str("127.0.0.10"))
P(r.arpa_str("2001:db8::567:89ab"))
""")
    assert out == ["0:0:0:0:0:0:0:1 2001:db8:0:0:0:0:0:2 fe80:0:0:0:0:0:0:0 1:2:3:4:5:6:7:8",
                   "::1 2001:db8::2 :: 1:0:0:2::3 fe80::",
                   "10.0.0.127.in-addr.arpa",
                   "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"]


# ---------------------------------------------------------------------------------------
# faults: hand-built replies

def test_mismatched_id_and_question_are_ignored(run_lua_ok):
    def handler(data):
        qid, name, qtype = parse_query(data)
        return [
            good_a((qid + 1) & 0xFFFF, name, qtype, b"\x01\x01\x01\x01"),     # wrong id
            header(qid, an=1) + question("evil.test") + rr(b"\xc0\x0c", 1, b"\2\2\2\2"),
            header(qid, an=1) + question(name, 28) + rr(b"\xc0\x0c", 1, b"\3\3\3\3"),
            header(qid, an=1) + question(name, 1, 3) + rr(b"\xc0\x0c", 1, b"\4\4\4\4"),
            header(qid, flags=0x0100, an=1) + question(name) + rr(b"\xc0\x0c", 1, b"\5\5\5\5"),
            b"\x00\x01",                                                       # runt
            good_a(qid, name.upper(), qtype),                  # the real one, 0x20 case
        ]
    out, srv = with_responder(run_lua_ok, handler, 'D(r:query("ok.test"))')
    assert out == ["address=127.0.0.9 class=1 name=OK.TEST section=1 ttl=60 type=1"]


def test_only_wrong_replies_time_out(run_lua_ok):
    def handler(data):
        qid, name, qtype = parse_query(data)
        return [good_a(qid ^ 0x5555, name, qtype), good_a(qid, "other.test", qtype)]
    out, srv = with_responder(run_lua_ok, handler, """
local tries = {}
local ans, err = r:query("ok.test", nil, tries)
P(ans, err, #tries)
""", retrans=2, timeout=200)
    assert len(out) == 1
    assert out[0].startswith("nil failed to receive reply from UDP server 127.0.0.1:")
    assert out[0].endswith(": timeout 2")


BAD_REPLIES = {
    # name -> (reply bytes given id and question name, expected error suffix)
    # the answer's name is a pointer to itself
    "pointer_loop": (lambda i, n: header(i, an=1) + question(n)
                     + rr(struct.pack("!H", 0xc000 | (12 + len(question(n)))), 1, b"\1\1\1\1"),
                     "bad compression pointer"),
    "self_pointer_in_question": (lambda i, n: header(i) + b"\xc0\x0c\0\1\0\1", None),
    "pointer_out_of_bounds": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xff\xff", 1, b"\1\1\1\1"),
                              "bad compression pointer"),
    # "a" then a pointer back to the "a": a two-step loop
    "label_then_loop": (lambda i, n: header(i, an=1) + question(n)
                        + rr(b"\1a" + struct.pack("!H", 0xc000 | (12 + len(question(n)))), 1, b"\1\1\1\1"),
                        "bad compression pointer"),
    "forward_pointer": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x40", 1, b"\1\1\1\1"),
                        "bad compression pointer"),
    "truncated_rdata": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 1, b"\1\1", rdlen=4),
                        "truncated"),
    "truncated_rr_header": (lambda i, n: header(i, an=1) + question(n) + b"\xc0\x0c\0\1\0",
                            "truncated"),
    "missing_answers": (lambda i, n: header(i, an=3) + question(n) + rr(b"\xc0\x0c", 1, b"\1\1\1\1"),
                        "truncated"),
    "bad_a_length": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 1, b"\1\1\1\1\1"),
                     "bad A record value length: 5"),
    "bad_aaaa_length": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 28, b"\1" * 4),
                        "bad AAAA record value length: 4"),
    "txt_overrun": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 16, b"\x09abc"),
                    "bad TXT record value length"),
    "cname_overrun": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 5, b"\x05ab", rdlen=3),
                      "truncated"),
    "cname_len_mismatch": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 5, b"\xc0\x0c\0"),
                           "bad record length"),
    "extended_label": (lambda i, n: header(i, an=1) + question(n) + rr(b"\x41x\0", 1, b"\1\1\1\1"),
                       "bad label type"),
    "soa_short": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 6, b"\0\0\0\0\0"),
                  "bad SOA record value length: 5"),
    "srv_short": (lambda i, n: header(i, an=1) + question(n) + rr(b"\xc0\x0c", 33, b"\0\0\0"),
                  "bad SRV record value length: 3"),
}


def test_malformed_replies_give_errors_not_crashes(run_lua_ok):
    def handler(data):
        qid, name, qtype = parse_query(data)
        kind = name.split(".")[0].replace("-", "_")
        return [BAD_REPLIES[kind][0](qid, name)]
    code = "".join(f'do local a, e = r:query("{k.replace("_", "-")}.test") P("{k}", a, e) end\n'
                   for k in BAD_REPLIES)
    out, srv = with_responder(run_lua_ok, handler, code, timeout=300)
    assert len(out) == len(BAD_REPLIES)
    for line, (kind, (_, err)) in zip(out, BAD_REPLIES.items()):
        assert line.startswith(f"{kind} nil "), line
        if err is None:       # a reply whose question cannot be decoded is not ours: ignored
            assert line.endswith(": timeout"), line
        else:
            assert line.startswith(f"{kind} nil failed to parse the reply from UDP server "), line
            assert line.endswith(": " + err), line


def test_unknown_type_keeps_rdata_and_pointers_into_rdata(run_lua_ok):
    def handler(data):
        qid, name, qtype = parse_query(data)
        q = question(name, qtype)
        # a CAA-ish unknown type 257, then a CNAME whose target reuses "test" via a pointer
        tail = len(name.split(".")[0]) + 1 + 12            # offset of "test" in the question
        return [header(qid, an=2) + q + rr(b"\xc0\x0c", 257, b"\0\5issueca")
                + rr(b"\xc0\x0c", 5, b"\3foo\xc0" + bytes([tail]))]
    out, srv = with_responder(run_lua_ok, handler, 'D(r:query("u.test", {qtype = 257}))')
    assert out == ["class=1 name=u.test rdata=\0\x05issueca section=1 ttl=60 type=257",
                   "class=1 cname=foo.test name=u.test section=1 ttl=60 type=5"]


def test_parser_fuzz_never_throws(run_lua_ok):
    # mutate a valid reply 30000 times (byte changes, truncation, inserted pointers) and feed
    # it to the parser: every call returns answers or nil + a string, never raises
    base = (header(0x1234, an=3, ns=1) + question("fuzz.test") + rr(b"\xc0\x0c", 1, b"\1\2\3\4")
            + rr(b"\xc0\x0c", 5, b"\3www\xc0\x11") + rr(b"\xc0\x0c", 16, b"\2hi\3you")
            + rr(b"\xc0\x11", 6, b"\2ns\xc0\x11\2hm\xc0\x11" + b"\0" * 20))
    lit = "".join(f"\\{c}" for c in base)
    out = lua(run_lua_ok, """
local r = require "resty.dns.resolver"
local parse = r._parse_response
local base = "@BASE@"
assert(parse(base, 0x1234, "fuzz.test", 1, {authority_section = true}))
local ok_n, err_n = 0, 0
for i = 1, 30000 do
  local b = {base:byte(1, -1)}
  for _ = 1, math.random(1, 4) do
    local p = math.random(1, #b)
    local m = math.random(1, 3)
    if m == 1 then b[p] = math.random(0, 255)
    elseif m == 2 then b[p] = 0xc0 + math.random(0, 1) b[p + 1] = math.random(0, 255)
    else for k = p, #b do b[k] = nil end end
  end
  if #b == 0 then b = {0} end
  local s = string.char(unpack(b))
  local ok, ans, err = pcall(parse, s, 0x1234, "fuzz.test", 1,
                             {authority_section = true, additional_section = true})
  assert(ok, ans)
  if ans then
    assert(type(ans) == "table")
    ok_n = ok_n + 1
  else
    assert(type(err) == "string", "no error string")
    err_n = err_n + 1
  end
end
P(ok_n > 100, err_n > 1000, ok_n + err_n)
""", BASE=lit)
    assert out == ["true true 30000"]


def test_tcp_faults(run_lua_ok, fake_server):
    qid = 0x4242
    good = header(qid, an=1) + question("t.test") + rr(b"\xc0\x0c", 1, b"\7\7\7\7")
    wrong_id = header(qid + 1, an=1) + question("t.test") + rr(b"\xc0\x0c", 1, b"\7\7\7\7")
    servers = [
        fake_server([("read", 2 + 12 + 8 + 4), ("reply", struct.pack("!H", len(good)) + good)]),
        fake_server([("read", 26), ("reply", b"\x00\x00")]),
        fake_server([("read", 26), ("reply", b"\x00\x40" + good[:10]), ("close",)]),
        fake_server([("read", 26), ("reply", struct.pack("!H", len(wrong_id)) + wrong_id)]),
        fake_server([("read", 26), ("reply", b"\x00")]),
    ]
    code = "local resolver = require 'resty.dns.resolver'\n"
    for s in servers:
        code += (f"do local r = resolver:new{{nameservers = {{{{'127.0.0.1', {s.port}}}}}, "
                 f"timeout = 500}}\nr._id = {qid}\nD(r:tcp_query('t.test')) end\n")
    out = lua(run_lua_ok, code)
    p = [s.port for s in servers]
    assert out == [
        "address=7.7.7.7 class=1 name=t.test section=1 ttl=60 type=1",
        f"ERR empty reply from TCP server 127.0.0.1:{p[1]}",
        f"ERR failed to receive the reply message body from TCP server 127.0.0.1:{p[2]}: closed",
        f"ERR failed to parse the reply from the TCP server 127.0.0.1:{p[3]}: id mismatch",
        f"ERR failed to receive the reply length field from TCP server 127.0.0.1:{p[4]}: closed",
    ]
    assert servers[0].received[0][2:4] == struct.pack("!H", qid)


# ---------------------------------------------------------------------------------------
# EDNS0 (RFC 6891)

def test_edns_big_answer_over_udp_without_tcp(run_lua_ok, knot):
    # a UDP-only proxy in front of knot: no TCP listener, so a TCP fallback would fail
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.settimeout(2)

    def relay(data):
        up.sendto(data, (knot.host, knot.port))
        return [up.recvfrom(65535)[0]]
    proxy = UdpResponder(relay)
    try:
        out = lua(run_lua_ok, """
local resolver = require "resty.dns.resolver"
P(resolver:new{nameservers = {"127.0.0.1"}, edns = 100})
local r = assert(resolver:new{nameservers = {{"127.0.0.1", @P@}}, edns = true})
local ans = assert(r:query("big.cosocket.test", {qtype = r.TYPE_TXT, additional_section = true}))
P(#ans, #ans[1].txt, ans[2].type, ans[2].class, ans[2].section, ans[2].name)
local plain = assert(resolver:new{nameservers = {{"127.0.0.1", @P@}}, retrans = 1})
P(plain:query("big.cosocket.test", {qtype = plain.TYPE_TXT}))
local direct = assert(resolver:new{nameservers = {{"@KH@", @KP@}}, edns = 4096})
ans = assert(direct:query("huge.cosocket.test", {qtype = r.TYPE_TXT}))
P(#ans[1].txt)
""", P=proxy.port, KH=knot.host, KP=knot.port)
    finally:
        proxy.stop()
        up.close()
    assert out[0] == "nil bad edns payload size"
    assert out[1] == "2 4 41 1232 3 "           # knot's OPT: its udp-max-payload
    assert out[2] == (f"nil failed to connect to TCP server 127.0.0.1:{proxy.port}: "
                      "connection refused nil")
    assert out[3] == "12"                        # 3 KB: truncated even with EDNS, then TCP
    q_edns, q_plain = proxy.queries[0][1], proxy.queries[1][1]
    assert struct.unpack("!H", q_edns[10:12])[0] == 1 and q_edns.endswith(
        b"\0\0\x29\x04\xd0\0\0\0\0\0\0")       # OPT, payload 1232
    assert struct.unpack("!H", q_plain[10:12])[0] == 0
    assert len(proxy.queries) == 2


def test_edns_formerr_falls_back_to_plain_query(run_lua_ok):
    # an old server: FORMERR for any query carrying an OPT record
    def handler(data):
        qid, name, qtype = parse_query(data)
        if struct.unpack("!H", data[10:12])[0]:
            return [header(qid, flags=0x8181) + question(name, qtype)]
        return [good_a(qid, name, qtype)]
    out, srv = with_responder(run_lua_ok, handler, """
local r2 = assert(resolver:new{nameservers = {{"127.0.0.1", @PORT@}}, edns = true})
D(r2:query("old.test"))
D(r:query("old.test"))
""")
    assert out == ["address=127.0.0.9 class=1 name=old.test section=1 ttl=60 type=1"] * 2
    assert [struct.unpack("!H", q[10:12])[0] for _, q in srv.queries] == [1, 0, 0]
