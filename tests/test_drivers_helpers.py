"""drivers/ (issue 10): the shared helpers resty.cosocket.bytes and resty.cosocket.driver on
their own. The drivers that use them are tested by their own files (test_redis*, test_memcached*,
test_websocket, test_dns_*, test_beanstalkd)."""
from helpers.socket_lua import lua


def test_bytes_round_trips_and_known_encodings(run_lua_ok):
    out = lua(run_lua_ok, r'''
local b = require "resty.cosocket.bytes"
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
P(hex(b.p16be(0x1234)), hex(b.p32be(0xdeadbeef)), hex(b.p64be(2^53 - 1)))
P(hex(b.p16le(0x1234)), hex(b.p24le(0x123456)), hex(b.p32le(0xdeadbeef)))
for _, n in ipairs({0, 1, 255, 256, 65535}) do
  assert(b.u16be(b.p16be(n), 1) == n and b.u16le(b.p16le(n), 1) == n)
end
for _, n in ipairs({0, 65536, 2^31, 2^32 - 1}) do
  assert(b.u32be(b.p32be(n), 1) == n and b.u32le(b.p32le(n), 1) == n)
end
for _, n in ipairs({0, 2^32, 2^53 - 1}) do assert(b.u64be(b.p64be(n), 1) == n) end
P(b.u24le("x\1\2\3", 2), b.u16be("\0\0\1\0", 3))
-- length-encoded integers and strings (MySQL)
for _, n in ipairs({0, 250, 251, 65535, 65536, 16777215, 16777216, 2^40}) do
  local s = b.p_lenenc(n)
  local v, nxt = b.lenenc(s, 1, #s)
  assert(v == n and nxt == #s + 1, n)
end
P(#b.p_lenenc(250), #b.p_lenenc(251), #b.p_lenenc(65536), #b.p_lenenc(2^24))
local s = b.p_lenenc_str("hello") .. "\251" .. b.p_lenenc_str("")
local v1, p1 = b.lenenc_str(s, 1, #s)
local v2, p2 = b.lenenc_str(s, p1, #s)
local v3, p3 = b.lenenc_str(s, p2, #s)
P(v1, v2, v3 == "", p3 == #s + 1)
P(b.lenenc("\252\1", 1, 2), b.lenenc("\255", 1, 1), b.lenenc_str("\5abc", 1, 4))
''')
    assert out == ["1234|deadbeef|001fffffffffffff", "3412|563412|efbeadde",
                   "197121|256", "1|3|4|9", "hello|false|true|true", "nil|nil|nil"]


def test_driver_errors_requests_and_lengths(run_lua_ok):
    out = lua(run_lua_ok, r'''
local d = require "resty.cosocket.driver"
P(d.fail("connect", "timeout"))
P(d.failed_to("read reply", nil))
P(d.excerpt("a\0b"), d.excerpt(string.rep("x", 50), 5))
Q(table.concat(d.push(d.line("put", 1, 0, 60, 3), "a\r\n", "\r\n")))
local req = d.push_line(d.line("use", "t"), "watch", "t")
P(#req, table.concat(req) == "use t\r\nwatch t\r\n")
P(d.parse_len("123"), d.parse_len("123", 100), d.parse_len("-1"), d.parse_len("1e3"),
  d.parse_len("1234567890123456"), d.parse_len(""))
P(d.is_word("abc"), d.is_word("a b"), d.is_word(""), d.is_word("a\0"))
PC(d.connect_args, 1)
local u, port, o = d.connect_args("unix:/x", { pool = "p" })
P(u, port, o.pool)
P(d.connect_args("h", "80"))
local o = d.pool_opts({ backlog = 3 }, "h", 1, "user", nil, 2)
P(o.pool, o.backlog, d.pool_opts(nil, "unix:/s", nil, "db").pool, d.pool_opts({ pool = "x" }, "h", 1, "u").pool)
''')
    assert out[0] == "nil|failed to connect: timeout"
    assert out[1] == "failed to read reply: nil"
    assert out[2] == '"a\\0b"|"xxxxx..."'
    assert out[3] == '"put 1 0 60 3\\013\\010a\\013\\010\\013\\010"'
    assert out[4] == "8|true"
    assert out[5] == "123|nil|nil|nil|nil|nil"
    assert out[6] == "true|false|false|false"
    assert out[7] == "err|bad argument #1 host: string expected, got number"
    assert out[8:] == ["true|nil|p", "false|80|nil", "h:1/user/2|3|unix:/s/db|x"]


def test_state_gate(run_lua_ok, echo_server):
    out = lua(run_lua_ok, r'''
local d = require "resty.cosocket.driver"
local obj = { sock = ngx.socket.tcp() }
P(d.ready(obj))
P(d.set_keepalive(obj))
P(d.connect(obj, "127.0.0.1", @PORT@), obj.state == d.IDLE, d.ready(obj) == obj.sock)
obj.state = d.SENT
P(d.ready(obj))
P(d.set_keepalive(obj))
obj.state = d.SUBSCRIBED
P(d.ready(obj))
obj.state = d.IDLE
P(d.set_keepalive(obj), obj.state)
P(d.connect(obj, "127.0.0.1", @PORT@), d.get_reused_times(obj.sock))
P(d.failed(obj, "failed to read reply: timeout"))
P(d.ready(obj))
P(d.set_keepalive(obj))
P(obj.sock:getfd())
P(d.close(obj), obj.state, d.ready(obj))
P(d.get_reused_times(nil), d.set_timeout({}), d.ready({}))
''', {"PORT": echo_server.port})
    assert out == [
        "nil|closed", "nil|closed", "1|true|true", "nil|busy: command sent",
        "nil|cannot be reused in the current connection state: command sent",
        "nil|busy: subscribed", "1|nil", "1|1",
        "nil|failed to read reply: timeout",
        "nil|connection closed after error: failed to read reply: timeout",
        "nil|connection closed after error: failed to read reply: timeout",
        "nil|closed", "nil|nil|nil|closed",
        "nil|nil|nil|not initialized"]


def test_line_reader_bounds_lines(run_lua_ok, fake_server):
    srv = fake_server([("reply", b"short\r\n" + b"y" * 10 + b"\r\n" + b"x" * 11 + b"\r\n"),
                       ("stall",)])
    out = lua(run_lua_ok, r'''
local d = require "resty.cosocket.driver"
local s = ngx.socket.tcp()
s:settimeout(500)
assert(s:connect("127.0.0.1", @PORT@))
local read = d.line_reader(s, 10)
P(read())
P(read())                    -- exactly the bound
P(read())                    -- one byte over: refused
''', {"PORT": srv.port})
    assert out == ["short", "yyyyyyyyyy", "nil|line too long|true"]
