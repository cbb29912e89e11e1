"""resty-cli's request-less context: ngx.get_phase(), ngx.ctx per request, the request and
response APIs that exist but are disabled, the status constants, ngx.config and
ngx.worker.pids, ngx.req.start_time, and the libraries OpenResty users require without
thinking (cjson, resty.lrucache from Debian's packages, found with no flags).

Values marked "checked against resty-cli" came from /work/shared/tools/resty-ref (OpenResty's
resty-cli on Debian's nginx + ngx_lua 0.10.23 + lua-resty-core 0.1.25), the same script run
on both; print() there joins its arguments without tabs, so the scripts use ngx.say.
"""
import os
import signal
import subprocess
import time


def lines(out):
    return out.splitlines()


def test_phase_is_timer_everywhere(run_lua_ok):
    # checked against resty-cli: the main chunk runs in a timer, and so do its light threads,
    # the timers and theirs; a cosocket.listen handler is request-less too
    out = run_lua_ok(r'''
local cosocket = require "cosocket"
ngx.say("main ", ngx.get_phase())
local t = ngx.thread.spawn(function() ngx.sleep(0.001) return ngx.get_phase() end)
ngx.say("thread ", select(2, ngx.thread.wait(t)))
ngx.timer.at(0, function()
  local t2 = ngx.thread.spawn(function() return ngx.get_phase() end)
  ngx.say("timer ", ngx.get_phase(), " its thread ", select(2, ngx.thread.wait(t2)))
end)
ngx.sleep(0.01)
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  sock:send(ngx.get_phase() .. "\n")
end })
local c = ngx.socket.tcp()
assert(c:connect("127.0.0.1", srv:port()))
ngx.say("handler ", c:receive())
srv:close()
''')
    assert lines(out) == ["main timer", "thread timer", "timer timer its thread timer",
                          "handler timer"]


def test_ctx_per_request(run_lua_ok):
    # checked against resty-cli: one table for the main chunk and its light threads (and
    # coroutines), a fresh one for each timer shared with its own threads; ngx.ctx can be
    # replaced by a table, not by anything else
    out = run_lua_ok(r'''
ngx.ctx.who = "main"
local t = ngx.thread.spawn(function() ngx.sleep(0.01) return ngx.ctx.who, ngx.get_phase() end)
ngx.say("thread: ", select(2, ngx.thread.wait(t)))
ngx.timer.at(0, function()
  ngx.say("timer sees: ", tostring(ngx.ctx.who), " ", ngx.get_phase())
  ngx.ctx.who = "timer"
  local t2 = ngx.thread.spawn(function() return ngx.ctx.who, ngx.get_phase() end)
  ngx.say("timer thread: ", select(2, ngx.thread.wait(t2)))
end)
ngx.sleep(0.05)
ngx.say("main after: ", ngx.ctx.who)
local old = ngx.ctx
ngx.ctx = {who = "replaced"}
ngx.say("replaced: ", ngx.ctx.who, " ", old ~= ngx.ctx)
local ok, err = pcall(function() ngx.ctx = 1 end)
ngx.say("bad ctx: ", ok, " ", (err:gsub("^.-:%d+: ", "")))
local co = coroutine.wrap(function() return ngx.ctx.who end)
ngx.say("coroutine: ", co())
''')
    assert lines(out) == [
        "thread: maintimer",
        "timer sees: nil timer",
        "timer thread: timertimer",
        "main after: main",
        "replaced: replaced true",
        "bad ctx: false ctx should be a table while getting a number",
        "coroutine: replaced",
    ]


def test_ctx_of_a_listen_handler_is_its_own(run_lua_ok):
    # each connection is a request: its handler and the threads it spawns share one ctx
    out = run_lua_ok(r'''
local cosocket = require "cosocket"
ngx.ctx.who = "main"
local n = 0
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  n = n + 1
  local seen = tostring(ngx.ctx.who)
  ngx.ctx.who = "conn" .. n
  local t = ngx.thread.spawn(function() return ngx.ctx.who end)
  local _, inner = ngx.thread.wait(t)
  sock:send(seen .. " " .. inner .. "\n")
end })
for i = 1, 2 do
  local c = ngx.socket.tcp()
  assert(c:connect("127.0.0.1", srv:port()))
  ngx.say(c:receive())
  c:close()
end
ngx.say("main ", ngx.ctx.who)
srv:close()
''')
    assert lines(out) == ["nil conn1", "nil conn2", "main main"]


def test_ctx_is_freed_when_its_request_ends(run_lua_ok):
    # 20000 timers each put 1 KB in their ngx.ctx: once they are done, the tables go
    out = run_lua_ok(r'''
collectgarbage() collectgarbage()
local base = collectgarbage("count")
local done = 0
for i = 1, 20 do
  for j = 1, 1000 do
    ngx.timer.at(0, function()
      ngx.ctx.data = string.rep("x", 1024) .. i .. ":" .. j
      local t = ngx.thread.spawn(function() return #ngx.ctx.data end)
      ngx.thread.wait(t)
      done = done + 1
    end)
  end
  ngx.sleep(0.02)
end
while done < 20000 do ngx.sleep(0.01) end
collectgarbage() collectgarbage()
local grown = collectgarbage("count") - base
ngx.say(done, " ", grown < 4000 and "freed" or ("kept " .. grown .. " KB"))
''', timeout=60)
    assert lines(out) == ["20000 freed"]


def test_ctx_outlives_the_main_chunk_for_its_threads(run_lua_ok):
    # the request ends with its last light thread, not with the main chunk
    out = run_lua_ok(r'''
ngx.ctx.v = "kept"
ngx.thread.spawn(function()
  ngx.sleep(0.05)
  collectgarbage() collectgarbage()
  ngx.say("thread ", ngx.ctx.v)
end)
''')
    assert lines(out) == ["thread kept"]


def test_ctx_lasts_the_repl_session(run_lua):
    r = run_lua(flags=["-i"], stdin="ngx.ctx.x = 41\nngx.say(ngx.ctx.x + 1)\n", timeout=20)
    assert r.rc == 0, r.describe()
    assert "42" in lines(r.out)


DISABLED = r'''
local function T(name, f)
  local ok, err = pcall(f)
  ngx.say(name, " => ", tostring(ok), " | ", tostring(err))
end
T("req.get_headers", function() return ngx.req.get_headers() end)
T("req.get_method", function() return ngx.req.get_method() end)
T("req.get_uri_args", function() return ngx.req.get_uri_args() end)
T("req.get_post_args", function() return ngx.req.get_post_args() end)
T("req.http_version", function() return ngx.req.http_version() end)
T("req.raw_header", function() return ngx.req.raw_header() end)
T("req.read_body", function() return ngx.req.read_body() end)
T("req.get_body_data", function() return ngx.req.get_body_data() end)
T("req.get_body_file", function() return ngx.req.get_body_file() end)
T("req.set_header", function() return ngx.req.set_header("a", "b") end)
T("req.clear_header", function() return ngx.req.clear_header("a") end)
T("req.set_method", function() return ngx.req.set_method(ngx.HTTP_GET) end)
T("req.set_uri", function() return ngx.req.set_uri("/") end)
T("req.set_uri_args", function() return ngx.req.set_uri_args("a=1") end)
T("req.set_body_data", function() return ngx.req.set_body_data("x") end)
T("req.set_body_file", function() return ngx.req.set_body_file("/x") end)
T("req.init_body", function() return ngx.req.init_body() end)
T("req.append_body", function() return ngx.req.append_body("x") end)
T("req.finish_body", function() return ngx.req.finish_body() end)
T("req.discard_body", function() return ngx.req.discard_body() end)
T("req.socket", function() return ngx.req.socket() end)
T("resp.get_headers", function() return ngx.resp.get_headers() end)
T("location.capture", function() return ngx.location.capture("/") end)
T("location.capture_multi", function() return ngx.location.capture_multi({{"/"}}) end)
T("exec", function() return ngx.exec("/") end)
T("redirect", function() return ngx.redirect("/") end)
T("send_headers", function() return ngx.send_headers() end)
T("on_abort", function() return ngx.on_abort(function() end) end)
T("eof", function() return ngx.eof() end)
T("run_worker_thread", function() return select(2, ngx.run_worker_thread("a", "b", "c")) end)
'''

# checked against resty-cli, line for line
DISABLED_EXPECTED = [
    "req.get_headers => false | API disabled in the current context",
    "req.get_method => false | API disabled in the current context",
    "req.get_uri_args => false | API disabled in the current context",
    "req.get_post_args => false | API disabled in the current context",
    "req.http_version => false | API disabled in the current context",
    "req.raw_header => false | API disabled in the current context",
    "req.read_body => false | API disabled in the context of ngx.timer",
    "req.get_body_data => false | API disabled in the current context",
    "req.get_body_file => false | API disabled in the current context",
    "req.set_header => false | API disabled in the current context",
    "req.clear_header => false | API disabled in the current context",
    "req.set_method => false | API disabled in the current context",
    "req.set_uri => false | API disabled in the current context",
    "req.set_uri_args => false | API disabled in the current context",
    "req.set_body_data => false | API disabled in the current context",
    "req.set_body_file => false | API disabled in the current context",
    "req.init_body => false | API disabled in the current context",
    "req.append_body => false | API disabled in the current context",
    "req.finish_body => false | API disabled in the current context",
    "req.discard_body => false | API disabled in the current context",
    "req.socket => false | API disabled in the context of ngx.timer",
    "resp.get_headers => false | API disabled in the current context",
    "location.capture => false | API disabled in the context of ngx.timer",
    "location.capture_multi => false | API disabled in the context of ngx.timer",
    "exec => false | API disabled in the context of ngx.timer",
    "redirect => false | API disabled in the context of ngx.timer",
    "send_headers => false | API disabled in the context of ngx.timer",
    "on_abort => false | API disabled in the context of ngx.timer",
    "eof => true | true",
    "run_worker_thread => true | thread pool a not found",
]


def test_request_apis_are_disabled_as_in_resty_cli(run_lua_ok):
    assert lines(run_lua_ok(DISABLED)) == DISABLED_EXPECTED


def test_request_apis_are_disabled_in_timers_and_handlers_too(run_lua_ok):
    out = run_lua_ok(r'''
local cosocket = require "cosocket"
local probe = assert(loadstring(...))
ngx.timer.at(0, function() ngx.say("-- timer") probe() end)
ngx.sleep(0.01)
local srv = assert(cosocket.listen{ host = "127.0.0.1", port = 0, handler = function(sock)
  ngx.say("-- handler") probe() sock:send("done\n")
end })
local c = ngx.socket.tcp()
assert(c:connect("127.0.0.1", srv:port()))
assert(c:receive() == "done")
srv:close()
''', DISABLED)
    assert lines(out) == ["-- timer"] + DISABLED_EXPECTED + ["-- handler"] + DISABLED_EXPECTED


def test_request_fields_raise_at_the_caller(run_lua):
    # checked against resty-cli: reading (or writing) ngx.var.*, ngx.header.*, ngx.status,
    # ngx.arg, ngx.headers_sent, ngx.is_subrequest, ngx.req.is_internal() raises where the
    # script does it; a script that does not catch it fails with that position
    r = run_lua(r'''
local function T(name, f)
  local ok, err = pcall(f)
  ngx.say(name, " => ", tostring(ok), " | ", tostring(err))
end
T("var.read", function() return ngx.var.uri end)
T("var.write", function() ngx.var.uri = "/" end)
T("header.read", function() return ngx.header["Content-Type"] end)
T("header.write", function() ngx.header["X-A"] = "1" end)
T("status.read", function() return ngx.status end)
T("status.write", function() ngx.status = 200 end)
T("arg.read", function() return ngx.arg[1] end)
T("arg.write", function() ngx.arg[1] = "x" end)
T("headers_sent", function() return ngx.headers_sent end)
T("is_subrequest", function() return ngx.is_subrequest end)
T("is_internal", function() local v = ngx.req.is_internal() return v end)
ngx.myfield = 7
ngx.say("own fields ", ngx.myfield, " ", tostring(ngx.nosuchfield))
local x = ngx.var.host
''')
    assert r.rc == 1, r.describe()
    got = lines(r.out)
    cur, timer = "API disabled in the current context", "API disabled in the context of ngx.timer"
    expected = [("var.read", 6, cur), ("var.write", 7, cur), ("header.read", 8, cur),
                ("header.write", 9, cur), ("status.read", 10, cur), ("status.write", 11, cur),
                ("arg.read", 12, cur), ("arg.write", 13, timer), ("headers_sent", 14, cur),
                ("is_subrequest", 15, cur), ("is_internal", 16, cur)]
    assert len(got) == len(expected) + 1, got
    for line, (name, lineno, msg) in zip(got, expected):
        assert line.startswith(name + " => false | "), line
        assert line.endswith(f".lua:{lineno}: {msg}"), line
    assert got[-1] == "own fields 7 nil"
    assert ".lua:19: API disabled in the current context" in r.err, r.err


def test_constants(run_lua_ok):
    # checked against resty-cli: every numeric field of ngx, with its value
    out = run_lua_ok(r'''
local ks = {}
for k, v in pairs(ngx) do if type(v) == "number" then ks[#ks+1] = k end end
table.sort(ks)
for _, k in ipairs(ks) do ngx.print(k, "=", ngx[k], ";") end
''')
    assert out == (
        "AGAIN=-2;ALERT=2;CRIT=3;DEBUG=8;DECLINED=-5;DONE=-4;EMERG=1;ERR=4;ERROR=-1;"
        "HTTP_ACCEPTED=202;HTTP_BAD_GATEWAY=502;HTTP_BAD_REQUEST=400;HTTP_CLOSE=444;"
        "HTTP_CONFLICT=409;HTTP_CONTINUE=100;HTTP_COPY=128;HTTP_CREATED=201;HTTP_DELETE=32;"
        "HTTP_FORBIDDEN=403;HTTP_GATEWAY_TIMEOUT=504;HTTP_GET=2;HTTP_GONE=410;HTTP_HEAD=4;"
        "HTTP_ILLEGAL=451;HTTP_INSUFFICIENT_STORAGE=507;HTTP_INTERNAL_SERVER_ERROR=500;"
        "HTTP_LOCK=4096;HTTP_METHOD_NOT_IMPLEMENTED=501;HTTP_MKCOL=64;HTTP_MOVE=256;"
        "HTTP_MOVED_PERMANENTLY=301;HTTP_MOVED_TEMPORARILY=302;HTTP_NOT_ACCEPTABLE=406;"
        "HTTP_NOT_ALLOWED=405;HTTP_NOT_FOUND=404;HTTP_NOT_IMPLEMENTED=501;"
        "HTTP_NOT_MODIFIED=304;HTTP_NO_CONTENT=204;HTTP_OK=200;HTTP_OPTIONS=512;"
        "HTTP_PARTIAL_CONTENT=206;HTTP_PATCH=16384;HTTP_PAYMENT_REQUIRED=402;"
        "HTTP_PERMANENT_REDIRECT=308;HTTP_POST=8;HTTP_PROPFIND=1024;HTTP_PROPPATCH=2048;"
        "HTTP_PUT=16;HTTP_REQUEST_TIMEOUT=408;HTTP_SEE_OTHER=303;HTTP_SERVICE_UNAVAILABLE=503;"
        "HTTP_SPECIAL_RESPONSE=300;HTTP_SWITCHING_PROTOCOLS=101;HTTP_TEMPORARY_REDIRECT=307;"
        "HTTP_TOO_MANY_REQUESTS=429;HTTP_TRACE=32768;HTTP_UNAUTHORIZED=401;HTTP_UNLOCK=8192;"
        "HTTP_UPGRADE_REQUIRED=426;HTTP_VERSION_NOT_SUPPORTED=505;INFO=7;NOTICE=6;OK=0;"
        "STDERR=0;WARN=5;")


# Every ngx.* name resty-cli has (walked two levels deep under resty-ref), minus its own
# wrappers (ngx.orig_print, orig_say, orig_exit) and lua-resty-core's internals
# (ngx._phase_ctx, ngx.get_raw_phase: issue 17's FFI ABI), with its type.
RESTY_CLI_NAMES = """
arg table config table config.debug boolean config.is_console boolean
config.nginx_configure function config.nginx_version number config.ngx_lua_version number
config.prefix function config.subsystem string cookie_time function crc32_long function
crc32_short function decode_args function decode_base64 function encode_args function
encode_base64 function eof function escape_uri function exec function exit function
flush function get_phase function header table hmac_sha1 function http_time function
localtime function location table location.capture function location.capture_multi function
log function md5 function md5_bin function now function null userdata on_abort function
parse_http_time function print function quote_sql_str function re table re.find function
re.gmatch function re.gsub function re.match function re.sub function redirect function
req table req.append_body function req.clear_header function req.discard_body function
req.finish_body function req.get_body_data function req.get_body_file function
req.get_headers function req.get_method function req.get_post_args function
req.get_uri_args function req.http_version function req.init_body function
req.is_internal function req.raw_header function req.read_body function
req.set_body_data function req.set_body_file function req.set_header function
req.set_method function req.set_uri function req.set_uri_args function req.socket function
req.start_time function resp table resp.get_headers function run_worker_thread function
say function send_headers function sha1_bin function sleep function socket table
socket.connect function socket.stream function socket.tcp function socket.udp function
thread table thread.kill function thread.spawn function thread.wait function time function
timer table timer.at function timer.every function timer.pending_count function
timer.running_count function today function unescape_uri function update_time function
utctime function var table worker table worker.count function worker.exiting function
worker.id function worker.pid function worker.pids function
"""


def test_every_resty_cli_name_exists(run_lua_ok):
    words = RESTY_CLI_NAMES.split()
    want = dict(zip(words[0::2], words[1::2]))
    script = "local want = {\n" + "".join(
        f'  {{"{n}", "{t}"}},\n' for n, t in sorted(want.items())) + "}\n" + r'''
local missing = {}
for _, w in ipairs(want) do
  local v = ngx
  for part in w[1]:gmatch("[^.]+") do v = v[part] end
  if type(v) ~= w[2] then missing[#missing+1] = w[1] .. " is " .. type(v) end
end
ngx.say(#want, " names, ", #missing, " wrong: ", table.concat(missing, ", "))
'''
    out = run_lua_ok(script)
    assert lines(out) == [f"{len(want)} names, 0 wrong: "]


def test_config_values(run_lua_ok):
    # checked against resty-cli: 10023, nginx 1.22.1, "http", a console; debug is the
    # build's (Debian's nginx is a debug build: true there, false here)
    out = run_lua_ok(r'''
ngx.say(ngx.config.ngx_lua_version, " ", ngx.config.nginx_version, " ",
        ngx.config.subsystem, " ", tostring(ngx.config.is_console), " ", tostring(ngx.config.debug))
''')
    assert lines(out) == ["10023 1022001 http true false"]


def test_req_start_time_is_the_request_start(run_lua_ok):
    # resty-cli answers 0 (its fake request has no start); here each request says when it
    # began: the main chunk at start-up, a timer when it fired
    out = run_lua_ok(r'''
local t0 = ngx.req.start_time()
ngx.say(math.abs(t0 - ngx.now()) < 1)
ngx.sleep(0.2)
ngx.say(ngx.req.start_time() == t0)
ngx.timer.at(0.1, function()
  ngx.say(ngx.req.start_time() - t0 >= 0.25)
end)
''')
    assert lines(out) == ["true", "true", "true"]


def test_worker_pids(run_lua, tmp_path):
    # without -w: the process itself; with -w 3, each worker sees the three pids, itself among them
    r = run_lua(r'''
local pids = ngx.worker.pids()
ngx.say(#pids, " ", pids[1] == ngx.worker.pid())
''')
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["1 true"]
    # (each waits until the master has started all three, then stays 2 s so that no
    # worker has left while another reads)
    r = run_lua(r'''
local pids
for i = 1, 500 do
  pids = ngx.worker.pids()
  if #pids == 3 then break end
  ngx.sleep(0.01)
end
local mine = false
for _, p in ipairs(pids) do mine = mine or p == ngx.worker.pid() end
ngx.say(ngx.worker.id(), " ", #pids, " ", mine, " ", table.concat(pids, ","))
io.stdout:flush()
ngx.sleep(2)
''', flags=["-w", "3"], timeout=30)
    assert r.rc == 0, r.describe()
    got = sorted(lines(r.out))
    assert [g.split()[:3] for g in got] == [["0", "3", "true"], ["1", "3", "true"],
                                             ["2", "3", "true"]], got
    assert len({g.split()[3] for g in got}) == 1, got   # all saw the same list


def test_cjson_and_lrucache_are_found_without_flags(run_lua_ok):
    # Debian's lua-cjson and lua-resty-lrucache (installed by scripts/bootstrap), as
    # OpenResty bundles them
    out = run_lua_ok(r'''
local cjson = require "cjson"
ngx.say(cjson.encode({ list = { 1, 2, 3 } }))
ngx.say(cjson.decode('{"a":[true,null]}').a[2] == cjson.null)
local safe = require "cjson.safe"
local v, err = safe.decode("{bad")
ngx.say(tostring(v), " ", err)
local lrucache = require "resty.lrucache"
local c = assert(lrucache.new(2))
c:set("a", 1) c:set("b", 2) c:set("c", 3)
ngx.say(tostring(c:get("a")), " ", (c:get("b")), " ", (c:get("c")))
local pureffi = require "resty.lrucache.pureffi"
local p = assert(pureffi.new(10))
p:set("k", "v", 0.05)
ngx.say((p:get("k")))
ngx.sleep(0.1)
ngx.update_time()
ngx.say(tostring((p:get("k"))))
''')
    assert lines(out) == ['{"list":[1,2,3]}', "true",
                          "nil Expected object key string but found invalid token at character 2",
                          "nil 2 3", "v", "nil"]


def test_libraries_found_where_they_are_usually_installed(run_lua, tmp_path):
    # opm --cwd's ./resty_modules/lualib, the LuaRocks user tree, and -I as resty-cli has
    # it (?.lua, ?/init.lua, ?.ljbc, and ?.so in package.cpath)
    (tmp_path / "resty_modules" / "lualib" / "opmlib").mkdir(parents=True)
    (tmp_path / "resty_modules" / "lualib" / "opmlib" / "init.lua").write_text('return "from opm"\n')
    rocks = tmp_path / "home" / ".luarocks" / "share" / "lua" / "5.1"
    rocks.mkdir(parents=True)
    (rocks / "rocklib.lua").write_text('return "from luarocks"\n')
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "inclib.lua").write_text('return "from -I"\n')
    r = run_lua(r'''
ngx.say(require "opmlib", ", ", require "rocklib", ", ", require "inclib")
ngx.say(package.cpath:find(arg[1] .. "/?.so;", 1, true) == 1)
''', str(inc), flags=["-I", str(inc)], cwd=str(tmp_path), env={"HOME": str(tmp_path / "home")})
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["from opm, from luarocks, from -I", "true"]


def test_resty_core_shdict_is_the_ffi_binding_of_the_dicts(run_lua):
    # lua-resty-lock starts with require "resty.core.shdict": here that is cosocket's own
    # binding of the dicts through lua-nginx-module's FFI ABI (lua/resty_core_shdict.lua),
    # loaded at start-up as OpenResty loads resty.core: the methods lua-resty-core binds are
    # Lua functions, the ones lua-nginx-module keeps in C (lists, get_keys) C functions
    r = run_lua(r'''
local m = require "resty.core.shdict"
ngx.say(type(m), " ", m.version, " ", package.loaded["resty.core.shdict"] == m)
local d = ngx.shared.d
ngx.say(d:set("k", 1), " ", d:incr("k", 41), " ", d:add("k", 2))
local what = {}
for _, name in ipairs{"get", "set", "incr", "ttl", "capacity", "lpush", "llen", "get_keys"} do
  what[#what + 1] = name .. "=" .. debug.getinfo(d[name], "S").what
end
ngx.say(table.concat(what, " "))
''', flags=["--shdict", "d 1m"])
    assert r.rc == 0, r.describe()
    assert lines(r.out) == ["table 0.1.25 true", "true 42 falseexistsfalse",
                            "get=Lua set=Lua incr=Lua ttl=Lua capacity=Lua lpush=C llen=C get_keys=C"]
