"""The `cosocket` command line: how scripts are given, arguments, options, exit statuses,
error reports and logging (cosocket's own behaviour, see README "The `cosocket` command";
the ngx.log line format follows nginx's error log, checked against OpenResty 0.10.23)."""
import os
import re
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LUA_DIR = os.path.join(HERE, "lua", "core")


def lines(out):
    return out.splitlines()


# --------------------------------------------------------------------------
# giving the script

def test_e_code_with_args(run_lua):
    r = run_lua(flags=["-e", 'print(arg[0], arg[1], arg[2], select("#", ...), ...)', "x", "y z"])
    assert r.rc == 0, r.describe()
    assert r.out == "-e\tx\ty z\t2\tx\ty z\n"


def test_script_file_with_args(run_lua, tmp_path):
    script = tmp_path / "prog.lua"
    script.write_text('print(arg[0], #arg, arg[1], arg[2], arg[3], select("#", ...), ...)\n')
    r = run_lua(None, "a", "", "c d", file=script)
    assert r.rc == 0, r.describe()
    assert r.out == f"{script}\t3\ta\t\tc d\t3\ta\t\tc d\n"


def test_script_path_relative_to_cwd(run_lua, tmp_path):
    (tmp_path / "rel.lua").write_text('print(arg[0], ...)')
    r = run_lua(flags=["rel.lua", "1"], cwd=tmp_path)
    assert r.rc == 0, r.describe()
    assert r.out == "rel.lua\t1\n"


def test_options_after_the_script_are_script_args(run_lua, tmp_path):
    script = tmp_path / "s.lua"
    script.write_text('print(table.concat(arg, " "))')
    r = run_lua(None, "-e", "--version", "-h", file=script)
    assert r.rc == 0, r.describe()
    assert r.out == "-e --version -h\n"


def test_script_from_stdin(run_lua):
    r = run_lua(flags=["-", "a", "b"], stdin='ngx.sleep(0.001) print(arg[0], arg[1], arg[2], ...)')
    assert r.rc == 0, r.describe()
    assert r.out == "-\ta\tb\ta\tb\n"


def test_double_dash_ends_options(run_lua, tmp_path):
    script = tmp_path / "dd.lua"
    script.write_text('print(arg[0]:match("dd.lua$"), ...)')
    r = run_lua(flags=["--", str(script), "-x"])
    assert r.rc == 0, r.describe()
    assert r.out == "dd.lua\t-x\n"


def test_include_dir(run_lua, tmp_path):
    mods = tmp_path / "mods"
    (mods / "pkg").mkdir(parents=True)
    (mods / "clitestmod.lua").write_text('return { v = "from -I" }')
    (mods / "pkg" / "init.lua").write_text('return { v = "pkg init" }')
    r = run_lua('print(require("clitestmod").v, require("pkg").v)', flags=["-I", str(mods)])
    assert r.rc == 0, r.describe()
    assert r.out == "from -I\tpkg init\n"
    r2 = run_lua('print(pcall(require, "clitestmod"))')
    assert r2.rc == 0 and r2.out.startswith("false\tmodule 'clitestmod' not found"), r2.describe()


def test_include_dir_repeatable_and_first_wins(run_lua, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "which.lua").write_text('return "a"')
    (b / "which.lua").write_text('return "b"')
    (b / "onlyb.lua").write_text('return "only b"')
    r = run_lua('print(require "which", require "onlyb")', flags=["-I", str(a), "-I", str(b)])
    assert r.rc == 0, r.describe()
    assert r.out == "a\tonly b\n"


def test_include_dir_with_lua_core_module(run_lua, echo_server):
    r = run_lua('print(require("core_cosocket_module").echo)', echo_server.port, flags=["-I", LUA_DIR])
    assert r.rc == 0, r.describe()
    assert r.out == "module top level\n"


# --------------------------------------------------------------------------
# help, version, bad usage

def test_help(run_lua):
    for flag in ("-h", "--help"):
        r = run_lua(flags=[flag])
        assert r.rc == 0, r.describe()
        assert r.out.startswith("usage: cosocket"), r.out
        for opt in ("-e", "-I", "--log-level", "--shutdown-timeout", "--max-pending-timers", "--resolver"):
            assert opt in r.out
        assert r.err == ""


def test_version(run_lua):
    for flag in ("--version", "-v"):
        r = run_lua(flags=[flag])
        assert r.rc == 0, r.describe()
        assert re.match(r"cosocket \d+\.\d+\.\d+", r.out), r.out


def test_version_matches_ngx_config(run_lua):
    v = run_lua(flags=["--version"]).out.split()[1]
    r = run_lua('print(ngx.config.cosocket_version)')
    assert r.rc == 0 and r.out == f"cosocket {v}\n", r.describe()


def test_unknown_option(run_lua):
    # one line, not the whole usage
    for flag in ("--bogus", "-x"):
        r = run_lua(flags=[flag, "-e", "print(1)"])
        assert r.rc == 2, r.describe()
        assert r.err == f"cosocket: unknown option '{flag}'; try 'cosocket --help'\n", r.describe()
        assert r.out == ""


def test_bad_option_values(run_lua):
    for flags in (["--log-level", "loud"], ["--read-timeout", "abc"], ["--pool-size", "-1"], ["--connect-timeout"],
                  ["-e"], ["-j", "fast"], ["-c", "lots"], ["-l"], ["--ns"]):
        r = run_lua(flags=flags + (["-e", ""] if flags[-1] not in ("-e", "--connect-timeout", "-l", "--ns") else []))
        assert r.rc == 2, (flags, r.describe())
        assert r.out == ""
        assert len(lines(r.err)) == 1 and r.err.endswith("; try 'cosocket --help'\n"), (flags, r.describe())


def test_no_script_and_empty_stdin(run_lua):
    # stdin is not a terminal: it is the script, as lua runs it (here: empty)
    r = run_lua()
    assert (r.rc, r.out, r.err) == (0, "", ""), r.describe()


def test_script_on_piped_stdin(run_lua):
    r = run_lua(flags=[], stdin="ngx.sleep(0.001) print(1, arg[0], ...)\n")
    assert (r.rc, r.out) == (0, "1\t-\n"), r.describe()
    r = run_lua(flags=["--log-level", "error"], stdin="local t = nil\nreturn t.x\n")
    assert r.rc == 1 and r.err.startswith("stdin:2: attempt to index local 't'"), r.describe()


# --------------------------------------------------------------------------
# resty-cli's flags (docs/cli.md)

def test_l_requires_libraries_first_in_order(run_lua, tmp_path):
    (tmp_path / "liba.lua").write_text("order = (order or '') .. 'a' ngx.sleep(0.001) return {}")
    (tmp_path / "libb.lua").write_text("order = (order or '') .. 'b' return {}")
    r = run_lua('print(order, package.loaded.liba ~= nil, package.loaded.cjson ~= nil)',
                flags=["-I", tmp_path, "-l", "liba", "-llibb", "-l", "cjson"])
    assert (r.rc, r.out, r.err) == (0, "ab\ttrue\ttrue\n", ""), r.describe()
    r = run_lua(flags=["-l", "cjson", "-e", "print(require('cjson').encode({1}))"])
    assert (r.rc, r.out) == (0, "[1]\n"), r.describe()
    r = run_lua('print("never")', flags=["-l", "no.such.lib"])
    assert r.rc == 1 and "module 'no.such.lib' not found" in r.err and r.out == "", r.describe()


def test_l_with_a_log_level_is_deprecated_but_works(run_lua):
    r = run_lua(LOG_SCRIPT, flags=["-l", "error"])
    assert r.rc == 0, r.describe()
    err = lines(r.err)
    assert err[0] == ("cosocket: -l error: deprecated as the log level (-l LIB requires a library, as in lua "
                      "and resty); use --log-level error"), r.err
    assert len(err) == 3 and "warnmsg" not in r.err


def test_e_repeated_and_I_attached(run_lua, tmp_path):
    (tmp_path / "attached.lua").write_text("return 'attached'")
    r = run_lua(flags=[f"-I{tmp_path}", "-e", "local x = require 'attached'", "-e", "print(x, ...)", "a1"])
    assert (r.rc, r.out) == (0, "attached\ta1\n"), r.describe()
    r = run_lua(flags=[f"-I={tmp_path}", "-e", "print(require 'attached')"])
    assert (r.rc, r.out) == (0, "attached\n"), r.describe()


def test_j_v_dump_off(run_lua):
    loop = "local x = 0 for i = 1, 1000 do x = x + i end print(x, (jit.status()))"
    r = run_lua(flags=["-j", "v", "-e", loop])
    assert r.rc == 0 and r.out == "500500\ttrue\n", r.describe()
    assert re.search(r"\[TRACE +1 \(command line\):1 loop\]", r.err), r.describe()
    r = run_lua(flags=["-jdump", "-e", loop])
    assert r.rc == 0 and "500500\ttrue" in r.out, r.describe()
    assert "---- TRACE 1 start" in r.out + r.err and "---- TRACE 1 stop" in r.out + r.err, r.describe()
    r = run_lua(flags=["-j", "off", "-e", loop])
    assert (r.rc, r.out, r.err) == (0, "500500\tfalse\n", ""), r.describe()
    r = run_lua(flags=["-j", "v", "-j", "off", "-e", ""])
    assert r.rc == 2 and "-j given twice" in r.err, r.describe()


def test_ns_and_errlog_level(run_lua, stub_dns):
    stub_dns.add("cli-ns.test", "A", "10.1.2.3")
    code = ('local s = ngx.socket.udp() local ok, err = s:setpeername("cli-ns.test", 9) '
            'print(ok, err) ngx.log(ngx.DEBUG, "debug shown")')
    r = run_lua(code, flags=["--ns", f"{stub_dns.host}:{stub_dns.port}", "--errlog-level", "debug"])
    assert r.rc == 0 and r.out == "1\tnil\n", r.describe()
    assert "cli-ns.test" in stub_dns.names(), stub_dns.names()
    assert re.search(r"\[debug\] .*debug shown", r.err), r.describe()
    r = run_lua('ngx.log(ngx.WARN, "hidden")', flags=["--errlog-level=error"])
    assert (r.rc, r.err) == (0, ""), r.describe()


def test_c_limits_open_connections(run_lua):
    code = ('local t = {} for i = 1, 200 do local u = ngx.socket.udp() '
            'local ok, err = u:setpeername("127.0.0.1", 9) if not ok then print(i - 1, err) return end '
            't[i] = u end print("all 200")')
    r = run_lua(code, flags=["-c", "20"])
    m = re.fullmatch(r"(\d+)\ttoo many open files\n", r.out)
    # N, or one or two fewer when the environment left a descriptor to the runtime's libraries
    assert r.rc == 0 and m and 18 <= int(m.group(1)) <= 20, r.describe()
    r = run_lua(code, flags=["-c300"])
    assert (r.rc, r.out) == (0, "all 200\n"), r.describe()
    r = run_lua("", flags=["-c", "100000000"])
    assert r.rc == 2 and "above the descriptor limit" in r.err, r.describe()


def test_nginx_only_options_say_so(run_lua):
    for flags in (["--http-conf", "lua_shared_dict x 1m;"], ["--main-conf=env X;"], ["--nginx", "/usr/sbin/nginx"],
                  ["--http-include", "x.conf"], ["--main-include", "x.conf"], ["--stream-conf", "x"],
                  ["--load-module", "m.so"], ["--no-stream"], ["--gdb"], ["--valgrind"], ["--rr"],
                  ["--dump-nginx-conf"], ["--user-runner", "x"]):
        r = run_lua('print("ran")', flags=flags)
        name = flags[0].split("=")[0]
        assert r.rc == 2 and r.out == "", (flags, r.describe())
        assert r.err == f"cosocket: {name} is an nginx option (resty-cli's); cosocket has no nginx\n", r.describe()
    r = run_lua('print("ran")', flags=["--resolve-ipv6"])   # what cosocket's resolver does already
    assert (r.rc, r.out) == (0, "ran\n"), r.describe()


def test_V_prints_each_library(run_lua):
    for flag in ("-V", "--version"):
        r = run_lua(flags=[flag])
        assert r.rc == 0, r.describe()
        out = lines(r.out)
        assert re.fullmatch(r"cosocket \d+\.\d+\.\d+", out[0]), out
        for lib, rx in (("LuaJIT", r"LuaJIT 2\.1\S*"), ("libevent", r"2\.\d+\.\d+-stable"),
                        ("OpenSSL", r"OpenSSL 3\.\S+"), ("PCRE2", r"10\.\d+")):
            assert any(re.match(rf"{lib}: {rx}", line) for line in out), (lib, out)
        assert "I/O backend: epoll" in out, out


def test_missing_script_file(run_lua, tmp_path):
    r = run_lua(file=tmp_path / "nonexistent.lua")
    assert r.rc == 1, r.describe()
    assert "nonexistent.lua" in r.err and "No such file or directory" in r.err
    assert r.out == ""


def test_syntax_error(run_lua):
    r = run_lua('print("a")\nx = = 1\n')
    assert r.rc == 1, r.describe()
    assert re.search(r"script\d+\.lua:2: unexpected symbol near '='", r.err), r.err
    assert r.out == ""  # nothing ran


def test_syntax_error_in_e(run_lua):
    r = run_lua(flags=["-e", "local = 1"])
    assert r.rc == 1, r.describe()
    assert "(command line):1:" in r.err


# --------------------------------------------------------------------------
# exit statuses and errors

def test_runtime_error(run_lua):
    r = run_lua('ngx.say("before")\nlocal function f()\n  error("kaboom")\nend\nf()\n')
    assert r.rc == 1, r.describe()
    assert r.out == "before\n"
    assert re.search(r"script\d+\.lua:3: kaboom", r.err), r.err
    assert "stack traceback:" in r.err
    assert re.search(r"script\d+\.lua:5: in main chunk", r.err), r.err


def test_runtime_error_in_e(run_lua):
    r = run_lua(flags=["-e", "local t = nil; return t.x"])
    assert r.rc == 1, r.describe()
    assert "(command line):1: attempt to index local 't' (a nil value)" in r.err
    assert "stack traceback:" in r.err


def test_runtime_error_after_yield(run_lua):
    r = run_lua('ngx.sleep(0.01)\nerror("late")\n')
    assert r.rc == 1, r.describe()
    assert re.search(r"script\d+\.lua:2: late", r.err) and "stack traceback:" in r.err, r.err


def test_non_string_error(run_lua):
    r = run_lua('error({})')
    assert r.rc == 1, r.describe()
    assert "table" in r.err


def test_entry_error_ends_the_process_at_once(run_lua):
    # like an aborted request in ngx_lua: the other light threads and timers go with it
    r = run_lua('ngx.thread.spawn(function() ngx.sleep(2) print("child") end)\n'
                'ngx.timer.at(2, function() print("timer") end)\nerror("main dies")\n')
    assert r.rc == 1, r.describe()
    assert r.out == ""
    assert r.duration < 1.5


def test_os_exit_status_and_flush(run_lua):
    r = run_lua('io.write("io ") ngx.print("print ") ngx.say("say") os.exit(3)')
    assert r.rc == 3, r.describe()
    assert sorted(r.out.split()) == ["io", "print", "say"]
    r = run_lua('ngx.say("x") os.exit(true)')
    assert (r.rc, r.out) == (0, "x\n")
    r = run_lua('os.exit(false)')
    assert r.rc == 1


def test_ngx_exit_status_and_flush(run_lua):
    r = run_lua('ngx.say("before") ngx.exit(4) ngx.say("after")')
    assert r.rc == 4, r.describe()
    assert r.out == "before\n"


def test_exit_in_thread_and_timer(run_lua):
    r = run_lua('ngx.thread.spawn(function() ngx.sleep(0.01) ngx.say("t") ngx.exit(5) end)\n'
                'ngx.sleep(1) ngx.say("never")')
    assert r.rc == 5, r.describe()
    assert r.out == "t\n"
    r = run_lua('ngx.timer.at(0.01, function() ngx.say("timer") os.exit(6) end)\nngx.sleep(1) ngx.say("never")')
    assert r.rc == 6, r.describe()
    assert r.out == "timer\n"
    assert r.duration < 1


def test_large_output_is_complete(run_lua):
    r = run_lua('for i = 1, 20000 do ngx.say(string.rep("x", 99)) end')
    assert r.rc == 0
    assert r.out_bytes == (b"x" * 99 + b"\n") * 20000


def test_output_order_of_say_print_and_io_write(run_lua):
    # everything the script writes to stdout comes out in the order it was written
    r = run_lua('ngx.say("1") print("2") io.write("3\\n") ngx.print("4\\n") io.stdout:write("5\\n")\n'
                'ngx.flush() ngx.say("6") ngx.sleep(0.01) print("7") io.write("8\\n") ngx.say("9")')
    assert r.rc == 0, r.describe()
    assert r.out == "1\n2\n3\n4\n5\n6\n7\n8\n9\n"


# --------------------------------------------------------------------------
# logging

LOG_SCRIPT = r'''
ngx.log(ngx.ERR, "errmsg ", 1, " ", nil, " ", true)
ngx.log(ngx.WARN, "warnmsg")
ngx.log(ngx.NOTICE, "noticemsg")
ngx.log(ngx.INFO, "infomsg")
ngx.log(ngx.DEBUG, "debugmsg")
local function f() ngx.log(ngx.ERR, "in f") end
f()
'''


def test_log_format_and_default_level(run_lua):
    # checked against OpenResty 0.10.23: "[error] ... [lua] file.lua:1: errmsg 1 nil true",
    # "f(): " prefix inside a named function; default level shows notice and above
    r = run_lua(LOG_SCRIPT)
    assert r.rc == 0, r.describe()
    err = lines(r.err)
    assert len(err) == 4, r.err
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#\d+: \[lua\] script\d+\.lua:2: errmsg 1 nil true",
                        err[0]), err[0]
    assert re.search(r"\[warn\] .*\[lua\] script\d+\.lua:3: warnmsg$", err[1]), err[1]
    assert re.search(r"\[notice\] .*\[lua\] script\d+\.lua:4: noticemsg$", err[2]), err[2]
    assert re.search(r"\[error\] .*\[lua\] script\d+\.lua:7: f\(\): in f$", err[3]), err[3]
    assert "infomsg" not in r.err and "debugmsg" not in r.err


def test_log_level_debug(run_lua):
    for flags in (["--errlog-level", "debug"], ["--log-level", "debug"], ["--log-level=debug"]):
        r = run_lua(LOG_SCRIPT, flags=flags)
        assert r.rc == 0, r.describe()
        assert re.search(r"\[info\] .*script\d+\.lua:5: infomsg", r.err), r.err
        assert re.search(r"\[debug\] .*script\d+\.lua:6: debugmsg", r.err), r.err
        assert len(lines(r.err)) == 6


def test_log_level_error_hides_warnings(run_lua):
    r = run_lua(LOG_SCRIPT, flags=["--log-level", "error"])
    assert r.rc == 0, r.describe()
    assert len(lines(r.err)) == 2 and "warnmsg" not in r.err and "noticemsg" not in r.err


def test_log_argument_errors(run_lua_ok):
    # checked against OpenResty 0.10.23
    out = run_lua_ok(r'''
ngx.say(ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG, ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT)
ngx.say(pcall(ngx.log, ngx.ERR, {}))
ngx.say(pcall(ngx.log, 99, "x"))
ngx.say(pcall(ngx.log, "x"))
''')
    assert lines(out) == [
        "456780123",
        "falsebad argument #1 to '?' (expected table to have __tostring metamethod)",
        "falsebad argument #1 to '?' (bad log level: 99)",
        "falsebad argument #1 to '?' (number expected, got string)",
    ]


# --------------------------------------------------------------------------
# option values reach the runtime

def test_read_timeout_flag(run_lua, echo_server):
    r = run_lua(r'''
local sock = ngx.socket.tcp()
assert(sock:connect("127.0.0.1", tonumber(arg[1])))
local t0 = ngx.now()
local data, err = sock:receive(1)
ngx.update_time()
ngx.say(tostring(data), " ", err, " ", ngx.now() - t0 < 1)
''', echo_server.port, flags=["--read-timeout", "100"], timeout=10)
    assert r.rc == 0, r.describe()
    assert r.out == "nil timeout true\n"


def test_other_flags_are_accepted(run_lua):
    r = run_lua('print("ok")', flags=["--connect-timeout", "100", "--send-timeout=100", "--keepalive-timeout", "100",
                                      "--pool-size", "5", "--resolver", "127.0.0.1:53", "--resolver-timeout", "100",
                                      "--max-pending-timers", "10", "--max-running-timers", "10",
                                      "--shutdown-timeout", "10"])
    assert r.rc == 0, r.describe()
    assert r.out == "ok\n"


# --------------------------------------------------------------------------
# start-up time

def test_startup_time(cosocket_bin, tmp_path):
    times = []
    for _ in range(20):
        t0 = time.monotonic()
        p = subprocess.run([cosocket_bin, "-e", ""], stdin=subprocess.DEVNULL, capture_output=True,
                           cwd=str(tmp_path), timeout=10)
        dt = time.monotonic() - t0
        assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", p
        times.append(dt)
        assert dt < 1.0, f"cosocket -e '' took {dt:.3f} s"
    print(f"\ncosocket -e '' start-up: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms over 20 runs")


# --------------------------------------------------------------------------
# tracebacks, as luajit prints them (docs/cli.md "Errors and tracebacks")

STUB_NGX = "if not ngx then ngx = { sleep = function() end } end\n"


def luajit_error(script, cwd):
    """luajit's report of the script's error: what cosocket must print (luajit's "luajit: "
    prefix and its own bottom frame, the C main, left out)."""
    p = subprocess.run(["luajit", str(script)], capture_output=True, text=True, cwd=str(cwd), timeout=10)
    assert p.returncode == 1, p
    err = p.stderr
    assert err.startswith("luajit: "), err
    return re.sub(r"\n\t\[C\]: at 0x[0-9a-f]+\n$", "\n", err[len("luajit: "):])


def same_as_luajit(run_lua, tmp_path, name, code, files=()):
    for fname, text in files:
        (tmp_path / fname).write_text(text)
    (tmp_path / name).write_text(STUB_NGX + code)
    want = luajit_error(name, tmp_path)
    r = run_lua(flags=[name], cwd=tmp_path)
    assert r.rc == 1 and r.out == "", r.describe()
    assert r.err == want, f"cosocket:\n{r.err}\nluajit:\n{want}"
    return r.err


def test_traceback_runtime_error_in_a_function(run_lua, tmp_path):
    err = same_as_luajit(run_lua, tmp_path, "rt.lua",
                         "local function f()\n  local x = nil\n  return x.y + 1\nend\nf()\n")
    assert "\trt.lua:4: in function 'f'\n" in err   # the failing frame has its line


def test_traceback_error_after_a_yield(run_lua, tmp_path):
    same_as_luajit(run_lua, tmp_path, "late.lua",
                   "local function f()\n  ngx.sleep(0.01)\n  local t = nil\n  return t[1]\nend\n"
                   "local function g() f() return 1 end\ng()\n")
    same_as_luajit(run_lua, tmp_path, "late2.lua",
                   "local function f()\n  ngx.sleep(0.01)\n  error('late')\nend\nf()\n")


def test_traceback_in_a_required_module(run_lua, tmp_path):
    err = same_as_luajit(run_lua, tmp_path, "req.lua",
                         "package.path = './?.lua;' .. package.path\n"
                         "local function load() local m = require('badmod') return m end\nload()\n",
                         files=[("badmod.lua", "local M = {}\nfunction M.go() local x = nil; return x.y end\n"
                                               "M.go()\nreturn M\n")])
    assert "[cosocket" not in err and "\t./badmod.lua:2: in function 'go'\n" in err, err
    assert "\t[C]: in function 'require'\n" in err, err


def test_traceback_of_debug_traceback_and_wrapped_coroutines(run_lua, tmp_path):
    (tmp_path / "dt.lua").write_text(
        STUB_NGX + "print(select(2, xpcall(function() error('x') end, debug.traceback)))\n"
        "print(debug.traceback('here'))\n")
    p = subprocess.run(["luajit", "dt.lua"], capture_output=True, text=True, cwd=str(tmp_path), timeout=10)
    want = re.sub(r"\n\t\[C\]: at 0x[0-9a-f]+\n", "\n", p.stdout)
    r = run_lua(flags=["dt.lua"], cwd=tmp_path)
    assert (r.rc, r.out) == (0, want), r.describe()
    same_as_luajit(run_lua, tmp_path, "cw.lua",
                   "local gen = coroutine.wrap(function() ngx.sleep(0) error('in co') end)\n"
                   "local function g() gen() end\ng()\n")


def test_traceback_in_a_light_thread(run_lua, tmp_path):
    # as ngx_lua logs it (resty-cli 0.10.23: "lua user thread aborted: runtime error: ..."),
    # each frame with its line
    (tmp_path / "thr.lua").write_text("local function work(n)\n  ngx.sleep(0.01)\n  local t = nil\n  return t.x\nend\n"
                                      "local t = ngx.thread.spawn(work, 1)\nprint(ngx.thread.wait(t))\n")
    r = run_lua(flags=["thr.lua"], cwd=tmp_path)
    assert r.rc == 0, r.describe()
    m = re.search(r"\[error\] \d+#0: lua user thread aborted: runtime error: (thr\.lua):4: "
                  r"attempt to index local 't' \(a nil value\)\nstack traceback:\n(.*)$", r.err, re.S)
    assert m, r.describe()
    assert m.group(2) == f"\t{m.group(1)}:4: in function <{m.group(1)}:1>\n", r.describe()
    assert r.out.startswith("false\t") and ":4: attempt to index local 't'" in r.out
