"""The fuzz corpus: real client/server conversations, one file per scenario.

tests/fuzz/corpus/DRIVER/SCENARIO.conv is text, one item a line:

    # comment (what was recorded, from which server, how to re-record)
    result <the scenario's summary printed by the Lua client against the real server>
    tcp0 > <hex>       bytes the client sent on its first TCP connection
    tcp0 < <hex>       bytes the server sent back on it
    udp > <hex>        a datagram from the client (DNS); udp < <hex> one from the server

Consecutive chunks in one direction are merged when recorded (TCP segmentation means nothing),
so each stream is a list of turns: (what the client sends, what the server answers). A stream
whose server speaks first (MySQL's greeting) starts with a turn whose client part is empty.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(HERE, "corpus")


class Conversation:
    def __init__(self, name, result="", streams=None, comments=()):
        self.name = name
        self.result = result
        self.streams = streams if streams is not None else {}   # "tcp0"/"udp" -> [(c, s)]
        self.comments = list(comments)

    def add(self, stream, direction, data):
        """Appends a chunk (direction ">" client to server, "<" server to client)."""
        turns = self.streams.setdefault(stream, [])
        if direction == ">":
            if turns and not turns[-1][1]:
                turns[-1] = (turns[-1][0] + data, b"")
            else:
                turns.append((data, b""))
        else:
            if not turns:
                turns.append((b"", data))
            else:
                turns[-1] = (turns[-1][0], turns[-1][1] + data)

    def strip_trailing_client(self):
        """Drops a last turn the server never answered (a QUIT, a close frame...)."""
        for turns in self.streams.values():
            while turns and not turns[-1][1]:
                turns.pop()

    def tcp_streams(self):
        return sorted((k for k in self.streams if k.startswith("tcp")), key=lambda k: int(k[3:]))

    def server_turns(self):
        """(stream, index) of every turn with server bytes, in file order."""
        out = []
        for stream in self.ordered_streams():
            for i, (_, s) in enumerate(self.streams[stream]):
                if s:
                    out.append((stream, i))
        return out

    def ordered_streams(self):
        return (["udp"] if "udp" in self.streams else []) + self.tcp_streams()

    def dump(self):
        lines = [f"# {c}" for c in self.comments]
        lines.append("result " + self.result)
        for stream in self.ordered_streams():
            for c, s in self.streams[stream]:
                if c:
                    lines.append(f"{stream} > {c.hex()}")
                if s:
                    lines.append(f"{stream} < {s.hex()}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, name, text):
        conv = cls(name)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                conv.comments.append(line[1:].strip())
            elif line.startswith("result "):
                conv.result = line[len("result "):]
            else:
                parts = line.split()
                if len(parts) != 3 or parts[1] not in "<>":
                    raise ValueError(f"{name}:{n}: bad corpus line {line[:60]!r}")
                conv.add(parts[0], parts[1], bytes.fromhex(parts[2]))
        return conv


def path_of(driver, name):
    return os.path.join(CORPUS_DIR, driver, name + ".conv")


def load(driver):
    """{scenario name: Conversation} of a driver's corpus."""
    d = os.path.join(CORPUS_DIR, driver)
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".conv"):
            name = f[:-len(".conv")]
            with open(os.path.join(d, f)) as fh:
                out[name] = Conversation.parse(name, fh.read())
    return out


def save(driver, conv):
    d = os.path.join(CORPUS_DIR, driver)
    os.makedirs(d, exist_ok=True)
    with open(path_of(driver, conv.name), "w") as f:
        f.write(conv.dump())
