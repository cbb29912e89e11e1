"""Debian's lua-resty-core 0.1.25 modules that bind lua-nginx-module 0.10.23's FFI ABI
(the ngx_http_lua_ffi_* functions the cosocket executable exports), required unmodified in
a cosocket script: each replaces cosocket's Lua C API ngx.* functions with its FFI ones, and
they must answer as before, and as resty-cli does.

Each *_EXPECTED was recorded from /work/shared/tools/resty-ref (resty-cli on Debian's nginx +
ngx_lua 0.10.23 + lua-resty-core 0.1.25, where the modules are loaded already) running the
same script. Error cases (wrong types) are part of each script.
"""
import re
import signal
import subprocess


def check_ffi(run_lua_ok, script, expected, functions, c_api=True):
    """Runs script on cosocket and checks its output against resty-cli's; then checks that
    each of `functions` (names in ngx) is the module's Lua function on the FFI, no longer
    cosocket's C function. With c_api, the script without its first line (the require) must
    give the same answers from cosocket's own C functions, which call the same C++; c_api may
    instead be a tuple of prefixes of the lines left out there (the FFI's own error strings)."""
    names = ", ".join(f'"{f}"' for f in functions)
    probe = f"""
for _, name in ipairs{{{names}}} do
    local f = ngx
    for part in name:gmatch("[^.]+") do f = f[part] end
    ngx.say("binding ", name, " ", debug.getinfo(f, "S").what)
end
"""
    out = run_lua_ok(script.lstrip("\n") + probe).splitlines()  # line numbers as recorded
    n = len(functions)
    assert out[:-n] == expected.strip("\n").splitlines()
    assert out[-n:] == [f"binding {f} Lua" for f in functions]
    if c_api:
        first, rest = script.lstrip("\n").split("\n", 1)
        assert first.startswith("require ")
        out = run_lua_ok("\n" + rest + probe).splitlines()  # the same line numbers
        skip = c_api if isinstance(c_api, tuple) else ()
        kept = [l for l in expected.strip("\n").splitlines() if not l.startswith(skip)]
        assert [l for l in out[:-n] if not l.startswith(skip)] == kept
        assert out[-n:] == [f"binding {f} C" for f in functions]


BASE64_SCRIPT = r"""
require "resty.core.base64"
local function show(...) ngx.say(table.concat({...}, " ")) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
for _, s in ipairs{"", "f", "fo", "foo", "foob", "\0\255\254", string.rep("x", 5000)} do
    local e = ngx.encode_base64(s)
    show("enc", #e, e:sub(1, 40), ngx.encode_base64(s, true):sub(1, 40), tostring(ngx.decode_base64(e) == s))
end
show("coerce", ngx.encode_base64(nil), ngx.encode_base64(123), ngx.encode_base64(false), ngx.encode_base64(1.5, false))
for _, s in ipairs{"Zg", "Zg==", "Zm8=", "Zm9v", "a", "Zm9vY", "Zm 9v", "-_", "+/+/", "", "Zg=x", "====", string.rep("QUJD", 2000)} do
    local d = ngx.decode_base64(s)
    show("dec [" .. s:sub(1, 12) .. "]", d and ("[" .. hex(d:sub(1, 6)) .. "] " .. #d) or "nil")
end
for _, v in ipairs{{1}, 0, "x"} do
    show("nopad", type(v), select(2, pcall(ngx.encode_base64, "a", v)))
end
show("dec err", select(2, pcall(ngx.decode_base64, 12)), select(2, pcall(ngx.decode_base64, nil)))
"""

BASE64_EXPECTED = r"""
enc 0   true
enc 4 Zg== Zg true
enc 4 Zm8= Zm8 true
enc 4 Zm9v Zm9v true
enc 8 Zm9vYg== Zm9vYg true
enc 4 AP/+ AP/+ true
enc 6668 eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4 eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4 true
coerce  MTIz  MS41
dec [Zg] [66] 1
dec [Zg==] [66] 1
dec [Zm8=] [666f] 2
dec [Zm9v] [666f6f] 3
dec [a] nil
dec [Zm9vY] nil
dec [Zm 9v] nil
dec [-_] nil
dec [+/+/] [fbffbf] 3
dec [] [] 0
dec [Zg=x] [66] 1
dec [====] [] 0
dec [QUJDQUJDQUJD] [414243414243] 6000
nopad table bad no_padding: boolean expected, got table
nopad number bad no_padding: boolean expected, got number
nopad string bad no_padding: boolean expected, got string
dec err string argument only string argument only
"""


def test_base64(run_lua_ok):
    check_ffi(run_lua_ok, BASE64_SCRIPT, BASE64_EXPECTED, ["encode_base64", "decode_base64"])


URI_SCRIPT = r"""
require "resty.core.uri"
local function show(...) ngx.say(table.concat({...}, " ")) end
local function bytes(s) return (s:gsub("[\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)) end
local function where(err) return (tostring(err):gsub("^[^:]*:(%d+):", "line %1:")) end
local all = {}
for b = 0, 255 do all[#all + 1] = string.char(b) end
all = table.concat(all)
for t = 0, 6 do
    local e = ngx.escape_uri(all, t)
    show("type", t, #e, ngx.md5(e), tostring(ngx.unescape_uri(e) == all))
end
show("default", ngx.escape_uri("a b/c?d=é&f+g~h"), ngx.escape_uri("plain-_.~"))
show("coerce", ngx.escape_uri(nil), ngx.escape_uri(12.5), ngx.escape_uri(false), ngx.escape_uri(true))
local long = string.rep("a b", 3000)
show("long", #ngx.escape_uri(long), #ngx.unescape_uri(ngx.escape_uri(long)))
for _, s in ipairs{"a%20b", "a+b", "%zz", "%4", "%41%42%", "%E9t%C3%A9", "%%41", "100%", "%2B%2b", ""} do
    show("unescape [" .. s .. "] [" .. bytes(ngx.unescape_uri(s)) .. "]")
end
show("unescape coerce [" .. ngx.unescape_uri(nil) .. "] [" .. ngx.unescape_uri(42) .. "]")
for _, t in ipairs{"2", -1, 7, 2.5, {}} do
    local ok, err = pcall(ngx.escape_uri, "a b", t)
    show("type", type(t), tostring(ok), where(err))
end
local function f() return ngx.escape_uri("x", "bad") end
show("level", where(select(2, pcall(f))))
"""

URI_EXPECTED = r"""
type 0 586 1d688796f03aa9cc23fc0359bf76088e false
type 1 588 d770cd0e13ffdbb5f8ba168170cf1410 true
type 2 626 80d78be650d282b47f2ea9990b7c1495 true
type 3 588 d44353243c2d594c137e2779a62d1340 false
type 4 584 b599a072ac0f56ce6b47be1e3a9b77c9 false
type 5 324 3bacc57611338c015419b610e98adbbc false
type 6 324 3bacc57611338c015419b610e98adbbc false
default a%20b%2Fc%3Fd%3D%C3%A9%26f%2Bg~h plain-_.~
coerce  12.5  true
long 15000 9000
unescape [a%20b] [a b]
unescape [a+b] [a b]
unescape [%zz] [%zz]
unescape [%4] [%4]
unescape [%41%42%] [AB%]
unescape [%E9t%C3%A9] [\xe9t\xc3\xa9]
unescape [%%41] [%A]
unescape [100%] [100%]
unescape [%2B%2b] [++]
unescape [] []
unescape coerce [] [42]
type string false line 21: "type" is not a number
type number false line 21: "type" -1 out of range
type number false line 21: "type" 7 out of range
type number true a%20b
type table false line 21: "type" is not a number
level line 25: "type" is not a number
"""


def test_uri(run_lua_ok):
    check_ffi(run_lua_ok, URI_SCRIPT, URI_EXPECTED, ["escape_uri", "unescape_uri"])


HASH_SCRIPT = r"""
require "resty.core.hash"
local function show(...) ngx.say(table.concat({...}, " ")) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local long = string.rep("0123456789", 1000)
for _, s in ipairs{"", "a", "abc", "hello world", "\0\255", long} do
    show("md5", #s, ngx.md5(s), hex(ngx.md5_bin(s)), hex(ngx.sha1_bin(s)),
         ngx.crc32_short(s), ngx.crc32_long(s))
end
show("coerce md5", ngx.md5(nil), ngx.md5(42), ngx.md5(false), ngx.md5(true), ngx.md5(1.5))
show("coerce bin", hex(ngx.md5_bin(nil)), hex(ngx.sha1_bin(42)), hex(ngx.sha1_bin(false)))
show("coerce crc", ngx.crc32_short(nil), ngx.crc32_long(42), ngx.crc32_short(false), ngx.crc32_long(true))
show("crc type", type(ngx.crc32_short("x")), math.type and math.type(ngx.crc32_long("x")) or "")
local t = setmetatable({}, {__tostring = function() return "T" end})
local bad = setmetatable({}, {__tostring = function() return {} end})
for _, f in ipairs{"md5", "md5_bin", "sha1_bin", "crc32_short", "crc32_long"} do
    local v = ngx[f](t)
    show("tostring", f, type(v) == "string" and hex(v) or tostring(v))
    local ok, err = pcall(ngx[f], bad)
    show("bad tostring", f, tostring(ok), tostring(err))
end
"""

HASH_EXPECTED = r"""
md5 0 d41d8cd98f00b204e9800998ecf8427e d41d8cd98f00b204e9800998ecf8427e da39a3ee5e6b4b0d3255bfef95601890afd80709 0 0
md5 1 0cc175b9c0f1b6a831c399e269772661 0cc175b9c0f1b6a831c399e269772661 86f7e437faa5a7fce15d1ddcb9eaeaea377667b8 3904355907 3904355907
md5 3 900150983cd24fb0d6963f7d28e17f72 900150983cd24fb0d6963f7d28e17f72 a9993e364706816aba3e25717850c26c9cd0d89d 891568578 891568578
md5 11 5eb63bbbe01eeed093cb22bb8f5acdc3 5eb63bbbe01eeed093cb22bb8f5acdc3 2aae6c35c94fcfb415dbe95f408b9ce91ee846ed 222957957 222957957
md5 2 d07d34efac6328007ad67c7e0a985e00 d07d34efac6328007ad67c7e0a985e00 aa3e5dcdd77b153f2e59bd0d8794fde33cb4e486 1826356594 1826356594
md5 10000 2bb571599a4180e1d542f76904adc3df 2bb571599a4180e1d542f76904adc3df 3150343bf25994d9a2c87daf6f592fae154499de 3184429911 3184429911
coerce md5 d41d8cd98f00b204e9800998ecf8427e a1d0c6e83f027327d8461063f4ac58a6 d41d8cd98f00b204e9800998ecf8427e b326b5062b2f0e69046810717534cb09 6008647277c4454cecd97d33c069f0ca
coerce bin d41d8cd98f00b204e9800998ecf8427e 92cfceb39d57d914ed8b14d0e37643de0797ae56 da39a3ee5e6b4b0d3255bfef95601890afd80709
coerce crc 0 841265288 0 4261170317
crc type number 
tostring md5 6239656365313863393530616662666136623066646266613466663733316433
bad tostring md5 false /usr/share/lua/5.1/resty/core/hash.lua:102: bad argument #1 to 'ngx_lua_ffi_md5' (cannot convert 'table' to 'const unsigned char *')
tostring md5_bin b9ece18c950afbfa6b0fdbfa4ff731d3
bad tostring md5_bin false /usr/share/lua/5.1/resty/core/hash.lua:86: bad argument #1 to 'ngx_lua_ffi_md5_bin' (cannot convert 'table' to 'const unsigned char *')
tostring sha1_bin c2c53d66948214258a26ca9ca845d7ac0c17f8e7
bad tostring sha1_bin false /usr/share/lua/5.1/resty/core/hash.lua:118: bad argument #1 to 'ngx_lua_ffi_sha1_bin' (cannot convert 'table' to 'const unsigned char *')
tostring crc32_short 3187964512
bad tostring crc32_short false bad argument #1 to '?' (cannot convert 'table' to 'const unsigned char *')
tostring crc32_long 3187964512
bad tostring crc32_long false bad argument #1 to '?' (cannot convert 'table' to 'const unsigned char *')
"""


def test_hash(run_lua_ok):
    check_ffi(run_lua_ok, HASH_SCRIPT, HASH_EXPECTED,
              ["md5", "md5_bin", "sha1_bin", "crc32_short", "crc32_long"],
              c_api=("bad tostring",))


# The clock's lines check what cannot be recorded (the time itself): the cached clock, its
# formats against os.date, the monotonic clock (lines "mono": resty.core.time's own, which the
# C API does not have), update_time.
TIME_SCRIPT = r"""
local rtime = require "resty.core.time"
local function show(...) ngx.say(table.concat({...}, " ")) end
for _, t in ipairs{0, 1, 86399.9, 1290079991, 2147483647, 2147483648, 4102444800, 253402300799, 253402300800, 1e15, -1, -1e10, 1e300, -0.5, 1.5e9 + 0.99} do
    show("t", string.format("%.17g", t), "[" .. ngx.http_time(t) .. "]", "[" .. ngx.cookie_time(t) .. "]")
end
for _, s in ipairs{"Thu, 18 Nov 2010 11:27:35 GMT", "Thursday, 18-Nov-10 11:27:35 GMT",
                   "Thu Nov 18 11:27:35 2010", "Thu Nov  8 11:27:35 2010", "Sun, 06 Nov 1994 08:49:37 GMT",
                   "Thu, 01 Jan 1970 00:00:00 GMT", "Wed, 31 Dec 1969 23:59:59 GMT",
                   "Thu, 31 Dec 1969 23:59:58 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
                   "Thu, 29 Feb 2001 00:00:00 GMT", "Tue, 29 Feb 2000 00:00:00 GMT",
                   "Thu, 18 Nov 2010 24:00:00 GMT", "Thu, 18 Xyz 2010 11:27:35 GMT", "", "garbage",
                   "Mon, 31-Dec-69 00:00:00 GMT", "Mon, 01-Jan-70 00:00:00 GMT"} do
    show("parse [" .. s .. "]", tostring(ngx.parse_http_time(s)))
end
for _, f in ipairs{"http_time", "cookie_time"} do
    for _, v in ipairs{"123", {}, true} do
        show("err", f, type(v), select(2, pcall(ngx[f], v)))
    end
    show("err", f, "nil", select(2, pcall(ngx[f])))
end
for _, v in ipairs{123, {}, true} do
    show("err parse_http_time", type(v), select(2, pcall(ngx.parse_http_time, v)))
end
-- the clock: cached between update_time calls, formats
local now, t = ngx.now(), ngx.time()
show("clock types", type(now), type(t), tostring(math.floor(now) == t), tostring(now >= 1.7e9))
show("now has ms", tostring(now * 1000 == math.floor(now * 1000 + 0.5)))
show("today", tostring(ngx.today():match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil), #ngx.today())
show("localtime", tostring(ngx.localtime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil))
show("utctime", tostring(ngx.utctime() == os.date("!%Y-%m-%d %H:%M:%S", ngx.time())))
show("localtime os", tostring(ngx.localtime() == os.date("%Y-%m-%d %H:%M:%S", ngx.time())))
show("today os", tostring(ngx.today() == os.date("%Y-%m-%d", ngx.time())))
local m1 = rtime and rtime.monotonic_msec()   -- resty.core.time's own: the C API has none
if rtime then
    show("mono", type(m1), tostring(m1 > 0), tostring(math.floor(m1) == m1),
         tostring(math.abs(rtime.monotonic_time() * 1000 - m1) < 1e-3 * m1))
end
local t0 = os.time()
while os.time() - t0 < 1.2 do end    -- busy wait: the cached clock stays
show("cached", tostring(ngx.now() == now))
if rtime then show("mono cached", tostring(rtime.monotonic_msec() == m1)) end
ngx.update_time()
show("updated", tostring(ngx.now() > now), tostring(ngx.time() >= t + 1))
if rtime then show("mono updated", tostring(rtime.monotonic_msec() > m1 + 500)) end
show("update returns", select("#", ngx.update_time()))
ngx.sleep(0.01)
show("after sleep", tostring(ngx.now() > now))
"""

TIME_EXPECTED = r"""
t 0 [Thu, 01 Jan 1970 00:00:00 GMT] [Thu, 01-Jan-70 00:00:00 GMT]
t 1 [Thu, 01 Jan 1970 00:00:01 GMT] [Thu, 01-Jan-70 00:00:01 GMT]
t 86399.899999999994 [Thu, 01 Jan 1970 23:59:59 GMT] [Thu, 01-Jan-70 23:59:59 GMT]
t 1290079991 [Thu, 18 Nov 2010 11:33:11 GMT] [Thu, 18-Nov-10 11:33:11 GMT]
t 2147483647 [Tue, 19 Jan 2038 03:14:07 GMT] [Tue, 19-Jan-2038 03:14:07 GMT]
t 2147483648 [Tue, 19 Jan 2038 03:14:08 GMT] [Tue, 19-Jan-2038 03:14:08 GMT]
t 4102444800 [Fri, 01 Jan 2100 00:00:00 GMT] [Fri, 01-Jan-2100 00:00:00 GMT]
t 253402300799 [Fri, 31 Dec 9999 23:59:59 GMT] [Fri, 31-Dec-9999 23:59:59 GMT]
t 253402300800 [Fri, 31 Dec 9999 23:59:59 GMT] [Fri, 31-Dec-9999 23:59:59 GMT]
t 1000000000000000 [Fri, 31 Dec 9999 23:59:59 GMT] [Fri, 31-Dec-9999 23:59:59 GMT]
t -1 [Thu, 01 Jan 1970 00:00:00 GMT] [Thu, 01-Jan-70 00:00:00 GMT]
t -10000000000 [Thu, 01 Jan 1970 00:00:00 GMT] [Thu, 01-Jan-70 00:00:00 GMT]
t 1.0000000000000001e+300 [Thu, 01 Jan 1970 00:00:00 GMT] [Thu, 01-Jan-70 00:00:00 GMT]
t -0.5 [Thu, 01 Jan 1970 00:00:00 GMT] [Thu, 01-Jan-70 00:00:00 GMT]
t 1500000000.99 [Fri, 14 Jul 2017 02:40:00 GMT] [Fri, 14-Jul-17 02:40:00 GMT]
parse [Thu, 18 Nov 2010 11:27:35 GMT] 1290079655
parse [Thursday, 18-Nov-10 11:27:35 GMT] 1290079655
parse [Thu Nov 18 11:27:35 2010] 1290079655
parse [Thu Nov  8 11:27:35 2010] 1289215655
parse [Sun, 06 Nov 1994 08:49:37 GMT] 784111777
parse [Thu, 01 Jan 1970 00:00:00 GMT] 0
parse [Wed, 31 Dec 1969 23:59:59 GMT] nil
parse [Thu, 31 Dec 1969 23:59:58 GMT] -2
parse [Fri, 31 Dec 9999 23:59:59 GMT] 253402300799
parse [Thu, 29 Feb 2001 00:00:00 GMT] nil
parse [Tue, 29 Feb 2000 00:00:00 GMT] 951782400
parse [Thu, 18 Nov 2010 24:00:00 GMT] nil
parse [Thu, 18 Xyz 2010 11:27:35 GMT] nil
parse [] nil
parse [garbage] nil
parse [Mon, 31-Dec-69 00:00:00 GMT] 3155673600
parse [Mon, 01-Jan-70 00:00:00 GMT] 0
err http_time string number argument only
err http_time table number argument only
err http_time boolean number argument only
err http_time nil number argument only
err cookie_time string number argument only
err cookie_time table number argument only
err cookie_time boolean number argument only
err cookie_time nil number argument only
err parse_http_time number string argument only
err parse_http_time table string argument only
err parse_http_time boolean string argument only
clock types number number true true
now has ms true
today true 10
localtime true
utctime true
localtime os true
today os true
mono number true true true
cached true
mono cached true
updated true true
mono updated true
update returns 0
after sleep true
"""


def test_time(run_lua_ok):
    check_ffi(run_lua_ok, TIME_SCRIPT, TIME_EXPECTED,
              ["now", "time", "update_time", "today", "localtime", "utctime", "cookie_time",
               "http_time", "parse_http_time"], c_api=False)
    # the C API gives the same answers
    first, rest = TIME_SCRIPT.lstrip("\n").split("\n", 1)
    assert first == 'local rtime = require "resty.core.time"'
    out = run_lua_ok("local rtime = nil\n" + rest).splitlines()
    assert out == [l for l in TIME_EXPECTED.strip("\n").splitlines() if not l.startswith("mono")]


WORKER_SCRIPT = r"""
require "resty.core.worker"
local function show(...) ngx.say(table.concat({...}, " ")) end
local w = ngx.worker
show("id", tostring(w.id()), math.type and "" or type(w.id()))
show("count", tostring(w.count()), type(w.count()))
show("exiting", tostring(w.exiting()), type(w.exiting()))
local pid = w.pid()
show("pid", type(pid), tostring(pid > 1))
local pids = w.pids()
show("pids", type(pids), #pids, tostring(pids[1] == pid))
local keys = {}
for k in pairs(w) do keys[#keys + 1] = k end
table.sort(keys)
show("fields", table.concat(keys, ","))
show("args", tostring(w.id(1, 2)), tostring(w.count("x")))
"""

WORKER_EXPECTED = r"""
id 0 number
count 1 number
exiting false boolean
pid number true
pids table 1 true
fields count,exiting,id,pid,pids
args 0 1
"""


def test_worker(run_lua_ok):
    check_ffi(run_lua_ok, WORKER_SCRIPT, WORKER_EXPECTED,
              ["worker.id", "worker.pid", "worker.pids", "worker.count", "worker.exiting"])


def test_worker_with_two_workers(run_lua_ok):
    # cosocket's -w N (resty-cli has no such flag): each worker its id, the count, both pids
    out = run_lua_ok(r"""
require "resty.core.worker"
local w = ngx.worker
for _ = 1, 100 do  -- until both are forked
    if #w.pids() == 2 then break end
    ngx.sleep(0.05)
end
local pids = w.pids()
local seen = false
for _, p in ipairs(pids) do if p == w.pid() then seen = true end end
ngx.say("worker ", w.id(), " of ", w.count(), " pids ", #pids, " self ", tostring(seen))
ngx.sleep(1)  -- still running while the other looks
""", flags=["-w", "2"])
    assert sorted(out.splitlines()) == ["worker 0 of 2 pids 2 self true",
                                        "worker 1 of 2 pids 2 self true"]


def test_worker_exiting(cosocket_bin, tmp_path):
    # SIGTERM: the pending timer runs premature, the worker exiting (resty-cli's own output is
    # lost by then, nginx has closed stdout: test_timers.py checks the C API's the same way)
    script = tmp_path / "exiting.lua"
    script.write_text(r"""
require "resty.core.worker"
ngx.timer.at(100, function(premature)
    ngx.say("premature ", tostring(premature), " exiting ", tostring(ngx.worker.exiting()))
end)
ngx.say("main exiting ", tostring(ngx.worker.exiting()))
ngx.flush()
""")
    p = subprocess.Popen([cosocket_bin, str(script)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "main exiting false\n"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0, err
    assert out.splitlines() == ["premature true exiting true"]


# Every light thread and timer carries its request as thread.exdata (base.get_request()), so
# resty.core.phase answers "timer" (0x0080) as under resty-cli, and resty.core.coroutine
# installs lua-nginx-module's coroutine.__* (cosocket's yielding versions): cosocket calls
# inside user coroutines still work. Recorded with resty-ref.
PHASE_SCRIPT = r"""
require "resty.core.phase"
require "resty.core.coroutine"
local base = require "resty.core.base"
ngx.say("phase ", ngx.get_phase(), " raw ", ngx.get_raw_phase(base.get_request()))
local t = ngx.thread.spawn(function() return ngx.get_phase() end)
ngx.say("thread ", select(2, ngx.thread.wait(t)))
local co = coroutine.create(function(a)
    ngx.sleep(0.001)
    local b = coroutine.yield(a + 1)
    ngx.sleep(0.001)
    return b * 2, ngx.get_phase()
end)
ngx.say("co ", select("#", coroutine.resume(co, 1)), " ", coroutine.status(co))
ngx.say("co ", table.concat({tostring(select(2, coroutine.resume(co, 5)))}, ","), " ", coroutine.status(co))
local w = coroutine.wrap(function() ngx.sleep(0.001) coroutine.yield("w1") return "w2" end)
ngx.say("wrap ", w(), " ", w())
ngx.timer.at(0, function(premature) ngx.say("timer ", ngx.get_phase(), " ", ngx.get_raw_phase(base.get_request())) end)
"""

PHASE_EXPECTED = """
phase timer raw 128
thread timer
co 2 suspended
co 10 dead
wrap w1 w2
timer timer 128
"""


def test_phase_and_coroutine(run_lua_ok):
    out = run_lua_ok(PHASE_SCRIPT.lstrip("\n"))
    assert out.splitlines() == PHASE_EXPECTED.strip("\n").splitlines()
    probe = run_lua_ok(r"""
require "resty.core.phase"
require "resty.core.coroutine"
for _, name in ipairs{"get_phase", "get_raw_phase"} do
    ngx.say(name, " ", debug.getinfo(ngx[name], "S").what)
end
ngx.say(coroutine.resume == coroutine.__resume, coroutine.__yield ~= nil)
""")
    assert probe.splitlines() == ["get_phase Lua", "get_raw_phase Lua", "falsetrue"]


PROCESS_SCRIPT = r"""
local process = require "ngx.process"
ngx.say("type ", process.type())
ngx.say("master ", type(process.get_master_pid()), " ", process.get_master_pid() == ngx.worker.pid())
ngx.say("agent ", process.enable_privileged_agent())
ngx.say("agent2 ", process.enable_privileged_agent(-1))
ngx.say("phase ", ngx.get_phase(), " raw ", ngx.get_raw_phase(require("resty.core.base").get_request()))
ngx.say("sge ", type(process.signal_graceful_exit))
"""


def test_process(run_lua_ok):
    # recorded with resty-ref: nginx there runs without a master (resty-cli's
    # master_process off), as cosocket without -w
    out = run_lua_ok(PROCESS_SCRIPT.lstrip("\n"))
    assert out.splitlines() == [
        "type single", "master number true",
        "agent nilAPI disabled in the current context",
        "agent2 nilAPI disabled in the current context",
        "phase timer raw 128", "sge function"]


def test_process_under_a_master(run_lua_ok):
    # -w N: nginx's "worker" type, the master's pid (the worker's parent)
    out = run_lua_ok(r"""
local process = require "ngx.process"
local ffi = require "ffi"
ffi.cdef "int getppid(void);"
ngx.say(process.type(), " ", process.get_master_pid() == ffi.C.getppid(),
        " ", process.get_master_pid() ~= ngx.worker.pid())
""", flags=["-w", "1"])
    assert out.splitlines() == ["worker true true"]


def test_process_signal_graceful_exit(run_lua_ok):
    # as SIGTERM (test_worker_exiting): on the next turn the pending timer runs premature and
    # the worker is exiting; the process ends when its threads have, status 0. resty-cli
    # stops at once there (nginx's exit closes the timer that runs the script).
    out = run_lua_ok(r"""
local process = require "ngx.process"
ngx.timer.at(10, function(p) ngx.say("timer premature ", p) end)
process.signal_graceful_exit()
ngx.say("after call ", ngx.worker.exiting())
ngx.sleep(0.01)
ngx.say("exiting ", ngx.worker.exiting())
""")
    assert out.splitlines() == ["after call false", "timer premature true", "exiting true"]


ERRLOG_SCRIPT = r"""
local errlog = require "ngx.errlog"
ngx.say("sys ", errlog.get_sys_filter_level())
ngx.say("set ", errlog.set_filter_level(ngx.WARN))
ngx.say("set nil ", errlog.set_filter_level())
ngx.say("logs ", errlog.get_logs())
ngx.say("raw ", pcall(errlog.raw_log, ngx.ERR, "hello raw"))
ngx.say("raw bad ", pcall(errlog.raw_log, 99, "x"))
ngx.say("raw bad ", pcall(errlog.raw_log, -1, "x"))
ngx.say("raw bad ", pcall(errlog.raw_log, "x", "x"))
ngx.say("raw bad ", pcall(errlog.raw_log, 1, 2))
"""


def test_errlog(cosocket_bin):
    # Recorded with resty-ref, except two things: Debian's nginx lacks OpenResty's capture
    # patch, so there set_filter_level and get_logs answer "missing the capture error log
    # patch for nginx"; OpenResty's nginx without the lua_capture_error_log directive answers
    # what cosocket does without --capture-error-log. And resty-cli's default log level is
    # warn (5), cosocket's notice (6): --errlog-level warn gives resty-cli's.
    for flags, sys in (([], "6"), (["--errlog-level", "warn"], "5")):
        p = subprocess.run([cosocket_bin, *flags, "-e", ERRLOG_SCRIPT], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        not_set = 'nildirective "lua_capture_error_log" is not set'
        assert p.stdout.splitlines() == [
            "sys " + sys, "set " + not_set, 'set nil nilmissing "level" argument',
            "logs " + not_set, "raw true",
            "raw bad falsebad log level", "raw bad falsebad log level",
            "raw bad falsebad argument #1 to 'raw_log' (must be a number)",
            "raw bad falsebad argument #2 to 'raw_log' (must be a string)"]
        # raw_log: the message as it is, no "[lua] file:line:" prefix
        assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#0: hello raw\n",
                            p.stderr), p.stderr


CAPTURE_SCRIPT = r"""
local errlog = require "ngx.errlog"
ngx.say("set ", errlog.set_filter_level(99))
ngx.say("empty ", #errlog.get_logs())
ngx.log(ngx.ERR, "first")
errlog.raw_log(ngx.WARN, "second raw")
ngx.say("set ", errlog.set_filter_level(ngx.ERR))
ngx.log(ngx.WARN, "not captured")
ngx.log(ngx.ERR, "third")
ngx.log(ngx.INFO, "below the log level: not logged, not captured")
local function show(logs)
    for i = 1, #logs, 3 do
        local line = logs[i + 2]
        ngx.say(logs[i], " ", math.abs(logs[i + 1] - ngx.now()) < 5, " ",
                line:match("^%d+/%d+/%d+ %d+:%d+:%d+ %[%a+%] %d+#0: (.*)$"))
    end
end
local logs = errlog.get_logs(2)
ngx.say("n ", #logs)
show(logs)
show(errlog.get_logs())
ngx.say("again ", #errlog.get_logs())
-- the buffer keeps the newest lines within its size (4k here)
errlog.set_filter_level(ngx.DEBUG)
for i = 1, 200 do ngx.log(ngx.ERR, ("%03d "):format(i), ("x"):rep(60)) end
local all = errlog.get_logs(1000)
local text = 0
for i = 3, #all, 3 do text = text + #all[i] end
ngx.say("kept ", #all / 3 < 200, " ", text <= 4096, " ", text > 3000, " last ",
        all[#all]:match("(%d%d%d) x+$"))
"""


def test_errlog_capture(cosocket_bin):
    # --capture-error-log: OpenResty's lua_capture_error_log (as its t/ tests use it)
    p = subprocess.run([cosocket_bin, "--capture-error-log", "4k", "-e", CAPTURE_SCRIPT],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "set nilbad log level: 99", "empty 0", "set true", "n 6",
        "4 true [lua] (command line):5: first", "5 true second raw",
        "4 true [lua] (command line):9: third", "again 0",
        "kept true true true last 200"]
    assert "not captured" in p.stderr  # still logged
    bad = subprocess.run([cosocket_bin, "--capture-error-log", "1k", "-e", ""],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--capture-error-log needs a size" in bad.stderr


def test_utils_str_replace_char(run_lua_ok):
    # recorded with resty-ref
    out = run_lua_ok(r'''
local utils = require "resty.core.utils"
ngx.say(utils.str_replace_char("a-b-c", "-", "_"), " ", utils.str_replace_char("abc", "-", "_"), " ",
        utils.str_replace_char("", "-", "_"), " ", #utils.str_replace_char("x\0y\0", "\0", "z"), " ",
        utils.str_replace_char("x\0y\0", "\0", "z"), " ",
        utils.str_replace_char(("ab"):rep(3000), "a", "b") == ("bb"):rep(3000))
''')
    assert out == "a_b_c abc  4 xzyz true\n"
