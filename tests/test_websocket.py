"""resty.websocket.{protocol,client} (websocket/resty/websocket/) against python3-websockets:
the session ws_echo peer and peers of this file's own (tests/lua/websocket/ws_peer.py, with
behaviours chosen by path and permessage-deflate variants), plus fake servers for hostile
handshakes and frames. Lua helpers P / PC / Q come from tests/lua/socket/prelude.lua.
"""
import base64
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib

import pytest

import services
from helpers.socket_lua import PRELUDE, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "lua", "websocket", "ws_peer.py")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="          # RFC 6455 1.3's sample key
ACCEPT = base64.b64encode(hashlib.sha1((KEY + GUID).encode()).digest()).decode()

WS_PRELUDE = r'''
local client = require "resty.websocket.client"
local protocol = require "resty.websocket.protocol"
local function connect(uri, opts, new_opts)
  local ws = assert(client:new(new_opts or { timeout = 5000, max_payload_len = 2 * 1024 * 1024 }))
  local ok, err, hdr = ws:connect(uri, opts)
  return ws, ok, err, hdr
end
local function X(...)   -- like Q, but every byte outside printable ASCII as \ddd
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    t[i] = type(v) == "string" and '"' .. v:gsub('[^%w%p ]', function(c) return ("\\%03d"):format(c:byte()) end) .. '"' or tostring(v)
  end
  ngx.say(table.concat(t, "|"))
end
'''


def wl(run_lua_ok, code, **subst):
    code = PRELUDE + WS_PRELUDE + code
    for k, v in subst.items():
        code = code.replace(f"@{k}@", str(v))
    return run_lua_ok(code).splitlines()


class Peer:
    def __init__(self, *args, unix=False):
        self.dir = tempfile.mkdtemp(prefix="cosocket-ws-test.")
        if unix:
            self.path = os.path.join(self.dir, "ws.sock")
            argv = ["--unix", self.path]
            self.url = f"ws://unix:{self.path}:"
        else:
            self.port = services.free_port()
            argv = ["--port", str(self.port)]
            self.url = f"ws://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(["/usr/bin/python3", PEER, *argv, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"ws_peer did not start: {line!r}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def peer():
    p = Peer()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def peer_plain():
    p = Peer("--deflate", "off")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def peer_unix():
    p = Peer(unix=True)
    yield p
    p.stop()


def handshake_response(accept=ACCEPT, extra=b""):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n" + extra + b"\r\n")


def frame(opcode, payload, fin=True, rsv1=False, length=None):
    b1 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload) if length is None else length
    if n <= 125:
        head = struct.pack("!BB", b1, n)
    elif n <= 0xffff:
        head = struct.pack("!BBH", b1, 126, n)
    else:
        head = struct.pack("!BBQ", b1, 127, n)
    return head + payload


# --------------------------------------------------------------------------
# against the session echo peer (tests/helpers/ws_echo.py)

def test_text_binary_and_response_header(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
local ws, ok, err, hdr = connect("@URL@")
P(ok, err, hdr:match("^HTTP/1.1 101") ~= nil, hdr:find("Sec-WebSocket-Accept", 1, true) ~= nil)
P(ws:send_text("hello"))
P(ws:recv_frame())
P(ws:send_binary("\0\1\2\255"))
local data, typ, err = ws:recv_frame()
X(data, typ, err)
P(ws:send_text(""))
Q(ws:recv_frame())
P(ws:get_reused_times())
P(ws:close())
P(ws:send_text("x"))
''', URL=ws_echo.url)
    assert out == ["1|nil|true|true", "11|nil", "hello|text|nil", "10|nil",
                   '"\\000\\001\\002\\255"|"binary"|nil', "6|nil", '""|"text"|nil', "0", "1",
                   "nil|already closed"]


@pytest.mark.parametrize("size", [126, 65535, 65536, 1024 * 1024])
def test_large_messages(run_lua_ok, ws_echo, size):
    # 7-bit, 16-bit and 64-bit lengths both ways; the payload is checked byte for byte
    out = wl(run_lua_ok, r'''
local ws, ok = connect("@URL@")
local t = {}
for i = 1, @SIZE@ do t[i] = string.char((i * 7) % 256) end
local msg = table.concat(t)
P(ws:send_binary(msg))
local data, typ, err = ws:recv_frame()
P(#data, typ, err, data == msg, ngx.md5(data) == ngx.md5(msg))
ws:close()
''', URL=ws_echo.url, SIZE=size)
    hdr = 2 + (0 if size <= 125 else 2 if size <= 65535 else 8) + 4
    assert out == [f"{size + hdr}|nil", f"{size}|binary|nil|true|true"]


def test_ping_pong_and_close_handshake(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@")
P(ws:send_ping("are you there"))
P(ws:recv_frame())
P(ws:send_pong("unsolicited"))   -- the peer ignores it
P(ws:send_text("after"))
P(ws:recv_frame())
P(ws:send_close(4000, "done here"))
P(ws:recv_frame())                -- the peer echoes our close code
P(ws:recv_frame())                -- then closes the TCP connection
''', URL=ws_echo.url)
    assert out[0] == "19|nil"
    assert out[1] == "are you there|pong|nil"
    assert out[3:5] == ["11|nil", "after|text|nil"]
    assert out[5] == "17|nil"
    assert out[6] == "done here|close|4000"
    assert out[7] == "nil|nil|failed to receive the first 2 bytes: closed"


def test_subprotocol_origin_and_headers(run_lua_ok, peer):
    out = wl(run_lua_ok, r'''
local ws, ok, err, hdr = connect("@URL@/headers", { protocols = { "nope", "echo" },
  origin = "http://example.test", headers = { "X-One: 1", ["X-Two"] = "two" },
  host = "virtual.test:81" })
P(ok, err, ws.protocol, hdr:match("Sec%-WebSocket%-Protocol: (%w+)"))
local data = ws:recv_frame()
for _, h in ipairs({ "host", "origin", "x-one", "x-two", "sec-websocket-protocol",
                     "sec-websocket-version" }) do
  local pat = h:gsub("%-", "%%-")
  P(data:match("\n" .. pat .. ": ([^\n]*)") or data:match("^" .. pat .. ": ([^\n]*)"))
end
ws:close()
local ws2, ok2 = connect("@URL@/echo", { protocols = "chat" })
P(ok2, ws2.protocol)
ws2:close()
local ws3, ok3 = connect("@URL@/echo")
P(ok3, ws3.protocol)
ws3:close()
''', URL=peer.url)
    assert out == ["1|nil|echo|echo", "virtual.test:81", "http://example.test", "1", "two",
                   "nope, echo", "13", "1|chat", "1|nil"]


def test_unix_socket_uri(run_lua_ok, peer_unix):
    out = wl(run_lua_ok, r'''
local ws, ok, err, hdr = connect("@URL@/echo")
P(ok, err)
P(ws:send_text("over unix"))
P(ws:recv_frame())
ws:close()
''', URL=peer_unix.url)
    assert out == ["1|nil", "15|nil", "over unix|text|nil"]


def test_fragments_from_the_peer(run_lua_ok, peer_plain):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@/frag")
repeat
  local data, typ, err = ws:recv_frame()
  P(data, typ, err)
until err ~= "again"
''', URL=peer_plain.url)
    # websockets ends a fragmented message with an empty final continuation frame
    assert out == ["hello, |text|again", "fragmented |continuation|again",
                   "world|continuation|again", "|continuation|nil"]


def test_fragments_to_the_peer(run_lua_ok, peer_plain):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@/echo")
P(ws:send_frame(false, 0x1, "one "))
P(ws:send_ping("mid"))                -- a control frame between fragments
P(ws:send_frame(false, 0x0, "two "))
P(ws:send_frame(true, 0x0, "three"))
P(ws:recv_frame())
P(ws:recv_frame())
ws:close()
''', URL=peer_plain.url)
    assert out == ["10|nil", "9|nil", "10|nil", "11|nil", "mid|pong|nil",
                   "one two three|text|nil"]


def test_peer_close_code_and_reason(run_lua_ok, peer):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@/close")
P(ws:recv_frame())
P(ws:send_close())
P(ws:set_keepalive())
''', URL=peer.url)
    assert out == ["bye|close|4001", "6|nil", "nil|failed to set keepalive: close frame already sent"]


def test_argument_and_send_errors(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@", nil, { max_send_len = 10, timeout = 5000 })
P(ws:send_text(string.rep("a", 11)))
P(ws:send_ping(string.rep("a", 126)))
P(ws:send_frame(false, 0x9, "x"))
P(ws:send_close(99))
P(ws:send_text(string.rep("a", 10)))
P(ws:recv_frame())
P(ws:close())
PC(function() return ws:connect(42) end)
local ws2 = client:new()
P(ws2:connect("wss://127.0.0.1:1/"))
P(ws2:connect("http://127.0.0.1/"))
P(ws2:connect("ws://127.0.0.1:@CLOSED@/"))
P(ws2:connect("ws://unix:/nonexistent/sock:/x"))
''', URL=ws_echo.url, CLOSED=services.free_port())
    assert out[0] == "nil|payload too big"
    assert out[1] == "nil|too much payload for control frame"
    assert out[2] == "nil|fragmented control frame"
    assert out[3] == "nil|bad status code"
    assert out[4:7] == ["16|nil", "aaaaaaaaaa|text|nil", "1"]
    assert out[7].startswith("err|bad argument #1 uri")
    assert out[8:10] == ["nil|failed to connect: connection refused",   # wss:// port 1
                         "nil|bad websocket uri: http://127.0.0.1/"]
    assert out[10] == "nil|failed to connect: connection refused"
    assert out[11].startswith("nil|failed to connect: ")


def test_keepalive_reuses_the_upgraded_connection(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
for i = 1, 3 do
  local ws, ok, err, hdr = connect("@URL@")
  P(ok, err, hdr ~= nil, ws:get_reused_times())
  P(ws:send_text("round " .. i))
  P(ws:recv_frame())
  P(ws:set_keepalive(10000, 4))
end
''', URL=ws_echo.url)
    assert out == ["1|nil|true|0", "13|nil", "round 1|text|nil", "1",
                   "1|nil|false|1", "13|nil", "round 2|text|nil", "1",
                   "1|nil|false|2", "13|nil", "round 3|text|nil", "1"]


def test_recv_timeout_is_not_fatal(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
local ws = connect("@URL@")
ws:set_timeout(100)
P(ws:recv_frame())
ws:set_timeout(5000)
P(ws:send_text("still alive"))
P(ws:recv_frame())
''', URL=ws_echo.url)
    assert out == ["nil|nil|failed to receive the first 2 bytes: timeout", "17|nil",
                   "still alive|text|nil"]


def test_concurrent_connections(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, r'''
local ths = {}
for i = 1, 20 do
  ths[i] = ngx.thread.spawn(function()
    local ws, ok = connect("@URL@")
    local n = 0
    for j = 1, 20 do
      local msg = ("%d-%d-"):format(i, j) .. string.rep("z", i * 100)
      ws:send_text(msg)
      local data = ws:recv_frame()
      if data == msg then n = n + 1 end
    end
    ws:close()
    return n
  end)
end
local total = 0
for i = 1, 20 do local _, n = ngx.thread.wait(ths[i]); total = total + n end
P(total)
''', URL=ws_echo.url)
    assert out == ["400"]


# --------------------------------------------------------------------------
# protocol.lua on its own

def test_build_frame_wire_format(run_lua_ok):
    out = wl(run_lua_ok, r'''
X(protocol.build_frame(true, 0x1, 2, "hi", false))
X(protocol.build_frame(false, 0x2, 0, "", false))
local f = protocol.build_frame(true, 0x2, 300, string.rep("x", 300), false)
X(f:sub(1, 4), #f)
f = protocol.build_frame(true, 0x2, 70000, string.rep("x", 70000), false)
X(f:sub(1, 10), #f)
f = protocol.build_frame(true, 0x1, 5, "Hello", true)
local k = { f:byte(3, 6) }
local t = {}
for i = 1, 5 do t[i] = string.char(bit.bxor(f:byte(6 + i), k[(i - 1) % 4 + 1])) end
X(f:byte(1), f:byte(2), #f, table.concat(t))
X(protocol.build_frame(true, 0x1, 1, "z", false, true))
''')
    assert out == ['"\\129\\002hi"', '"\\002\\000"', '"\\130~\\001,"|304',
                   '"\\130\\127\\000\\000\\000\\000\\000\\001\\017p"|70010',
                   '129|133|11|"Hello"', '"\\193\\001z"']


# --------------------------------------------------------------------------
# faults (fake servers)

def fake_ws(fake_server, *after, extra=b"", accept=ACCEPT):
    return fake_server([("read_until", b"\r\n\r\n"), ("reply", handshake_response(accept, extra)),
                        *after])


def test_bad_accept_is_refused(run_lua_ok, fake_server):
    srv = fake_ws(fake_server, ("stall",), accept="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" })
P(ok, err)
P(ws:send_text("x"))
P(ws:recv_frame())
''', PORT=srv.port, KEY=KEY)
    assert out == ['nil|bad "sec-websocket-accept" response header: AAAAAAAAAAAAAAAAAAAAAAAAAAA=',
                   "nil|fatal error already happened",
                   "nil|nil|fatal error already happened"]


@pytest.mark.parametrize("sent,err", [
    # found by tests/test_fuzz.py (seed 21, cases 71, 98, 142): a frame cut in its payload
    (frame(0x1, b"hello fuzz")[:6], "failed to receive the frame payload: timeout"),
    # ... in its extended length, and after its first byte
    (frame(0x2, b"x" * 300)[:3], "failed to receive the 2 byte payload length: timeout"),
    (frame(0x1, b"hello fuzz")[:1], "failed to receive the first 2 bytes: timeout"),
])
def test_timeout_inside_a_frame_is_fatal(run_lua_ok, fake_server, sent, err):
    """The rest of the frame, sent later, would be read as the next frame's header: the
    connection is closed and never pooled; a timeout before a frame's first byte is not."""
    srv = fake_ws(fake_server, ("reply", sent), ("stall",))
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" })
P(ok, err)
ws:set_timeout(200)
P(ws:recv_frame())
P(ws:set_keepalive())
P(ws:recv_frame())
''', PORT=srv.port, KEY=KEY)
    assert out == ["1|nil", f"nil|nil|{err}",
                   "nil|failed to set keepalive: fatal error already happened",
                   "nil|nil|fatal error already happened"]


def test_request_bytes_and_good_accept(run_lua_ok, fake_server):
    srv = fake_ws(fake_server, ("reply", frame(0x1, b"ok")), ("stall",))
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/a/b?c=d", { key = "@KEY@" })
P(ok, err)
P(ws:recv_frame())
''', PORT=srv.port, KEY=KEY)
    assert out == ["1|nil", "ok|text|nil"]
    req = srv.received[0].decode()
    assert req.startswith("GET /a/b?c=d HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{srv.port}\r\n" in req
    assert f"Sec-WebSocket-Key: {KEY}\r\n" in req
    assert "Sec-WebSocket-Version: 13\r\n" in req and "Upgrade: websocket\r\n" in req


@pytest.mark.parametrize("reply,err", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
     "bad HTTP response status line: HTTP/1.1 403 Forbidden"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "bad HTTP response status line: HTTP/1.1 200 OK"),
    (handshake_response(extra=b"Sec-WebSocket-Protocol: other\r\n"),
     'bad "sec-websocket-protocol" response header: other was not offered'),
    (handshake_response().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
     'bad "upgrade" response header: h2c'),
    (handshake_response(extra=b"Sec-WebSocket-Extensions: x-unknown\r\n"),
     'bad "sec-websocket-extensions" response header: x-unknown was not offered'),
])
def test_bad_handshake_responses(run_lua_ok, fake_server, reply, err):
    srv = fake_server([("read_until", b"\r\n\r\n"), ("reply", reply), ("stall",)])
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@", protocols = { "chat" } })
P(ok, err)
''', PORT=srv.port, KEY=KEY)
    assert out == [f"nil|{err}"]


def test_handshake_cut_short(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n\r\n"), ("reply", b"HTTP/1.1 101 Swi"), ("close",)])
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" })
P(ok, err)
''', PORT=srv.port, KEY=KEY)
    assert out == ["nil|failed to receive response header: closed"]


def client_frames(data):
    """The frames a client sent after its handshake: [(opcode, payload)], each checked masked."""
    data = data[data.index(b"\r\n\r\n") + 4:]
    out = []
    while len(data) >= 2:
        b1, b2 = data[0], data[1]
        assert b2 & 0x80, "a client frame must be masked"
        n, pos = b2 & 0x7f, 2
        if n == 126:
            n, pos = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, pos = struct.unpack("!Q", data[2:10])[0], 10
        key, payload = data[pos:pos + 4], data[pos + 4:pos + 4 + n]
        out.append((b1 & 0x0f, bytes(c ^ key[i % 4] for i, c in enumerate(payload))))
        data = data[pos + 4 + n:]
    return out


def close_sent(srv):
    """The status code of the close frame the client sent (None when it sent none)."""
    wait_for(lambda: srv.active == 0)
    closes = [p for op, p in client_frames(srv.received[0]) if op == 0x8]
    assert len(closes) <= 1
    return struct.unpack("!H", closes[0][:2])[0] if closes else None


@pytest.mark.parametrize("wire,err,code", [
    (frame(0x1, b"hello")[:4], "failed to receive the frame payload: closed", None),
    (b"\x81", "failed to receive the first 2 bytes: closed", None),
    (b"\x82\x7e\x01", "failed to receive the 2 byte payload length: closed", None),
    (b"\x82\x7f\x00\x00", "failed to receive the 8 byte payload length: closed", None),
    (frame(0x2, b"", length=100000), "exceeding max payload len", 1009),
    (b"\x82\x7f" + b"\x80" + b"\x00" * 7,
     "bad payload length: the most significant bit is set", 1002),
    (b"\x82\x7f" + b"\x7f" + b"\xff" * 7, "exceeding max payload len", 1009),
    (frame(0x9, b"x" * 126), "too long payload for control frame", 1002),
    (frame(0x9, b"x", fin=False), "bad fragmented control frame", 1002),
    (frame(0x3, b"x"), "bad opcode: 3", 1002),
    (frame(0x1, b"x", rsv1=True), "bad RSV1, RSV2, or RSV3 bits", 1002),
    (b"\x81\x82abcd" + b"\x00\x00", "frame masked", 1002),
    (b"\x88\x01\x03", "bad close frame: a 1 byte payload", 1002),
    (frame(0x8, b"\x03\xed"), "bad close code: 1005", 1002),
    (frame(0x8, b"\x0b\xb7"), "bad close code: 2999", 1002),
    (frame(0x8, b"\x03\xe8\xff"), "bad close reason: invalid UTF-8", 1007),
])
def test_bad_frames(run_lua_ok, fake_server, wire, err, code):
    srv = fake_ws(fake_server, ("reply", wire), ("close",))
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" }, { max_payload_len = 65536 })
P(ok, err)
local data, typ, err = ws:recv_frame()
X(data, typ, err)
P(ws:recv_frame())
P(ws:send_text("x"))
P(ws:close())
''', PORT=srv.port, KEY=KEY)
    assert out == ["1|nil", f'nil|nil|"{err}"', "nil|nil|fatal error already happened",
                   "nil|fatal error already happened", "nil|fatal error already happened"]
    assert close_sent(srv) == code


# --------------------------------------------------------------------------
# recv_message (the message-level API)

def test_recv_message_with_python_peers(run_lua_ok, peer, peer_plain):
    out = wl(run_lua_ok, r'''
local ws = connect("@PLAIN@/frag")
P(ws:recv_message())
ws:send_frame(false, 0x1, "caf\195")       -- a character split across fragments
ws:send_frame(true, 0x0, "\169 ok")
P(ws:recv_message())
ws:close()
ws = connect("@URL@/ping")
P(ws:recv_message())                        -- the ping was answered on the way
ws:close()
ws = connect("@URL@/close")
P(ws:recv_message())
P(ws:recv_message())
''', PLAIN=peer_plain.url, URL=peer.url)
    assert out == ["hello, fragmented world|text|nil", "caf\u00e9 ok|text|nil",
                   "pong ok|text|nil", "bye|close|4001",
                   "nil|nil|failed to receive the first 2 bytes: closed"]


def test_recv_message_answers_pings_and_closes(run_lua_ok, fake_server):
    srv = fake_ws(fake_server, ("reply", frame(0x1, b"a", fin=False) + frame(0x9, b"hi")
                                + frame(0xa, b"ignored") + frame(0x0, b"b")
                                + frame(0x8, b"\x0f\xa1bye")), ("close",))
    out = wl(run_lua_ok, r'''
local ws = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" })
P(ws:recv_message())
P(ws:recv_message())
P(ws:recv_message())
''', PORT=srv.port, KEY=KEY)
    assert out == ["ab|text|nil", "bye|close|4001",
                   "nil|nil|failed to receive the first 2 bytes: closed"]
    wait_for(lambda: srv.active == 0)
    assert client_frames(srv.received[0]) == [(0xa, b"hi"), (0x8, b"\x0f\xa1")]


@pytest.mark.parametrize("wire,err,code", [
    (frame(0x1, b"caf\xc3"), "invalid UTF-8 text", 1007),
    (frame(0x1, b"\xed\xa0\x80"), "invalid UTF-8 text", 1007),       # a surrogate
    (frame(0x1, b"\xc0\xaf"), "invalid UTF-8 text", 1007),            # overlong
    (frame(0x1, b"\xf4\x90\x80\x80"), "invalid UTF-8 text", 1007),    # above U+10FFFF
    (frame(0x0, b"x"), "unexpected continuation frame", 1002),
    (frame(0x1, b"x", fin=False) + frame(0x2, b"y"), "a new message inside a fragmented one",
     1002),
    (frame(0x2, b"x" * 60, fin=False) + frame(0x0, b"y" * 60), "message too big", 1009),
])
def test_recv_message_violations(run_lua_ok, fake_server, wire, err, code):
    srv = fake_ws(fake_server, ("reply", wire), ("close",))
    out = wl(run_lua_ok, r'''
local ws = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" }, { max_message_len = 100 })
P(ws:recv_message())
P(ws:recv_message())
''', PORT=srv.port, KEY=KEY)
    assert out == [f"nil|nil|{err}", "nil|nil|fatal error already happened"]
    assert close_sent(srv) == code


def test_recv_message_valid_utf8(run_lua_ok, fake_server):
    text = "a\u00e9\u20ac\U0001f600\ud7ff\ue000\U0010ffff".encode()
    srv = fake_ws(fake_server, ("reply", frame(0x1, text)), ("close",))
    out = wl(run_lua_ok, r'''
local ws = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@" })
local data, typ, err = ws:recv_message()
P(#data, typ, err, protocol.valid_utf8(data), protocol.valid_utf8(data:sub(1, -2)))
''', PORT=srv.port, KEY=KEY)
    assert out == [f"{len(text)}|text|nil|true|false"]


# --------------------------------------------------------------------------
# permessage-deflate (RFC 7692)

def raw_deflate(data, wbits=-15):
    c = zlib.compressobj(wbits=wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


DEFLATE_ROUNDS = r'''
local ws, ok, err, hdr = connect("@URL@", { compression = @OPTS@ })
P(ok, err, hdr:match("Sec%-WebSocket%-Extensions: ([^\r]*)"))
local msgs = { "hello", "hello", string.rep("abc", 100000), "", "x", "\0\1\2\255" }
for i, m in ipairs(msgs) do
  local bytes = ws:send_binary(m)
  local data, typ, err = ws:recv_frame()
  P(i, bytes, data == m, typ, err)
end
local t = {}
for i = 1, 1024 * 1024 do t[i] = string.char(math.random(0, 255)) end
local big = table.concat(t)
local bytes = ws:send_binary(big)
local data, typ, err = ws:recv_frame()
P("1MB", bytes > #big, data == big, typ, err)
P(ws:set_keepalive())
ws:send_close(1000, "ok")
P(ws:recv_frame())
'''


def rounds(out):
    return {int(line.split("|")[0]): line.split("|")[1:] for line in out[1:7]}


def test_deflate_with_the_echo_peer(run_lua_ok, ws_echo):
    out = wl(run_lua_ok, DEFLATE_ROUNDS, URL=ws_echo.url, OPTS="true")
    assert out[0] == ("1|nil|permessage-deflate; server_max_window_bits=12; "
                      "client_max_window_bits=12")
    r = rounds(out)
    assert all(v[1:] == ["true", "binary", "nil"] for v in r.values())
    # context takeover: the second "hello" is a back reference, smaller than the first
    assert int(r[2][0]) < int(r[1][0]) == 6 + 7
    assert int(r[3][0]) < 1000              # 300 KB of "abc" compressed
    assert r[4][0] == "7"                   # an empty message is one 0x00 byte
    assert out[7] == "1MB|true|true|binary|nil"   # incompressible: a little bigger
    assert out[8] == "nil|failed to set keepalive: permessage-deflate in use"
    assert out[9] == "ok|close|1000"


@pytest.mark.parametrize("spec,opts,ext", [
    ("server_no_context_takeover", "true",
     "permessage-deflate; server_no_context_takeover"),
    ("client_no_context_takeover", "true",
     "permessage-deflate; client_no_context_takeover"),
    ("server_bits=10,client_bits=9", "true",
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
    ("default", "{ server_no_context_takeover = true, client_no_context_takeover = true }",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=12; client_max_window_bits=12"),
    ("default", "{ server_max_window_bits = 11, client_max_window_bits = 10 }",
     "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"),
])
def test_deflate_negotiation(run_lua_ok, spec, opts, ext):
    p = Peer("--deflate", spec)
    try:
        out = wl(run_lua_ok, DEFLATE_ROUNDS, URL=p.url + "/echo", OPTS=opts)
    finally:
        p.stop()
    assert out[0] == f"1|nil|{ext}"
    r = rounds(out)
    assert all(v[1:] == ["true", "binary", "nil"] for v in r.values())
    if "client_no_context_takeover" in ext:
        assert r[2][0] == r[1][0]           # no back reference into the previous message
    else:
        assert int(r[2][0]) < int(r[1][0])
    assert out[7] == "1MB|true|true|binary|nil"
    assert out[9] == "ok|close|1000"


def test_deflate_request_bytes_and_fragments(run_lua_ok, fake_server):
    msg = b"fragmented and compressed " * 50
    comp = raw_deflate(msg)
    half = len(comp) // 2
    srv = fake_ws(fake_server,
                  ("reply", frame(0x1, comp[:half], fin=False, rsv1=True)
                   + frame(0x0, comp[half:]) + frame(0x2, b"plain")
                   + frame(0x2, raw_deflate(b"again", -9), rsv1=True)),
                  ("close",),
                  extra=b"Sec-WebSocket-Extensions: permessage-deflate; "
                        b"client_max_window_bits=9\r\n")
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@", compression = true })
P(ok, err)
local a, typ, err = ws:recv_frame()
P(typ, err)
local b, typ2, err2 = ws:recv_frame()
P(typ2, err2, a .. b == "@MSG@")
P(ws:recv_frame())
P(ws:recv_frame())
''', PORT=srv.port, KEY=KEY, MSG=msg.decode())
    assert out == ["1|nil", "text|again", "continuation|nil|true", "plain|binary|nil",
                   "again|binary|nil"]
    req = srv.received[0].decode()
    assert "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in req


@pytest.mark.parametrize("opts,new_opts,err", [
    ("true", "{ max_payload_len = 65536 }", "inflated message too big"),
    ("{ max_inflated_len = 1000 }", "nil", "inflated message too big"),
])
def test_deflate_bomb(run_lua_ok, fake_server, opts, new_opts, err):
    bomb = raw_deflate(b"\0" * (16 * 1024 * 1024))       # 16 MB of zeros in ~16 KB
    assert len(bomb) < 65536
    srv = fake_ws(fake_server, ("reply", frame(0x2, bomb, rsv1=True)), ("close",),
                  extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@", compression = @OPTS@ },
                            @NEW@)
P(ok, err)
P(ws:recv_frame())
P(ws:recv_frame())
collectgarbage()
P(collectgarbage("count") < 64 * 1024)
''', PORT=srv.port, KEY=KEY, OPTS=opts, NEW=new_opts)
    assert out == ["1|nil", f"nil|nil|{err}", "nil|nil|fatal error already happened", "true"]
    assert close_sent(srv) == 1009


@pytest.mark.parametrize("wire,err", [
    (frame(0x2, b"\xff\xff\xff\xff", rsv1=True), "failed to inflate: invalid block type"),
    (frame(0x1, b"a", fin=False) + frame(0x0, b"b", rsv1=True),
     "bad RSV1 bit on a continuation frame"),
    (frame(0x9, b"", rsv1=True), "bad RSV1 bit on a ping frame"),
])
def test_deflate_bad_frames(run_lua_ok, fake_server, wire, err):
    srv = fake_ws(fake_server, ("reply", wire), ("stall",),
                  extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@", compression = true })
P(ok, err)
repeat
  local data, typ, err = ws:recv_frame()
  if not data then P(data, typ, err) end
until not data
''', PORT=srv.port, KEY=KEY)
    assert out == ["1|nil", f"nil|nil|{err}"]


@pytest.mark.parametrize("ext,compression,err", [
    (b"permessage-deflate", "false", "permessage-deflate was not offered"),
    (b"permessage-deflate; foo=1", "true", "unknown permessage-deflate parameter foo"),
    (b"permessage-deflate; server_max_window_bits=16", "true",
     "bad permessage-deflate parameter server_max_window_bits"),
    (b"permessage-deflate", "{ server_no_context_takeover = true }",
     "server ignored server_no_context_takeover"),
    (b"permessage-deflate; server_max_window_bits=12", "{ server_max_window_bits = 10 }",
     "server ignored server_max_window_bits"),
    (b"permessage-deflate; client_max_window_bits=8", "true",
     "client_max_window_bits=8 is not supported"),
    (b"permessage-deflate, permessage-deflate", "true",
     "permessage-deflate, permessage-deflate was not offered"),
])
def test_deflate_bad_negotiation(run_lua_ok, fake_server, ext, compression, err):
    srv = fake_ws(fake_server, ("stall",),
                  extra=b"Sec-WebSocket-Extensions: " + ext + b"\r\n")
    out = wl(run_lua_ok, r'''
local ws, ok, err = connect("ws://127.0.0.1:@PORT@/", { key = "@KEY@", compression = @C@ })
P(ok, err)
''', PORT=srv.port, KEY=KEY, C=compression)
    assert out == [f'nil|bad "sec-websocket-extensions" response header: {err}']
