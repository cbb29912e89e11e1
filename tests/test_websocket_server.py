"""resty.websocket.server (websocket/resty/websocket/server.lua) on cosocket.listen, driven by
the independent python3-websockets client (asyncio) and by raw sockets for bad handshakes and
bad frames; resty.websocket.client against it (ws://, wss://, unix sockets); and the client's
wss:// against python3-websockets TLS servers (tests/lua/websocket/ws_peer.py).
"""
import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct
import time

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from helpers.cosocket_server import ServerProc
from test_websocket import PRELUDE, WS_PRELUDE, Peer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="          # RFC 6455 1.3's sample key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="    # ... and its accept value
assert base64.b64encode(hashlib.sha1((KEY + GUID).encode()).digest()).decode() == ACCEPT

# A websocket server: arg[1] is a Lua table literal of server:new options (sock added per
# connection); arg[2] "tls" (arg[3] cert file, arg[4] key file) or "unix" (arg[3] path).
# Behaviour by request path; every event is a line on stdout.
WS_SERVER = r'''
local cosocket = require "cosocket"
local server = require "resty.websocket.server"
local opts = assert(load("return " .. arg[1]))()
local function log(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
  io.write(table.concat(t, " "), "\n")
  io.flush()
end

local function echo(ws)
  while true do
    local data, typ, err = ws:recv_message()
    if not data then log("ERR", err) return end
    if typ == "close" then
      log("CLOSE", err, data)
      log("CLOSED", ws:close())
      return
    end
    local bytes, serr
    if typ == "text" then bytes, serr = ws:send_text(data) else bytes, serr = ws:send_binary(data) end
    log("SENT", #data, bytes, serr)
  end
end

local paths = {}
function paths.echo(ws) echo(ws) end
function paths.frames(ws)
  while true do
    local data, typ, err = ws:recv_frame()
    if not data then log("ERR", err) return end
    if typ == "close" then log("CLOSE", err, data) ws:close() return end
    ws:send_text(typ .. "|" .. data .. "|" .. tostring(err))
  end
end
function paths.frag(ws)
  ws:send_frame(false, 0x1, "hello, ")
  ws:send_frame(false, 0x0, "fragmented ")
  ws:send_frame(true, 0x0, "world")
  echo(ws)
end
function paths.ping(ws)
  ws:send_ping("sp")
  local data, typ = ws:recv_frame()
  ws:send_text("got " .. tostring(typ) .. ": " .. tostring(data))
  echo(ws)
end
function paths.close(ws)
  log("SEND_CLOSE", ws:send_close(4002, "server bye"))
  log("CLOSED", ws:close())
  log("PEER_CLOSED", ws.peer_closed)
end
function paths.info(ws)
  ws:send_text(table.concat({ tostring(ws.protocol), tostring(ws.extensions), ws.request.uri,
                              ws.request.headers.host, ws.request.method }, "|"))
  echo(ws)
end

local listen = { host = "127.0.0.1", port = 0 }
if arg[2] == "tls" then
  listen.ssl = { cert = arg[3], key = arg[4] }
elseif arg[2] == "unix" then
  listen = { path = arg[3] }
end
listen.handler = function(sock, peer)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.sock = sock
  local ws, err, status = server:new(o)
  if not ws then log("REJECT", status, err) return end
  log("ACCEPT", ws.request.uri, ws.protocol, ws.extensions)
  local f = paths[ws.request.uri:match("^/(%w*)")] or echo
  f(ws)
end
local srv = assert(cosocket.listen(listen))
log("listening on", srv:port() or 0)
'''


@pytest.fixture
def ws_server(cosocket_bin, tmp_path):
    procs = []

    def start(opts="{ timeout = 5000 }", *args):
        p = ServerProc(cosocket_bin, tmp_path, WS_SERVER, name=f"ws_server{len(procs)}.lua",
                       args=[opts, *args])
        procs.append(p)
        p.url = f"ws://127.0.0.1:{p.port()}" if not args or args[0] != "unix" else None
        return p
    yield start
    for p in procs:
        if p.p.poll() is None:
            assert p.stop() == 0, p.err
        else:
            p.finish()


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(url, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("max_size", 2 ** 24)
    return websockets.connect(url, **kw)


# --------------------------------------------------------------------------
# python3-websockets client -> our server

def test_python_client_text_binary_fragments_ping_close(ws_server):
    srv = ws_server("{ timeout = 5000, max_payload_len = 4 * 1024 * 1024 }")
    big = os.urandom(1 << 20)

    async def go():
        async with connect(srv.url + "/echo", compression=None) as ws:
            assert ws.extensions == [] and ws.subprotocol is None
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            await ws.send("")
            assert await ws.recv() == ""
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send("caf\u00e9 \U0001f600")
            assert await ws.recv() == "caf\u00e9 \U0001f600"
            await ws.send(iter(["frag", "mented ", "text"]))
            assert await ws.recv() == "fragmented text"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("after ping")
            assert await ws.recv() == "after ping"
        return ws.close_code
    assert run(go()) == 1000
    srv.wait_for(r"CLOSED 1")
    out = srv.out.decode()
    assert "ACCEPT /echo nil nil" in out
    assert f"SENT {len(big)} {len(big) + 10} nil" in out       # unmasked: 2 + 8 header bytes
    assert "SENT 5 7 nil" in out
    assert "CLOSE 1000 " in out


def test_python_client_frame_level(ws_server):
    srv = ws_server()

    async def go():
        async with connect(srv.url + "/frames", compression=None) as ws:
            await ws.send(iter(["a", "b", "c"]))
            got = [await ws.recv() for _ in range(4)]
            await ws.send(b"bin")
            got.append(await ws.recv())
            return got
    # websockets ends a fragmented message with an empty continuation frame
    assert run(go()) == ["text|a|again", "continuation|b|again", "continuation|c|again",
                         "continuation||nil", "binary|bin|nil"]


def test_python_client_server_fragments_and_ping(ws_server):
    srv = ws_server()

    async def go():
        async with connect(srv.url + "/frag", compression=None) as ws:
            a = await ws.recv()
        async with connect(srv.url + "/ping", compression=None) as ws:
            b = await ws.recv()      # websockets answered the server's ping on its own
        return a, b
    assert run(go()) == ("hello, fragmented world", "got pong: sp")


def test_server_closes_with_code_and_reason(ws_server):
    srv = ws_server()

    async def go():
        async with connect(srv.url + "/close", compression=None) as ws:
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
        return e.value.rcvd.code, e.value.rcvd.reason
    assert run(go()) == (4002, "server bye")
    srv.wait_for("PEER_CLOSED true")
    out = srv.out.decode()
    assert "SEND_CLOSE 14 nil" in out and "CLOSED 1" in out


DEFLATE_ROUNDS_MSGS = ["hello", "hello", "abc" * 100000, "", "x"]


async def deflate_rounds(url, **kw):
    big = os.urandom(1 << 20)
    async with connect(url, **kw) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions")
        for m in DEFLATE_ROUNDS_MSGS:
            await ws.send(m)
            assert await ws.recv() == m
        await ws.send(big)
        assert await ws.recv() == big
        return ext, [type(e).__name__ for e in ws.extensions]


def sent_sizes(srv):
    """The wire sizes of the server's echoes, in order."""
    return [int(line.split()[2]) for line in srv.out.decode().splitlines()
            if line.startswith("SENT ")]


@pytest.mark.parametrize("server_opts,client_ext,ext", [
    ("true", None, "permessage-deflate"),
    ("{ server_no_context_takeover = true, server_max_window_bits = 11, "
     "client_max_window_bits = 10 }", None,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; "
     "client_max_window_bits=10"),
    ("true", dict(server_max_window_bits=10, client_no_context_takeover=True),
     "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"),
    ("{ client_no_context_takeover = true, level = 1 }", dict(client_max_window_bits=None),
     "permessage-deflate; client_no_context_takeover"),
])
def test_python_client_permessage_deflate(ws_server, server_opts, client_ext, ext):
    srv = ws_server("{ timeout = 5000, max_payload_len = 4 * 1024 * 1024, compression = %s }"
                    % server_opts)
    kw = {}
    if client_ext is not None:
        kw = dict(compression=None, extensions=[ClientPerMessageDeflateFactory(**client_ext)])
    got_ext, names = run(deflate_rounds(srv.url + "/echo", **kw))
    assert got_ext == ext and names == ["PerMessageDeflate"]
    srv.wait_for("SENT 1048576")
    sizes = sent_sizes(srv)
    assert sizes[0] == 2 + 7                      # "hello" deflated: 7 bytes
    if "server_no_context_takeover" in ext:
        assert sizes[1] == sizes[0]
    else:
        assert sizes[1] < sizes[0]                # a back reference into the first "hello"
    assert sizes[2] < 2000                        # 300 KB of "abc"
    assert sizes[3] == 2 + 1                      # an empty message: one 0x00 byte
    assert f"ACCEPT /echo nil {ext}" in srv.out.decode()


@pytest.mark.parametrize("server_opts,kw", [
    ("false", {}),                                    # the server does not enable it
    ("true", dict(compression=None)),                 # the client does not offer it
    # an offer the server must decline: zlib cannot deflate with a 256-byte window
    ("true", dict(compression=None, extensions=[
        ClientPerMessageDeflateFactory(server_max_window_bits=8)])),
])
def test_python_client_without_deflate(ws_server, server_opts, kw):
    srv = ws_server("{ timeout = 5000, max_payload_len = 4 * 1024 * 1024, compression = %s }"
                    % server_opts)
    got_ext, names = run(deflate_rounds(srv.url + "/echo", **kw))
    assert got_ext is None and names == []
    srv.wait_for("SENT 1048576")
    assert sent_sizes(srv)[2] == 300000 + 10      # sent as is (a 64-bit length)


@pytest.mark.parametrize("protocols,offer,chosen", [
    ('{ "chat", "echo" }', ["echo", "chat"], "chat"),          # the server's preference
    ('{ "chat", "echo" }', ["echo"], "echo"),
    ('{ "chat", "echo" }', ["other"], None),
    ('"echo"', ["x", "echo"], "echo"),
    ("function(offered) return offered[#offered] end", ["a", "b", "c"], "c"),
    ('function() return "not offered" end', ["a"], None),
    ('{ "chat" }', None, None),
])
def test_subprotocol_selection(ws_server, protocols, offer, chosen):
    srv = ws_server("{ timeout = 5000, protocols = %s }" % protocols)

    async def go():
        async with connect(srv.url + "/info", compression=None, subprotocols=offer) as ws:
            return ws.subprotocol, await ws.recv()
    sub, info = run(go())
    assert sub == chosen
    assert info.split("|") == [str(chosen) if chosen else "nil", "nil", "/info",
                               f"127.0.0.1:{srv.url.rsplit(':', 1)[1]}", "GET"]


def test_python_client_over_tls(ws_server, tls_certs):
    srv = ws_server("{ timeout = 5000, compression = true }", "tls", tls_certs.server_crt,
                    tls_certs.server_key)
    ctx = ssl.create_default_context(cafile=tls_certs.ca)
    port = srv.port()

    async def go():
        async with connect(f"wss://localhost:{port}/info", ssl=ctx) as ws:
            info = await ws.recv()
            await ws.send("over tls " * 1000)
            return info, await ws.recv()
    info, echo = run(go())
    assert info == f"nil|permessage-deflate|/info|localhost:{port}|GET"
    assert echo == "over tls " * 1000


# --------------------------------------------------------------------------
# raw sockets: bad handshakes, bad frames

def raw(port, data, timeout=5):
    """Sends data, reads until the server closes; returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def request(*lines, first="GET /chat HTTP/1.1", drop=()):
    hdrs = {"Host": "server.example.com", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}
    out = [first] + [f"{k}: {v}" for k, v in hdrs.items() if k not in drop] + list(lines)
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def test_good_handshake_bytes(ws_server):
    srv = ws_server()
    req = request(first="GET /x?y=1 HTTP/1.1", drop=("Upgrade", "Connection")) \
        .replace(b"\r\n\r\n", b"\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    s.settimeout(5)
    s.sendall(req + b"\x81\x82abcd" + bytes(c ^ k for c, k in zip(b"hi", b"ab")))
    got = b""
    while not got.endswith(b"hi"):
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    s.close()
    assert got == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + ACCEPT.encode() +
                   b"\r\n\r\n" + b"\x81\x02hi")          # the server's frame is unmasked


@pytest.mark.parametrize("req,status,err", [
    (request(drop=("Sec-WebSocket-Version",), *["Sec-WebSocket-Version: 8"]), 426,
     'bad "sec-websocket-version" request header: 8'),
    (request(drop=("Sec-WebSocket-Version",)), 426,
     'bad "sec-websocket-version" request header: nil'),
    (request(drop=("Sec-WebSocket-Key",)), 400, 'bad "sec-websocket-key" request header: nil'),
    (request(drop=("Sec-WebSocket-Key",), *["Sec-WebSocket-Key: c2hvcnQ="]), 400,
     'bad "sec-websocket-key" request header: c2hvcnQ='),
    (request("Sec-WebSocket-Key: " + KEY), 400,          # two keys
     f'bad "sec-websocket-key" request header: {KEY}, {KEY}'),
    (request(first="POST /chat HTTP/1.1"), 400, "bad method: POST (GET expected)"),
    (request(first="GET /chat HTTP/1.0"), 400, "bad HTTP version: 1.0 (1.1 expected)"),
    (request(drop=("Upgrade",)), 426, 'bad "upgrade" request header: nil'),
    (request(drop=("Upgrade",), *["Upgrade: h2c"]), 426, 'bad "upgrade" request header: h2c'),
    (request(drop=("Connection",), *["Connection: keep-alive"]), 400,
     'bad "connection" request header: keep-alive'),
    (request(drop=("Host",)), 400, 'missing "host" request header'),
    (b"HELLO\r\n\r\n", 400, 'bad request line: "HELLO"'),
    (request("X-Folded: a", " continued"), 400, 'bad request header field: " continued"'),
    (request("X-Big: " + "x" * 20000), 431, "request header too large"),
    (request(*[f"X-{i}: {i}" for i in range(100)]), 431, "too many request header fields"),
])
def test_bad_handshakes(ws_server, req, status, err):
    srv = ws_server()
    resp = raw(srv.port(), req).decode()
    head, _, body = resp.partition("\r\n\r\n")
    lines = head.split("\r\n")
    reasons = {400: "Bad Request", 426: "Upgrade Required", 431: "Request Header Fields Too Large"}
    assert lines[0] == f"HTTP/1.1 {status} {reasons[status]}"
    assert body == err + "\n"
    assert f"Content-Length: {len(body)}" in lines
    if status == 426:
        assert "Sec-WebSocket-Version: 13" in lines and "Upgrade: websocket" in lines
    else:
        assert "Connection: close" in lines and not any("Sec-WebSocket" in x for x in lines)
    srv.wait_for("REJECT")
    assert f"REJECT {status} {err}" in srv.out.decode()


def test_python_client_sees_the_426(ws_server):
    srv = ws_server()

    async def go():
        # websockets sends Sec-WebSocket-Version: 13; break it on the way with a bad header
        with pytest.raises(websockets.InvalidStatusCode) as e:
            async with connect(srv.url + "/", extra_headers={"Sec-WebSocket-Version": "7"}):
                pass
        return e.value.status_code
    assert run(go()) == 426


def test_request_header_timeout(ws_server):
    srv = ws_server("{ timeout = 300 }")
    t0 = time.monotonic()
    assert raw(srv.port(), b"GET / HTTP/1.1\r\nHost: x\r\n") == b""    # no answer, closed
    assert time.monotonic() - t0 < 3
    srv.wait_for("REJECT")
    assert "REJECT nil failed to receive request header: timeout" in srv.out.decode()


def upgraded(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    s.sendall(request())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk
        got += chunk
    assert got.startswith(b"HTTP/1.1 101 ")
    return s, got[got.index(b"\r\n\r\n") + 4:]


def read_to_eof(s, got=b""):
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk


def masked(opcode, payload, fin=True):
    key = b"\x11\x22\x33\x44"
    n = len(payload)
    b1 = (0x80 if fin else 0) | opcode
    if n <= 125:
        head = struct.pack("!BB", b1, 0x80 | n)
    elif n <= 0xffff:
        head = struct.pack("!BBH", b1, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b1, 0x80 | 127, n)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


@pytest.mark.parametrize("wire,err,code", [
    (b"\x81\x05hello", "frame unmasked", 1002),                     # unmasked client frame
    (masked(0x2, b"x" * 2000), "exceeding max payload len", 1009),
    (masked(0x1, b"\xc3"), "invalid UTF-8 text", 1007),
    (masked(0x3, b"x"), "bad opcode: 3", 1002),
    (masked(0x0, b"x"), "unexpected continuation frame", 1002),
    (masked(0x9, b"x", fin=False), "bad fragmented control frame", 1002),
])
def test_bad_client_frames(ws_server, wire, err, code):
    srv = ws_server("{ timeout = 5000, max_payload_len = 1000 }")
    s, rest = upgraded(srv.port())
    s.sendall(wire)
    got = read_to_eof(s, rest)
    s.close()
    assert got == b"\x88\x02" + struct.pack("!H", code)       # a close frame, unmasked, then EOF
    srv.wait_for("ERR")
    assert f"ERR {err}" in srv.out.decode()


def test_oversized_message_closes_python_client_with_1009(ws_server):
    srv = ws_server("{ timeout = 5000, max_payload_len = 1000 }")

    async def go():
        async with connect(srv.url + "/echo", compression=None) as ws:
            await ws.send("y" * 1000)
            assert await ws.recv() == "y" * 1000
            await ws.send("x" * 2000)
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
            return e.value.rcvd.code
    assert run(go()) == 1009
    srv.wait_for("ERR")
    assert "ERR exceeding max payload len" in srv.out.decode()


def test_close_waits_for_the_peer_a_bounded_time(ws_server):
    srv = ws_server("{ timeout = 5000, close_timeout = 300 }")
    s = socket.create_connection(("127.0.0.1", srv.port()), timeout=5)
    s.settimeout(5)
    s.sendall(request(first="GET /close HTTP/1.1"))
    t0 = time.monotonic()
    got = read_to_eof(s)         # we never answer the close frame
    s.close()
    assert got.endswith(b"\r\n\r\n\x88\x0c\x0f\xa2server bye")
    assert 0.2 < time.monotonic() - t0 < 3
    srv.wait_for("PEER_CLOSED")
    assert "CLOSED 1" in srv.out.decode()


def test_send_masked_option(ws_server):
    srv = ws_server("{ timeout = 5000, send_masked = true }")
    s, rest = upgraded(srv.port())
    s.sendall(masked(0x1, b"hi"))
    got = rest
    while len(got) < 8:
        got += s.recv(4096)
    s.close()
    assert got[:2] == b"\x81\x82"                     # the mask bit is set
    assert bytes(c ^ got[2 + i % 4] for i, c in enumerate(got[6:8])) == b"hi"


# --------------------------------------------------------------------------
# our client against our server (one process)

OURS = PRELUDE + WS_PRELUDE + r'''
local cosocket = require "cosocket"
local server = require "resty.websocket.server"
local handled = 0
local function handler(sock)
  local ws, err = server:new{ sock = sock, timeout = 5000, protocols = { "chat" },
                              compression = true, max_payload_len = 2 * 1024 * 1024 }
  if not ws then return end     -- a client that gave up during the TLS handshake
  handled = handled + 1
  while true do
    local data, typ, err = ws:recv_message()
    if not data then return end
    if typ == "close" then ws:close() return end
    ws:send_binary(ws.request.uri .. " " .. data)
  end
end
'''


def test_our_client_and_server_ws_unix_and_pool(run_lua_ok, tmp_path):
    out = run_lua_ok(OURS + r'''
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = handler })
local usrv = assert(cosocket.listen{ path = "@SOCK@", handler = handler })
local url = "ws://127.0.0.1:" .. srv:port()
local ws, ok, err, hdr = connect(url .. "/a?b", { protocols = { "x", "chat" }, compression = true })
P(ok, err, ws.protocol, hdr:match("Extensions: ([^\r]*)"))
P(ws:send_text(string.rep("z", 100000)))
local data, typ = ws:recv_frame()
P(#data, typ, data:sub(1, 8))
P(ws:send_close(1000, "done"))
P(ws:recv_frame())
for i = 1, 3 do
  local ws, ok, err, hdr = connect(url .. "/pool")
  P(ok, err, ws:get_reused_times(), hdr ~= nil)
  ws:send_text("round " .. i)
  P(ws:recv_frame())
  P(ws:set_keepalive(10000, 4))
end
local ws, ok, err = connect("ws://unix:@SOCK@:/over/unix")
P(ok, err)
ws:send_text("u")
P(ws:recv_frame())
P(ws:close())
P(handled)
srv:close() usrv:close()
'''.replace("@SOCK@", str(tmp_path / "ws.sock")))
    lines = out.splitlines()
    assert lines[0] == "1|nil|chat|permessage-deflate"
    n, err = lines[1].split("|")
    assert int(n) < 1000 and err == "nil"                    # 100000 "z" compressed
    assert lines[2:] == [
        "100005|binary|/a?b zzz", "12|nil", "|close|1000",      # recv_message echoes the code
        "1|nil|0|true", "/pool round 1|binary|nil", "1",
        "1|nil|1|false", "/pool round 2|binary|nil", "1",
        "1|nil|2|false", "/pool round 3|binary|nil", "1",
        "1|nil", "/over/unix u|binary|nil", "1", "3"]


def test_our_client_and_server_wss(run_lua_ok, tls_certs):
    out = run_lua_ok(OURS + r'''
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = handler,
                                    ssl = { cert = arg[1], key = arg[2] } })
local url = "wss://127.0.0.1:" .. srv:port()
for i = 1, 3 do
  local ws, ok, err, hdr = connect(url .. "/tls", { server_name = "localhost" })
  P(ok, err, ws:get_reused_times(), hdr ~= nil)
  ws:send_text("round " .. i)
  P(ws:recv_frame())
  P(ws:set_keepalive(10000, 4))
end
-- a ws:// connect to the same address must not take the pooled TLS connection
local ws, ok, err = connect("ws://127.0.0.1:" .. srv:port() .. "/plain")
P(ok, err, ws:get_reused_times())
-- nor a wss:// connect that verifies another name, or does not verify
local ws, ok, err = connect(url .. "/tls", { server_name = "example.com" })
P(ok, err)
local ws, ok, err = connect(url .. "/tls", { server_name = "localhost", ssl_verify = false })
P(ok, err, ws:get_reused_times())
ws:close()
-- verification failures
local ws, ok, err = connect(url .. "/tls")          -- 127.0.0.1 is in the certificate
P(ok, err)
ws:close()
srv:close()
''', tls_certs.server_crt, tls_certs.server_key, flags=["--ssl-trusted-certificate", tls_certs.ca])
    lines = out.splitlines()
    assert lines[:9] == ["1|nil|0|true", "/tls round 1|binary|nil", "1",
                         "1|nil|1|false", "/tls round 2|binary|nil", "1",
                         "1|nil|2|false", "/tls round 3|binary|nil", "1"]
    assert lines[9].startswith("nil|failed to receive response header: ")   # a TLS server
    assert lines[10] == "nil|ssl handshake failed: certificate host mismatch"
    assert lines[11] == "1|nil|0"
    assert lines[12] == "1|nil"


# --------------------------------------------------------------------------
# our wss:// client against python3-websockets over TLS

@pytest.fixture
def tls_peer(tls_certs):
    peers = []

    def start(*args):
        p = Peer("--cert", tls_certs.server_crt, "--key", tls_certs.server_key, *args)
        p.url = p.url.replace("ws://", "wss://")
        peers.append(p)
        return p
    yield start
    for p in peers:
        p.stop()


def test_wss_client_against_python_tls_server(run_lua_ok, tls_certs, tls_peer):
    p = tls_peer()
    code = PRELUDE + WS_PRELUDE + r'''
local ws, ok, err, hdr = connect("@URL@/echo", { server_name = "localhost", compression = true,
                                                 protocols = { "chat" } })
P(ok, err, ws.protocol, hdr and hdr:match("Extensions: (permessage%-deflate)"))
if ok then
  P(ws:send_text(string.rep("secret ", 1000)) < 1000)
  local data, typ = ws:recv_frame()
  P(data == string.rep("secret ", 1000), typ)
  P(ws:close())
end
'''.replace("@URL@", p.url)
    trust = ["--ssl-trusted-certificate", tls_certs.ca]
    assert run_lua_ok(code, flags=trust).splitlines() == [
        "1|nil|chat|permessage-deflate", "true", "true|text", "1"]
    # no trusted CA: the system store does not know the test CA
    assert run_lua_ok(code).splitlines() == [
        "nil|ssl handshake failed: 20: unable to get local issuer certificate|nil|nil"]
    # explicitly unverified
    unverified = code.replace('server_name = "localhost"', "ssl_verify = false")
    assert run_lua_ok(unverified).splitlines()[0] == "1|nil|chat|permessage-deflate"
    # the wrong name
    wrong = code.replace('server_name = "localhost"', 'server_name = "example.com"')
    assert run_lua_ok(wrong, flags=trust).splitlines() == [
        "nil|ssl handshake failed: certificate host mismatch|nil|nil"]


def test_wss_client_certificates(run_lua_ok, tls_certs, tls_peer):
    p = tls_peer("--client-ca", tls_certs.ca)
    out = run_lua_ok(PRELUDE + WS_PRELUDE + r'''
local function readf(p) local f = assert(io.open(p)); local d = f:read("*a"); f:close(); return d end
local cert, key = readf(arg[1]), readf(arg[2])
local ws, ok, err = connect("@URL@/peercert", { client_cert = cert, client_priv_key = key })
P(ok, err)
P(ws:recv_frame())
ws:close()
local ssl = require "ngx.ssl"
local ws, ok, err = connect("@URL@/peercert", { client_cert = assert(ssl.parse_pem_cert(cert)),
                            client_priv_key = assert(ssl.parse_pem_priv_key(key)) })
P(ok, err)
P(ws:recv_frame())
ws:close()
local ws, ok, err = connect("@URL@/peercert")
P(ok, err ~= nil)
ngx.say(err)
local ws, ok, err = connect("@URL@/peercert", { client_cert = cert })
P(ok, err)
'''.replace("@URL@", p.url), tls_certs.client_crt, tls_certs.client_key,
        flags=["--ssl-trusted-certificate", tls_certs.ca])
    lines = out.splitlines()
    assert lines[:4] == ["1|nil", "cosocket test client|text|nil", "1|nil",
                         "cosocket test client|text|nil"]
    # without a certificate: TLS 1.3 finishes the client's handshake; the server (asyncio)
    # drops the connection instead of answering
    assert lines[4] == "nil|true"
    assert lines[5].startswith("failed to receive response header: "), lines[5]
    assert lines[6] == ("nil|failed to set TLS client certificate: client certificate must be "
                        "supplied with corresponding private key")


def test_read_request_then_reject_or_accept(run_lua_ok):
    # the two-step use: read the request, look at it, turn it down or hand it to new()
    out = run_lua_ok(PRELUDE + WS_PRELUDE + r'''
local cosocket = require "cosocket"
local server = require "resty.websocket.server"
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  sock:settimeout(5000)
  local req, err, status = server.read_request(sock)
  if not req then return server.reject(sock, status or 400, err) end
  if req.headers.origin ~= "http://good.test" then
    return server.reject(sock, 403, "origin not allowed: " .. tostring(req.headers.origin))
  end
  local ws = assert(server:new{ sock = sock, request = req,
                                response_headers = { "X-One: 1", ["X-Two"] = "2" } })
  ws:send_text(req.method .. " " .. req.uri .. " " .. req.version .. " " .. req.line)
  ws:recv_message()
end })
local url = "ws://127.0.0.1:" .. srv:port() .. "/r?q"
local ws, ok, err = connect(url, { origin = "http://evil.test" })
P(ok, err)
local ws, ok, err, hdr = connect(url, { origin = "http://good.test" })
P(ok, err, hdr:match("X%-One: 1\r\n") ~= nil, hdr:match("\r\nX%-Two: 2") ~= nil)
P(ws:recv_frame())
ws:close()
-- a request given as ngx.req.get_headers would: any case, repeated fields as arrays
local s = ngx.socket.tcp()
local srv2 = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  local ws, err = server:new{ sock = sock, request = { line = "GET /x HTTP/1.1", headers = {
    Host = "h", Upgrade = "websocket", Connection = { "keep-alive", "Upgrade" },
    ["Sec-WebSocket-Version"] = "13", ["Sec-WebSocket-Key"] = "@KEY@" } } }
  P("new", ws ~= nil, err, ws and ws.request.uri)
end })
local srv3 = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  P("new3", server:new{ sock = sock, request = { line = "nonsense", headers = {} } })
end })
local s3 = ngx.socket.tcp()
assert(s3:connect("127.0.0.1", srv3:port()))
s3:settimeout(5000)
P((s3:receive("*l")))
assert(s:connect("127.0.0.1", srv2:port()))
s:settimeout(5000)
P((s:receive("*l")))
-- argument errors
PC(function() return server:new() end)
PC(function() return server:new{} end)
PC(function() return server:new{ sock = s, compression = { server_max_window_bits = 8 } } end)
PC(function() return server:new{ sock = s, protocols = 42 } end)
srv:close() srv2:close() srv3:close()
'''.replace("@KEY@", KEY))
    lines = out.splitlines()
    assert lines[:3] == [
        "nil|bad HTTP response status line: HTTP/1.1 403 Forbidden",
        "1|nil|true|true",
        "GET /r?q 1.1 GET /r?q HTTP/1.1|text|nil"]
    # the handlers' lines and the main thread's interleave
    assert sorted(lines[3:7]) == sorted([
        "new|true|nil|/x", "HTTP/1.1 101 Switching Protocols",
        'new3|nil|bad request line: "nonsense"|400', "HTTP/1.1 400 Bad Request"])
    assert lines[7:] == [
        "err|bad argument #1 opts: table expected (opts.sock is the accepted socket), got nil",
        "err|bad argument #1 opts.sock: the accepted socket expected, got nil",
        "err|bad argument #1 opts.compression.server_max_window_bits: 9 to 15 expected",
        "err|bad argument #1 opts.protocols: string, table or function expected"]
