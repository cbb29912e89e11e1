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
    r = run_lua(flags=["--bogus", "-e", "print(1)"])
    assert r.rc == 2, r.describe()
    assert "unknown option --bogus" in r.err
    assert "usage:" in r.err
    assert r.out == ""


def test_bad_option_values(run_lua):
    for flags in (["-l", "loud"], ["--read-timeout", "abc"], ["--pool-size", "-1"], ["--connect-timeout"], ["-e"]):
        r = run_lua(flags=flags + (["-e", ""] if flags[-1] not in ("-e", "--connect-timeout") else []))
        assert r.rc == 2, (flags, r.describe())
        assert r.out == ""


def test_no_script(run_lua):
    r = run_lua()
    assert r.rc == 2, r.describe()
    assert "usage:" in r.err


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
    for flags in (["-l", "debug"], ["--log-level", "debug"], ["--log-level=debug"]):
        r = run_lua(LOG_SCRIPT, flags=flags)
        assert r.rc == 0, r.describe()
        assert re.search(r"\[info\] .*script\d+\.lua:5: infomsg", r.err), r.err
        assert re.search(r"\[debug\] .*script\d+\.lua:6: debugmsg", r.err), r.err
        assert len(lines(r.err)) == 6


def test_log_level_error_hides_warnings(run_lua):
    r = run_lua(LOG_SCRIPT, flags=["-l", "error"])
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
