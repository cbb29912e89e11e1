"""The ngx table outside sockets and threads: ngx.config, ngx.worker, get_phase, ngx.null,
ngx.say/print/flush, time functions, table.new/clear, ngx.re and the encoding/hashing helpers
(smoke tests through the binary), LuaJIT FFI reaching libcrypto, require "cosocket".

Values marked "checked against OpenResty 0.10.23" came from real nginx + ngx_lua.
"""


def lines(out):
    return out.splitlines()


def test_config(run_lua_ok):
    # checked against OpenResty 0.10.23 (types; ngx_lua_version 10023 there)
    out = run_lua_ok(r'''
ngx.say(ngx.config.ngx_lua_version >= 10000, " ", math.type and "" or "", type(ngx.config.ngx_lua_version))
ngx.say(ngx.config.subsystem, " ", type(ngx.config.nginx_version), " ", type(ngx.config.debug))
ngx.say(type(ngx.config.prefix()), " ", type(ngx.config.nginx_configure()))
''')
    assert lines(out) == ["true number", "http number boolean", "string string"]


def test_worker(run_lua_ok):
    # checked against OpenResty 0.10.23 (pid is a number, id 0 for the only worker, not exiting)
    out = run_lua_ok(r'''
local f = io.open("/proc/self/stat")
local pid = tonumber(f:read("*a"):match("^(%d+)"))
f:close()
ngx.say(ngx.worker.pid() == pid, " ", ngx.worker.id(), " ", ngx.worker.count(), " ", tostring(ngx.worker.exiting()))
''')
    assert lines(out) == ["true 0 1 false"]


def test_get_phase(run_lua):
    # checked against resty-cli: a script runs in a timer, so the main chunk, its light
    # threads and the timers all say "timer" (tests/test_context.py has the rest)
    r = run_lua(r'''
ngx.say(ngx.get_phase())
local t = ngx.thread.spawn(function() ngx.sleep(0.001) return ngx.get_phase() end)
ngx.say(select(2, ngx.thread.wait(t)))
ngx.timer.at(0, function() ngx.say("timer: ", ngx.get_phase()) end)
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["timer", "timer", "timer: timer"]


def test_ngx_null(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(ngx.null == nil, " ", type(ngx.null), " ", tostring(ngx.null))
ngx.say(ngx.null)
ngx.say({ngx.null, "x"})
''')
    assert lines(out) == ["false userdata userdata: NULL", "null", "nullx"]


def test_say_values(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say({"a", {"b", 1}, 2.5, true})
ngx.say(nil)
ngx.say(true, false, 1, 2.5, "s")
ngx.say(pcall(ngx.say, {a=1}))
ngx.say(pcall(ngx.say, function() end))
ngx.print("p1", {"p2"}, nil, "\n")
ngx.say(1e15, " ", 0.1, " ", 1/0, " ", -1/0, " ", 2^53, " ", 123456789012)
ngx.say()
ngx.say("")
ngx.print()
ngx.say(ngx.say("x"))
ngx.say(ngx.print(""))
ngx.say(ngx.flush())
ngx.say(ngx.flush(true))
''')
    assert out == "\n".join([
        "ab12.5true",
        "nil",
        "truefalse12.5s",
        "falsebad argument #1 to '?' (non-array table found)",
        "falsebad argument #1 to '?' (string, number, boolean, nil, ngx.null, or array table expected, "
        "but got function)",
        "p1p2nil",
        "1e+15 0.1 inf -inf 9.007199254741e+15 123456789012",
        "",
        "",
        "x",
        "1",
        "1",
        "1",
        "1",
    ]) + "\n"


def test_say_print_flush_ordering(run_lua):
    r = run_lua(r'''
ngx.say("a")
print("b", 1)
ngx.print("c")
ngx.flush()
ngx.say("d")
ngx.log(ngx.ERR, "between")
ngx.thread.spawn(function() ngx.say("e") ngx.sleep(0.01) ngx.say("g") end)
ngx.say("f")
''')
    assert r.rc == 0, r.describe()
    assert r.out == "a\nb\t1\ncd\ne\nf\ng\n"
    assert "between" in r.err


def test_time_functions(run_lua_ok):
    # checked against OpenResty 0.10.23 (types and formats)
    out = run_lua_ok(r'''
ngx.say(type(ngx.now()), " ", type(ngx.time()), " ", math.floor(ngx.time()) == ngx.time(), " ", ngx.update_time())
ngx.say(math.abs(ngx.now() - ngx.time()) < 2, " ", math.abs(ngx.time() - os.time()) < 2)
ngx.say(ngx.today():match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil, " ",
        ngx.localtime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil, " ",
        ngx.utctime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil)
ngx.say(ngx.http_time(0), " | ", ngx.cookie_time(0), " | ", ngx.parse_http_time("Thu, 01 Jan 1970 00:00:10 GMT"))
''')
    assert lines(out) == ["number number true ", "true true", "true true true",
                          "Thu, 01 Jan 1970 00:00:00 GMT | Thu, 01-Jan-70 00:00:00 GMT | 10"]


def test_now_advances_across_waits(run_lua_ok):
    # checked against OpenResty 0.10.23: the cached time is updated when a light thread resumes
    # after waiting, without calling ngx.update_time()
    out = run_lua_ok(r'''
local function check(what, f)
  local t0 = ngx.now()
  f()
  local dt = ngx.now() - t0
  ngx.say(what, " ", dt >= 0.04 and dt < 0.5)
end
check("sleep", function() ngx.sleep(0.05) end)
check("thread wait", function()
  ngx.thread.wait(ngx.thread.spawn(function() ngx.sleep(0.05) end))
end)
check("semaphore timeout", function() require("ngx.semaphore").new(0):wait(0.05) end)
''')
    assert lines(out) == ["sleep true", "thread wait true", "semaphore timeout true"]


def test_table_new_and_clear(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local new_tab = require "table.new"
local clear_tab = require "table.clear"
local t = new_tab(10, 5)
ngx.say(type(t), " ", #t, " ", next(t))
local tc = {1, 2, 3, a = 1}
clear_tab(tc)
ngx.say(next(tc), " ", #tc)
local base = require "resty.core.base"
ngx.say(type(base.new_tab), " ", type(base.clear_tab))
''')
    assert lines(out) == ["table 0 nil", "nil 0", "function function"]


def test_math_random_is_seeded_per_process(run_lua):
    # cosocket seeds math.random from the OS (a plain OpenResty worker is not seeded)
    code = 'print(math.random(1, 2^31 - 1), math.random(1, 2^31 - 1), math.random())'
    a, b = run_lua(code), run_lua(code)
    assert a.rc == 0 and b.rc == 0, (a.describe(), b.describe())
    assert a.out != b.out, a.out


def test_encoding_and_hashing(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(ngx.encode_base64("hello world!?"), " ", ngx.decode_base64("aGVsbG8="), " ", ngx.decode_base64("@@"))
ngx.say(ngx.encode_base64("ab", true), " [", ngx.encode_base64(""), "]")
ngx.say(ngx.md5("abc"), " ", #ngx.md5_bin("abc"), " ", ngx.crc32_short("hello"), " ", ngx.crc32_long("hello"))
ngx.say(#ngx.sha1_bin("x"), " ", ngx.encode_base64(ngx.hmac_sha1("key", "msg")))
ngx.say(ngx.encode_args({a = 1}), " ", ngx.encode_args({b = {"x", "y"}}), " ", ngx.encode_args({c = true, d = false}), " ", ngx.encode_args({["a b"] = "c&d"}))
local args = ngx.decode_args("a=1&b=2&b=3&c&d=%20x+y")
ngx.say(args.a, " ", type(args.b), " ", args.b[1], args.b[2], " ", args.c, " [", args.d, "]")
ngx.say(ngx.escape_uri("a b/c?d=\195\169"), " ", ngx.unescape_uri("a%20b+c"))
local long = ngx.escape_uri(string.rep("a b", 300))  -- 1500 bytes: past the stack buffer
ngx.say(#long, " ", long:sub(1, 9), " ", long == string.rep("a%20b", 300))
ngx.say(ngx.quote_sql_str("it's \"x\"\n"))
''')
    assert lines(out) == [
        "aGVsbG8gd29ybGQhPw== hello nil",
        "YWI []",
        "900150983cd24fb0d6963f7d28e17f72 16 907060870 907060870",
        "20 ECkAtyt78QMe7Ha0gEtmBSN2iWs=",
        "a=1 b=x&b=y c a%20b=c%26d",
        "1 table 23 true [ x y]",
        "a%20b%2Fc%3Fd%3D%C3%A9 a b c",
        "1500 a%20ba%20 true",
        "'it\\'s \\\"x\\\"\\n'",
    ]


def test_ngx_re_smoke(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
local m = ngx.re.match("hello 123 world 456", "(\\d+) (\\w+)")
ngx.say(m[0], " ", m[1], " ", m[2])
local m2 = ngx.re.match("key=val", "(?<k>\\w+)=(?<v>\\w+)")
ngx.say(m2.k, " ", m2.v, " ", m2[1])
ngx.say(ngx.re.match("abc", "x"))
ngx.say(ngx.re.find("hello 123", "\\d+"))
ngx.say(ngx.re.find("hello 123", "(\\d)(\\d)", "jo", nil, 2))
ngx.say(ngx.re.gsub("a1b22c333", "\\d+", "<$0>"))
ngx.say(ngx.re.gsub("hello world", "(\\w+)", function(m) return m[1]:upper() end))
ngx.say(ngx.re.sub("aaa", "a", "b"))
ngx.say(ngx.re.match("ABC", "abc", "i")[0])
local acc = {}
for mm in ngx.re.gmatch("a1b2c3", "[a-z](\\d)") do acc[#acc+1] = mm[1] end
ngx.say(table.concat(acc))
local m3, err = ngx.re.match("x", "(")
ngx.say(tostring(m3), " ", type(err))
''')
    assert lines(out) == [
        "123 world 123 world",
        "key val key",
        "nil",
        "79",
        "88",
        "a<1>b<22>c<333>3",
        "HELLO WORLD2",
        "baa1",
        "ABC",
        "123",
        "nil string",
    ]


def test_ffi_reaches_libcrypto(run_lua_ok):
    out = run_lua_ok(r'''
local ffi = require "ffi"
ffi.cdef "unsigned char *MD5(const unsigned char *d, size_t n, unsigned char *md);"
local buf = ffi.new("unsigned char[16]")
ffi.C.MD5("abc", 3, buf)
local s = ffi.string(buf, 16)
ngx.say(s == ngx.md5_bin("abc"), " ", (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
''')
    assert lines(out) == ["true 900150983cd24fb0d6963f7d28e17f72"]


def test_require_cosocket_table(run_lua_ok):
    out = run_lua_ok(r'''
local cs = require "cosocket"
local keys = {"tcp", "udp", "connect", "sleep", "spawn", "wait", "kill", "timer_at", "timer_every",
              "semaphore", "null", "now", "time", "update_time", "log", "say", "exit", "exiting", "re"}
local missing = {}
for _, k in ipairs(keys) do if cs[k] == nil then missing[#missing+1] = k end end
ngx.say("missing: ", table.concat(missing, ","))
ngx.say(cs.tcp == ngx.socket.tcp, cs.sleep == ngx.sleep, cs.spawn == ngx.thread.spawn,
        cs.timer_at == ngx.timer.at, cs.semaphore == require "ngx.semaphore", cs.null == ngx.null)
ngx.say(require("cosocket") == cs)
-- usable without the ngx global
local t = cs.spawn(function(a) cs.sleep(0.001) return a * 2 end, 21)
ngx.say(cs.wait(t))
local s = cs.semaphore.new(0)
cs.timer_at(0.001, function() s:post() end)
ngx.say(s:wait(1))
''')
    out = lines(out)
    assert out[:4] == ["missing: ", "truetruetruetruetruetrue", "true", "true42"]
    assert out[4].startswith("true")
