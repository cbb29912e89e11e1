"""tcpsock:receiveuntil: the boundary matcher as a property test (every way of splitting one
input stream into reads gives the same results), sized and inclusive iterators, mixing with
receive, EOF and timeouts, argument errors, and a large body.

The expected results (including the chunking of sized iterators, which OpenResty documents as
"might be a little longer than the size limit when the boundary pattern has ambiguity") were
checked against OpenResty 0.10.23 (nginx 1.22.1 + ngx_lua 0.10.23), which gives these same
results for every split used here.
"""
import hashlib
import random
import socket
import threading
import time

import pytest

from helpers.socket_lua import lua


class SplitServer:
    """On each connection the client first sends a line "c1,c2,...": cut offsets into DATA
    (empty: one piece). The server then sends DATA in those chunks with a short pause between
    them (TCP_NODELAY, so they arrive as separate reads), shuts down its write side and waits
    for the client to go."""

    def __init__(self, data, pause=0.005):
        self.data, self.pause = data, pause
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.errors = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True)]
        self._threads[0].start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._handle, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _handle(self, c):
        try:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.settimeout(10)
            line = b""
            while not line.endswith(b"\n"):
                ch = c.recv(1)
                if not ch:
                    return
                line += ch
            cuts = [int(x) for x in line.strip().split(b",") if x]
            pos = 0
            for cut in cuts + [len(self.data)]:
                if cut > pos:
                    c.sendall(self.data[pos:cut])
                    pos = cut
                    if cut < len(self.data) and self._stop.wait(self.pause):
                        return
            c.shutdown(socket.SHUT_WR)
            while c.recv(4096):
                pass
        except OSError as e:
            self.errors.append(repr(e))
        finally:
            c.close()

    def stop(self):
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(5)


def splits_for(data, seed, n_random=20):
    """One piece, every single cut point, every byte on its own, and random multi-cuts."""
    n = len(data)
    out = [""] + [str(i) for i in range(1, n)] + [",".join(str(i) for i in range(1, n))]
    rng = random.Random(seed)
    for _ in range(n_random):
        k = rng.randint(2, 12)
        out.append(",".join(str(i) for i in sorted(rng.sample(range(1, n), k))))
    return out


RUNNER = r"""
local PAT, PORT = @PAT@, @PORT@
local MODES = {@MODES@}
local SPLITS = {@SPLITS@}
local function fmt(a, b, c) return "(" .. q(a) .. "," .. q(b) .. "," .. q(c) .. ")" end
local function run(mode, spec)
  local s = ngx.socket.tcp()
  s:settimeout(5000)
  local ok, err = s:connect("127.0.0.1", PORT)
  if not ok then return "connect failed: " .. err end
  assert(s:send(spec .. "\n"))
  local out = {}
  if mode == "plain" or mode == "inclusive" then
    local it = mode == "inclusive" and s:receiveuntil(PAT, {inclusive = true}) or s:receiveuntil(PAT)
    for _ = 1, 50 do
      local a, b, c = it()
      out[#out + 1] = fmt(a, b, c)
      if not a then break end
    end
  elseif mode:match("sized") then
    local n = tonumber(mode:match("%d+"))
    local it = mode:match("^i") and s:receiveuntil(PAT, {inclusive = true}) or s:receiveuntil(PAT)
    for _ = 1, 300 do
      local a, b, c = it(n)
      out[#out + 1] = fmt(a, b, c)
      if not a and b then break end
    end
  elseif mode:match("cat") then
    -- a sized iterator's chunks joined per round (up to the nil, nil, nil after each
    -- boundary); the error's partial result is joined to the round's chunks
    local n = tonumber(mode:match("%d+"))
    local it = mode:match("^i") and s:receiveuntil(PAT, {inclusive = true}) or s:receiveuntil(PAT)
    local acc = {}
    for _ = 1, 300 do
      local a, b, c = it(n)
      if a then
        acc[#acc + 1] = a
      elseif b then
        out[#out + 1] = fmt(nil, b, table.concat(acc) .. c)
        break
      else
        out[#out + 1] = fmt(table.concat(acc), nil, nil)
        acc = {}
      end
    end
  elseif mode == "interleave" then
    local it = s:receiveuntil(PAT)
    for _ = 1, 50 do
      local a, b, c = it()
      out[#out + 1] = fmt(a, b, c)
      if not a then break end
      a, b, c = s:receive(3)
      out[#out + 1] = "r" .. fmt(a, b, c)
      if not a then break end
    end
  end
  s:close()
  return table.concat(out, " ")
end
local jobs, res, nxt = {}, {}, 1
for _, sp in ipairs(SPLITS) do for _, m in ipairs(MODES) do jobs[#jobs + 1] = {m, sp} end end
local function worker()
  while nxt <= #jobs do
    local j = nxt
    nxt = j + 1
    res[j] = run(jobs[j][1], jobs[j][2])
  end
end
local ths = {}
for i = 1, 16 do ths[i] = ngx.thread.spawn(worker) end
for i = 1, 16 do ngx.thread.wait(ths[i]) end
for j, r in ipairs(res) do ngx.say(jobs[j][1], "\t", jobs[j][2], "\t", r) end
"""

OVERLAP_EXPECTED = {
    'plain':
        '("A--aa",nil,nil) ("B--a-aa--ab",nil,nil) ("C--aa--aa",nil,nil) (nil,"closed","D--aa--a-x")',
    'inclusive':
        '("A--aa--aa--ab",nil,nil) ("B--a-aa--ab--aa--ab",nil,nil) ("C--aa--aa--aa--ab",nil,nil) (nil,"closed","D--aa--a-x")',
    'sized1':
        '("A",nil,nil) ("--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("B",nil,nil) ("--a",nil,nil) ("-",nil,nil) ("a",nil,nil) ("a",nil,nil) ("--a",nil,nil) ("b",nil,nil) ("",nil,nil) (nil,nil,nil) ("C",nil,nil) ("--aa",nil,nil) ("--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D",nil,nil) ("--aa--a",nil,nil) ("-",nil,nil) ("x",nil,nil) (nil,"closed","")',
    'sized2':
        '("A--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("B--a",nil,nil) ("-a",nil,nil) ("a--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa",nil,nil) ("--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) ("-x",nil,nil) (nil,"closed","")',
    'sized3':
        '("A--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("B--a",nil,nil) ("-aa",nil,nil) ("--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa",nil,nil) ("--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'sized4':
        '("A--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("B--a",nil,nil) ("-aa--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa",nil,nil) ("--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'sized5':
        '("A--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("B--a-",nil,nil) ("aa--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa",nil,nil) ("--aa",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'sized7':
        '("A--aa",nil,nil) (nil,nil,nil) ("B--a-aa",nil,nil) ("--ab",nil,nil) (nil,nil,nil) ("C--aa--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'sized8':
        '("A--aa",nil,nil) (nil,nil,nil) ("B--a-aa--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'sized9':
        '("A--aa",nil,nil) (nil,nil,nil) ("B--a-aa--a",nil,nil) ("b",nil,nil) (nil,nil,nil) ("C--aa--aa",nil,nil) ("",nil,nil) (nil,nil,nil) ("D--aa--a-",nil,nil) (nil,"closed","x")',
    'sized100':
        '("A--aa",nil,nil) (nil,nil,nil) ("B--a-aa--ab",nil,nil) (nil,nil,nil) ("C--aa--aa",nil,nil) (nil,nil,nil) (nil,"closed","D--aa--a-x")',
    'isized1':
        '("A",nil,nil) ("--aa",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("B",nil,nil) ("--a",nil,nil) ("-",nil,nil) ("a",nil,nil) ("a",nil,nil) ("--a",nil,nil) ("b",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("C",nil,nil) ("--aa",nil,nil) ("--aa",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("D",nil,nil) ("--aa--a",nil,nil) ("-",nil,nil) ("x",nil,nil) (nil,"closed","")',
    'isized3':
        '("A--aa",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("B--a",nil,nil) ("-aa",nil,nil) ("--a",nil,nil) ("b--aa--ab",nil,nil) (nil,nil,nil) ("C--aa",nil,nil) ("--aa",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'isized8':
        '("A--aa--aa--ab",nil,nil) (nil,nil,nil) ("B--a-aa--a",nil,nil) ("b--aa--ab",nil,nil) (nil,nil,nil) ("C--aa--aa",nil,nil) ("--aa--ab",nil,nil) (nil,nil,nil) ("D--aa--a",nil,nil) (nil,"closed","-x")',
    'isized100':
        '("A--aa--aa--ab",nil,nil) (nil,nil,nil) ("B--a-aa--ab--aa--ab",nil,nil) (nil,nil,nil) ("C--aa--aa--aa--ab",nil,nil) (nil,nil,nil) (nil,"closed","D--aa--a-x")',
    'interleave':
        '("A--aa",nil,nil) r("B--",nil,nil) ("a-aa--ab",nil,nil) r("C--",nil,nil) ("aa--aa",nil,nil) r("D--",nil,nil) (nil,"closed","aa--a-x")',
}
CRLF_EXPECTED = {
    'plain':
        '("h1\\013\\010h2",nil,nil) ("body\\013\\010\\013",nil,nil) ("",nil,nil) ("end",nil,nil) (nil,"closed","end")',
    'inclusive':
        '("h1\\013\\010h2\\013\\010\\013\\010",nil,nil) ("body\\013\\010\\013\\013\\010\\013\\010",nil,nil) ("\\013\\010\\013\\010",nil,nil) ("end\\013\\010\\013\\010",nil,nil) (nil,"closed","end")',
    'sized1':
        '("h",nil,nil) ("1",nil,nil) ("\\013\\010",nil,nil) ("h",nil,nil) ("2",nil,nil) ("",nil,nil) (nil,nil,nil) ("b",nil,nil) ("o",nil,nil) ("d",nil,nil) ("y",nil,nil) ("\\013\\010\\013",nil,nil) ("",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("e",nil,nil) ("n",nil,nil) ("d",nil,nil) ("",nil,nil) (nil,nil,nil) ("e",nil,nil) ("n",nil,nil) ("d",nil,nil) (nil,"closed","")',
    'sized2':
        '("h1",nil,nil) ("\\013\\010",nil,nil) ("h2",nil,nil) ("",nil,nil) (nil,nil,nil) ("bo",nil,nil) ("dy",nil,nil) ("\\013\\010\\013",nil,nil) ("",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("en",nil,nil) ("d",nil,nil) (nil,nil,nil) ("en",nil,nil) (nil,"closed","d")',
    'sized3':
        '("h1\\013\\010",nil,nil) ("h2",nil,nil) (nil,nil,nil) ("bod",nil,nil) ("y\\013\\010\\013",nil,nil) ("",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,"closed","")',
    'sized4':
        '("h1\\013\\010",nil,nil) ("h2",nil,nil) (nil,nil,nil) ("body",nil,nil) ("\\013\\010\\013",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'sized5':
        '("h1\\013\\010h",nil,nil) ("2",nil,nil) (nil,nil,nil) ("body\\013\\010\\013",nil,nil) ("",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'sized7':
        '("h1\\013\\010h2",nil,nil) (nil,nil,nil) ("body\\013\\010\\013",nil,nil) ("",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'sized8':
        '("h1\\013\\010h2",nil,nil) (nil,nil,nil) ("body\\013\\010\\013",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'sized9':
        '("h1\\013\\010h2",nil,nil) (nil,nil,nil) ("body\\013\\010\\013",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'sized100':
        '("h1\\013\\010h2",nil,nil) (nil,nil,nil) ("body\\013\\010\\013",nil,nil) (nil,nil,nil) ("",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'isized1':
        '("h",nil,nil) ("1",nil,nil) ("\\013\\010",nil,nil) ("h",nil,nil) ("2",nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("b",nil,nil) ("o",nil,nil) ("d",nil,nil) ("y",nil,nil) ("\\013\\010\\013",nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("e",nil,nil) ("n",nil,nil) ("d",nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("e",nil,nil) ("n",nil,nil) ("d",nil,nil) (nil,"closed","")',
    'isized3':
        '("h1\\013\\010",nil,nil) ("h2\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("bod",nil,nil) ("y\\013\\010\\013",nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("end",nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("end",nil,nil) (nil,"closed","")',
    'isized8':
        '("h1\\013\\010h2\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("body\\013\\010\\013\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("end\\013\\010\\013\\010",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'isized100':
        '("h1\\013\\010h2\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("body\\013\\010\\013\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("\\013\\010\\013\\010",nil,nil) (nil,nil,nil) ("end\\013\\010\\013\\010",nil,nil) (nil,nil,nil) (nil,"closed","end")',
    'interleave':
        '("h1\\013\\010h2",nil,nil) r("bod",nil,nil) ("y\\013\\010\\013",nil,nil) r("\\013\\010\\013",nil,nil) ("\\010end",nil,nil) r("end",nil,nil) (nil,"closed","")',
}

# pattern, data (bytes) and the one-piece results per mode (checked against OpenResty 0.10.23)
DATASETS = {
    # a boundary whose prefixes overlap ("--aa--aa--ab" contains a false start), several
    # occurrences, near misses, and a tail without a pending boundary prefix at EOF
    "overlap": ("--aa--ab", b"A--aa--aa--abB--a-aa--ab--aa--abC--aa--aa--aa--abD--aa--a-x",
                OVERLAP_EXPECTED),
    # an HTTP-like blank-line boundary with CRs and LFs in odd places
    "crlf": ("\r\n\r\n", b"h1\r\nh2\r\n\r\nbody\r\n\r\r\n\r\n\r\n\r\nend\r\n\r\nend",
             CRLF_EXPECTED),
}
MODE_GROUPS = {
    "unsized": ["plain", "inclusive"],
    "sized": ["sized1", "sized2", "sized3", "sized4", "sized5", "sized7", "sized8", "sized9",
              "sized100"],
    "inclusive_sized": ["isized1", "isized3", "isized8", "isized100"],
    "interleave": ["interleave"],
    # whatever the chunking, a sized iterator's chunks make up the unsized results
    "sized_concatenated": ["cat1", "cat2", "cat3", "cat5", "cat8", "icat1", "icat3"],
}


def lua_string(s):
    return '"' + "".join(c if c.isalnum() or c in "-_ " else "\\%03d" % ord(c) for c in s) + '"'


@pytest.mark.parametrize("group", list(MODE_GROUPS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_split_gives_the_one_piece_result(run_lua_ok, dataset, group):
    pattern, data, expected = DATASETS[dataset]
    expected = dict(expected)
    for n in (1, 2, 3, 5, 8):
        expected[f"cat{n}"], expected[f"icat{n}"] = expected["plain"], expected["inclusive"]
    modes = MODE_GROUPS[group]
    splits = splits_for(data, seed=len(dataset) * 7919)
    srv = SplitServer(data)
    try:
        out = lua(run_lua_ok, RUNNER, {
            "PAT": lua_string(pattern), "PORT": srv.port,
            "MODES": ",".join(f'"{m}"' for m in modes),
            "SPLITS": ",".join(f'"{s}"' for s in splits)}, timeout=30)
    finally:
        srv.stop()
    assert not srv.errors, srv.errors
    got = {}
    for line in out:
        mode, spec, res = line.split("\t")
        got[(mode, spec)] = res
    assert len(got) == len(modes) * len(splits), f"{len(got)} results for {len(modes) * len(splits)} runs"
    report = []
    for mode in modes:
        bad = [spec for spec in splits if got[(mode, spec)] != expected[mode]]
        if not bad:
            continue
        unstable = [spec for spec in splits if got[(mode, spec)] != got[(mode, "")]]
        line = f"{mode}: {len(bad)}/{len(splits)} splits differ from OpenResty"
        if got[(mode, "")] != expected[mode]:
            line += (f"\n    one piece: got      {got[(mode, '')][:600]}"
                     f"\n               expected {expected[mode][:600]}")
        if unstable:
            line += (f"\n    and {len(unstable)} splits differ from the one-piece result, e.g."
                     f" [{unstable[0]}]: {got[(mode, unstable[0])][:600]}")
        report.append(line)
    assert not report, "\n".join(report)


def test_eof_before_the_pattern(run_lua_ok, fake_server):
    srv = fake_server([("reply", b"no boundary here"), ("close",)])
    out = lua(run_lua_ok, """
for _, sized in ipairs{false, true} do
  local s = ngx.socket.tcp()
  s:settimeout(3000)
  assert(s:connect("127.0.0.1", @PORT@))
  local it = s:receiveuntil("--end--")
  if sized then
    P(it(100))
    P(it(100))
  else
    P(it())
  end
  s:close()
end
""", {"PORT": srv.port})
    # a sized iterator too reports the error with all the data as the partial result; the
    # read side is then closed (two values)
    assert out == ["nil|closed|no boundary here", "nil|closed|no boundary here", "nil|closed"]


def test_eof_with_a_pending_pattern_prefix(run_lua_ok, fake_server):
    # OpenResty keeps the bytes that may start the boundary inside the matcher; at EOF they are
    # not part of the partial result ("D", not "D--aa--a")
    srv = fake_server([("reply", b"D--aa--a"), ("close",)])
    out = lua(run_lua_ok, """
for _, mode in ipairs{"plain", "inclusive", "sized"} do
  local s = ngx.socket.tcp()
  s:settimeout(3000)
  assert(s:connect("127.0.0.1", @PORT@))
  local it = mode == "inclusive" and s:receiveuntil("--aa--ab", {inclusive = true}) or s:receiveuntil("--aa--ab")
  if mode == "sized" then P(it(100)) else P(it()) end
  s:close()
end
""", {"PORT": srv.port})
    assert out == ["nil|closed|D", "nil|closed|D", "nil|closed|D"]


def test_timeout_keeps_the_matcher_state(run_lua_ok, fake_server):
    # "abc--x" | 0.5 s | "y12": the first call times out with "abc" (the "--x" that may start
    # the boundary stays in the matcher), the next call completes the boundary
    srv = fake_server([("reply", b"abc--x"), ("delay", 0.5), ("reply", b"y12"), ("stall",)])
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(300)
P(s:connect("127.0.0.1", @PORT@))
local it = s:receiveuntil("--xy")
P(it())
P(it())
P(it())
P(it())
""", {"PORT": srv.port})
    assert out == ["1", "nil|timeout|abc", "", "nil|timeout|12", "nil|timeout|"]


def test_sized_iterator_timeout(run_lua_ok, fake_server):
    srv = fake_server([("reply", b"3--"), ("delay", 0.5), ("reply", b"xyz--xy"), ("stall",)])
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(300)
P(s:connect("127.0.0.1", @PORT@))
local it = s:receiveuntil("--xy")
for i = 1, 7 do P(it(3)) end
""", {"PORT": srv.port})
    assert out == ["1", "nil|timeout|3", "", "nil|nil|nil", "z", "nil|nil|nil",
                   "nil|timeout|", "nil|timeout|"]


def test_receiveuntil_argument_errors(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@))
P(s:receiveuntil(""))
PC(s.receiveuntil, s)
PC(function() return type(s:receiveuntil(5)) end)
PC(s.receiveuntil, s, {})
PC(s.receiveuntil, s, "x", {inclusive = 1})
PC(s.receiveuntil, s, "x", {inclusive = "yes"})
PC(function() return type(s:receiveuntil("x", {inclusive = false})) end)
PC(s.receiveuntil, s, "x", 5)
PC(s.receiveuntil, s, "x", {}, 1)
""", {"PORT": echo_server.port})
    assert out == [
        "1",
        "nil|pattern is empty",
        "err|expecting 2 or 3 arguments (including the object), but got 1",
        "ok|function",
        "err|bad argument #2 to '?' (string expected, got table)",
        'err|bad "inclusive" option value type: number',
        'err|bad "inclusive" option value type: string',
        "ok|function",
        "err|bad argument #3 to '?' (table expected, got number)",
        "err|expecting 2 or 3 arguments (including the object), but got 4",
    ]


def test_receiveuntil_nil_options_and_iterator_arguments(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(200)
P(s:connect("127.0.0.1", @PORT@))
PC(s.receiveuntil, s, "x", nil)
local it = s:receiveuntil("x")
PC(it, 1, 2)
PC(it, "x")
""", {"PORT": echo_server.port})
    assert out == [
        "1",
        "err|bad argument #3 to '?' (table expected, got nil)",
        "err|expecting 0 or 1 arguments, but seen 2",
        "err|bad argument #1 to '?' (number expected, got string)",
    ]


def test_iterator_on_a_closed_socket(run_lua_ok, echo_server):
    out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
P(type(s:receiveuntil("x")))
P(s:receiveuntil("x")())
P(s:connect("127.0.0.1", @PORT@))
local it = s:receiveuntil("--")
P(s:close())
P(it())
P(it(4))
""", {"PORT": echo_server.port})
    assert out == ["function", "nil|closed", "1", "1", "nil|closed", "nil|closed"]


class BigBodyServer:
    def __init__(self, payload):
        self.payload = payload
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
            with c:
                c.sendall(self.payload)
                c.shutdown(socket.SHUT_WR)
                c.settimeout(10)
                while c.recv(65536):
                    pass
        except OSError as e:
            self.error = e

    def stop(self):
        self.sock.close()
        self.t.join(10)


def test_20mb_body_with_a_70_byte_boundary_is_linear(run_lua_ok):
    boundary = b"\r\n--" + b"q7" * 33        # 70 bytes
    rng = random.Random(5)
    block = bytes(rng.getrandbits(8) for _ in range(1 << 16))
    body = (block * 320)[: 20 * 1024 * 1024]
    assert boundary not in body
    srv = BigBodyServer(body + boundary + b"TAIL")
    try:
        t0 = time.monotonic()
        out = lua(run_lua_ok, """
local s = ngx.socket.tcp()
s:settimeout(10000)
P(s:connect("127.0.0.1", @PORT@))
local it = s:receiveuntil("\\r\\n--" .. ("q7"):rep(33))
local parts, calls, biggest = {}, 0, 0
while true do
  local d, err, partial = it(8192)
  if not d then P("end", err, partial) break end
  calls = calls + 1
  parts[calls] = d
  if #d > biggest then biggest = #d end
end
local body = table.concat(parts)
P(#body, ngx.md5(body), biggest <= 8192 + 70)
P(s:receive("*a"))
""", {"PORT": srv.port}, timeout=30)
        took = time.monotonic() - t0
    finally:
        srv.stop()
    assert srv.error is None
    assert out == ["1", "end|nil|nil", f"{len(body)}|{hashlib.md5(body).hexdigest()}|true", "TAIL"]
    assert took < 8, f"20 MB through it(8192) took {took:.1f} s"
