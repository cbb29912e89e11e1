"""Seeded mutations of a recorded server reply.

plan(driver, conversations, seed, case) -> Plan: the case's PRNG is random.Random of
"seed:driver:case", so any case can be replayed alone. A plan names the scenario (a
conversation of the corpus), the server turn it damages and how:

    cut_close   the turn's first `offset` bytes, then a graceful close (FIN)
    cut_stall   the first `offset` bytes, then silence (the client's timeout must fire);
                the rest is sent later, in front of a sentinel reply, should the client
                reuse the connection (a real slow server would send it)
    cut_reset   the first `offset` bytes, then RST (SO_LINGER 0)
    flip        1-4 bytes XORed with random values
    insert      garbage (random bytes, CR/LF/NUL, a copy of a slice of the reply) inserted at a
                random offset, the end included (bytes after a complete reply)
    length      an absurd length field: RESP / memcached / beanstalkd numbers (bulk lengths,
                counts, VALUE sizes, job ids) replaced by 2^63, 2^64, -2, n+1 ...; MySQL packet
                lengths and length-encoded integers (0xFE + 2^64-1, 0xFB, 0xFF ..., the packet
                length kept consistent); DNS section counts, RDLENGTH, label lengths,
                compression pointers (to themselves, forward, past the end), the TCP length
                prefix; websocket payload lengths (127 + 2^63, 2^64-1, 2^53+1, 126 + 0xFFFF)
    split       the unmodified reply in many tiny writes (1 ms apart now and then); over UDP a
                datagram with a wrong id first -- the result must equal the real server's
    noop        the unmodified conversation (checks the harness: the same result)

Over UDP (DNS) cut_close and cut_reset send the datagram truncated, cut_stall sends nothing.
"""
import random
import re
import struct

KINDS = [("cut_close", 14), ("cut_stall", 5), ("cut_reset", 8), ("flip", 18), ("insert", 12),
         ("length", 28), ("split", 11), ("noop", 4)]
TEXT_DRIVERS = ("redis", "memcached", "beanstalkd")

ABSURD_NUMBERS = [b"9223372036854775807", b"9223372036854775808", b"18446744073709551615",
                  b"18446744073709551616", b"99999999999999999999999999", b"-2",
                  b"-9223372036854775808", b"2147483648", b"4294967296", b"536870913",
                  b"1073741825", b"0", b"", b"1e9", b"0x10", b"+1", b" 7", b"-0", b"nan"]


class Plan:
    def __init__(self, seed, driver, case, scenario, kind, stream=None, turn=None):
        self.seed, self.driver, self.case, self.scenario = seed, driver, case, scenario
        self.kind, self.stream, self.turn = kind, stream, turn
        self.offset = None          # cut_*: bytes sent before the cut
        self.data = None            # flip/insert/length: the bytes sent instead of the turn
        self.pieces = None          # split: [(bytes, delay_s)]
        self.note = ""
        self.injects_reply = False  # insert: whole well-formed replies between two replies

    @property
    def expect_same(self):
        """The client must get exactly the real server's result."""
        return self.kind in ("split", "noop")

    def describe(self, original=None):
        out = [f"seed={self.seed} driver={self.driver} case={self.case} "
               f"scenario={self.scenario} kind={self.kind} stream={self.stream} turn={self.turn}"]
        if self.note:
            out.append("  " + self.note)
        if self.offset is not None:
            out.append(f"  cut at byte {self.offset} of {len(original or b'')}")
        if original is not None:
            out.append("  original turn: " + _hex(original))
        if self.data is not None:
            out.append("  sent instead:  " + _hex(self.data))
        if self.pieces is not None:
            out.append(f"  pieces: {[len(p) for p, _ in self.pieces]}")
        return "\n".join(out)


def _hex(b, limit=2048):
    h = b[:limit].hex()
    return h + (f"... ({len(b)} bytes)" if len(b) > limit else f" ({len(b)} bytes)")


def plan(driver, convs, seed, case):
    rng = random.Random(f"{seed}:{driver}:{case}")
    scenario = rng.choice(sorted(convs))
    conv = convs[scenario]
    kinds, weights = zip(*KINDS)
    kind = rng.choices(kinds, weights)[0]
    p = Plan(seed, driver, case, scenario, kind)
    if kind == "noop":
        return p
    p.stream, p.turn = rng.choice(conv.server_turns())
    s = conv.streams[p.stream][p.turn][1]
    udp = p.stream == "udp"
    if kind.startswith("cut_"):
        p.offset = rng.randrange(len(s))
    elif kind == "flip":
        data = bytearray(s)
        spots = sorted(rng.sample(range(len(s)), min(len(s), rng.randint(1, 4))))
        for i in spots:
            data[i] ^= rng.randint(1, 255)
        p.data, p.note = bytes(data), f"flipped bytes at {spots}"
    elif kind == "insert":
        p.data, p.note = _insert(rng, s)
        p.injects_reply = _injects_reply(driver, s, p.data)
    elif kind == "length":
        got = LENGTH[driver](rng, s, p.stream)
        if got is None:
            p.kind = "insert"
            p.data, p.note = _insert(rng, s)
            p.injects_reply = _injects_reply(driver, s, p.data)
        else:
            p.data, p.note = got
    elif kind == "split":
        if udp:
            decoy = bytes([s[0] ^ 0x5A, s[1] ^ 0xA5]) + s[2:]
            p.pieces, p.note = [(decoy, 0.0), (s, 0.0)], "a datagram with a wrong id first"
        else:
            p.pieces = _split(rng, s)
    return p


def _insert(rng, s):
    at = len(s) if rng.random() < 0.25 else rng.randint(0, len(s))
    pick = rng.random()
    if pick < 0.4:
        junk = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 16)))
    elif pick < 0.7:
        junk = rng.choice([b"\r\n", b"\r", b"\n", b"\x00", b"\xff\xff\xff\xff", b"\x80", b" "])
    else:
        i = rng.randrange(len(s))
        junk = s[i:i + rng.randint(1, 64)]
    return s[:at] + junk + s[at:], f"inserted {junk.hex()} at {at}"


def _resp_end(b, i, depth=0):
    """The end of the RESP2 reply starting at b[i], or None when it is not one whole reply."""
    if i >= len(b) or depth > 8:
        return None
    eol = b.find(b"\r\n", i)
    if eol < 0:
        return None
    t, head = b[i:i + 1], b[i + 1:eol]
    if t in (b"+", b"-"):
        return eol + 2
    if not re.fullmatch(rb"-?\d{1,18}", head):
        return None
    n = int(head)
    if t == b":" or n == -1 and t in (b"$", b"*"):
        return eol + 2
    if t == b"$" and n >= 0:
        end = eol + 2 + n
        return end + 2 if b[end:end + 2] == b"\r\n" else None
    if t == b"*" and n >= 0:
        j = eol + 2
        for _ in range(n):
            j = _resp_end(b, j, depth + 1)
            if j is None:
                return None
        return j
    return None


def _resp_replies(b):
    """The reply boundaries of b when b is a sequence of whole RESP2 replies, else None."""
    ends, i = [0], 0
    while i < len(b):
        i = _resp_end(b, i)
        if i is None:
            return None
        ends.append(i)
    return ends


def _injects_reply(driver, s, data):
    """True when data is s with one or more whole replies added between two of its replies.
    RESP lets any reply answer any command, so no client can tell such a stream from a good
    one: the replies after it answer the wrong commands, and the last one arrives after the
    client is done (it may find a connection that was pooled at once). Only RESP (redis)."""
    if driver != "redis":
        return False
    a, b = _resp_replies(s), _resp_replies(data)
    return a is not None and b is not None and len(b) > len(a)


def _split(rng, s):
    pieces, i = [], 0
    top = max(1, len(s) // 40)
    while i < len(s):
        n = rng.randint(1, min(top, 3) if rng.random() < 0.7 else top)
        pieces.append((s[i:i + n], 0.001 if rng.random() < 0.3 else 0.0))
        i += n
    return pieces


# --------------------------------------------------------------------------------------
# absurd length fields, per protocol: each returns (bytes, note) or None (no field found)

def _numbers(rng, s, _stream):
    """Any decimal number in a text reply (lengths, counts, sizes, ids) made absurd."""
    spots = [m for m in re.finditer(rb"-?\d+", s)]
    if not spots:
        return None
    m = rng.choice(spots)
    n = int(m.group())
    new = rng.choice(ABSURD_NUMBERS + [str(n + 1).encode(), str(n + rng.randint(2, 100)).encode(),
                                       str(max(n - 1, 0)).encode()] * 2)
    return (s[:m.start()] + new + s[m.end():],
            f"number {m.group().decode()} at {m.start()} -> {new.decode(errors='replace')!r}")


def _mysql_packets(s):
    out, i = [], 0
    while i + 4 <= len(s):
        n = s[i] | s[i + 1] << 8 | s[i + 2] << 16
        out.append((i, n))
        i += 4 + n
    return out


def _lenenc_at(p, j):
    """(value, size) of the length-encoded integer at p[j], or None."""
    if j >= len(p):
        return None
    b = p[j]
    if b < 0xFB:
        return b, 1
    size = {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(b)
    if size is None or j + size > len(p):
        return None
    return int.from_bytes(p[j + 1:j + size], "little"), size


def _mysql(rng, s, _stream):
    packets = _mysql_packets(s)
    if not packets:
        return None
    start, n = rng.choice(packets)
    payload = s[start + 4:start + 4 + n]
    if rng.random() < 0.35 or not payload:
        new = rng.choice([0xFFFFFF, n + 1, n + rng.randint(2, 5000), 0, max(n - 1, 0), 0xFFFFFE])
        return (s[:start] + struct.pack("<I", new)[:3] + s[start + 3:],
                f"packet at {start}: length {n} -> {new}")
    # the lengths of a walk of length-encoded strings from the payload's start (a text row,
    # the front of a column definition, a result set's column count)
    spots, j = [], 0
    while j < len(payload):
        got = _lenenc_at(payload, j)
        if got is None:
            break
        spots.append((j, got[0], got[1]))
        if got[0] > len(payload):
            break
        j += got[1] + (got[0] if payload[j] != 0xFB else 0)
    j, value, size = rng.choice(spots) if spots else (0, payload[0], 1)
    enc = rng.choice([b"\xfe" + struct.pack("<Q", 2 ** 64 - 1), b"\xfe" + struct.pack("<Q", 2 ** 63),
                      b"\xfe" + struct.pack("<Q", value + rng.randint(1, 100)),
                      b"\xfd\xff\xff\xff", b"\xfc\xff\xff", b"\xfc" + struct.pack("<H", value + 1),
                      b"\xfb", b"\xff", b"\xfe", bytes([min(value + 1, 250)])])
    new_payload = payload[:j] + enc + payload[j + size:]
    header = struct.pack("<I", len(new_payload))[:3] + s[start + 3:start + 4]
    return (s[:start] + header + new_payload + s[start + 4 + n:],
            f"packet at {start}: length-encoded integer at payload byte {j} "
            f"({value}) -> {enc.hex()}")


def _dns_walk(m):
    """Positions in a DNS message: counts, label lengths, pointers, rdlengths."""
    spots = {"count": [4, 6, 8, 10], "label": [], "pointer": [], "rdlength": []}
    qd, an, ns, ar = struct.unpack(">HHHH", m[4:12])
    i = 12

    def name(i):
        while i < len(m):
            b = m[i]
            if b == 0:
                return i + 1
            if b & 0xC0 == 0xC0:
                spots["pointer"].append(i)
                return i + 2
            spots["label"].append(i)
            i += 1 + b
        raise ValueError("name runs off the end")
    try:
        for _ in range(qd):
            i = name(i) + 4
        for _ in range(an + ns + ar):
            i = name(i) + 8
            if i + 2 > len(m):
                break
            spots["rdlength"].append(i)
            i += 2 + struct.unpack(">H", m[i:i + 2])[0]
    except ValueError:
        pass
    return spots


def _dns(rng, s, stream):
    prefix = 2 if stream.startswith("tcp") else 0
    if prefix and rng.random() < 0.2:
        n = struct.unpack(">H", s[:2])[0]
        new = rng.choice([0xFFFF, n + 1, n + rng.randint(2, 500), 0, 1, max(n - 1, 0)])
        return struct.pack(">H", new) + s[2:], f"TCP length prefix {n} -> {new}"
    m = s[prefix:]
    if len(m) < 12:
        return None
    spots = _dns_walk(m)
    what = rng.choice([k for k, v in spots.items() if v])
    at = rng.choice(spots[what])
    b = bytearray(m)
    if what in ("count", "rdlength"):
        n = struct.unpack(">H", m[at:at + 2])[0]
        new = rng.choice([0xFFFF, n + 1, n + rng.randint(2, 300), 0, max(n - 1, 0), 0x8000])
        b[at:at + 2] = struct.pack(">H", new)
        note = f"{what} at {at}: {n} -> {new}"
    elif what == "pointer":
        target = rng.choice([at, at + 1, len(m), 0x3FFF, 0, 11, at - 2 if at >= 2 else 0,
                             rng.randrange(len(m))])
        b[at:at + 2] = struct.pack(">H", 0xC000 | target)
        note = f"pointer at {at} -> {target}"
    else:
        new = rng.choice([63, 64, 0x80, 0xBF, 0xFF, m[at] + 1, len(m)])
        new &= 0xFF
        b[at] = new
        note = f"label length at {at}: {m[at]} -> {new}"
    return s[:prefix] + bytes(b), note


def _ws(rng, s, _stream):
    if s.startswith(b"HTTP/"):
        return _numbers(rng, s, _stream)
    frames, i = [], 0
    while i + 2 <= len(s):
        n7 = s[i + 1] & 0x7F
        hl = 2 + (2 if n7 == 126 else 8 if n7 == 127 else 0) + (4 if s[i + 1] & 0x80 else 0)
        if i + hl > len(s):
            break
        n = n7 if n7 < 126 else int.from_bytes(s[i + 2:i + (4 if n7 == 126 else 10)], "big")
        frames.append((i, hl, n))
        i += hl + n
    if not frames:
        return None
    at, hl, n = rng.choice(frames)
    mask = s[at + 1] & 0x80
    enc = rng.choice([bytes([127 | mask]) + struct.pack(">Q", 2 ** 63),
                      bytes([127 | mask]) + struct.pack(">Q", 2 ** 64 - 1),
                      bytes([127 | mask]) + struct.pack(">Q", 2 ** 53 + 1),
                      bytes([127 | mask]) + struct.pack(">Q", 2 ** 31),
                      bytes([126 | mask]) + struct.pack(">H", 0xFFFF),
                      bytes([127 | mask]) + struct.pack(">Q", n),
                      bytes([126 | mask]) + struct.pack(">H", n + rng.randint(1, 300)),
                      bytes([min(n + 1, 125) | mask])])
    length_end = at + hl - (4 if mask else 0)
    return (s[:at + 1] + enc + s[length_end:],
            f"frame at {at}: payload length {n} -> header bytes {enc.hex()}")


LENGTH = {"redis": _numbers, "memcached": _numbers, "beanstalkd": _numbers,
          "mysql": _mysql, "dns": _dns, "websocket": _ws}
