"""The interactive REPL (`cosocket -i`, or `cosocket` with a terminal on stdin; README "REPL").

The terminal tests run cosocket on a pseudo-terminal (os.openpty, the pty as its
controlling terminal so that Ctrl-C is a real SIGINT from the line discipline) and read
what a user would see, ANSI escapes removed. Every read has a deadline.
"""
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import sanitizer_report

# what the terminal gets: escapes (CSI, OSC, two-character), control characters, text
TOKEN_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b.|[\r\n\b]|[^\x1b\r\n\b]+")
PROMPT_RE = r"(?:^|(?<=\n))> $"  # the prompt, alone at the end of the screen


class Session:
    """cosocket on a pseudo-terminal: send() keystrokes, expect() output."""

    def __init__(self, binary, args=(), home=None, cwd=None):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        env = dict(os.environ, TERM="xterm", HOME=str(home))
        env.pop("INPUTRC", None)

        def make_ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.argv = [binary, *[str(a) for a in args]]
        self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=str(cwd or home), start_new_session=True,
                                     preexec_fn=make_ctty)
        os.close(slave)
        self.raw = b""
        self.pos = 0  # expect() searches the screen text after this point

    def text(self):
        """The screen as a user reads it: CR, erase-line and cursor moves applied to the
        current line, other escapes dropped (a one-dimensional terminal)."""
        lines, line, col = [], [], 0
        for tok in TOKEN_RE.findall(self.raw.decode("utf-8", errors="replace")):
            if tok == "\n":
                lines.append("".join(line))
                line, col = [], 0
            elif tok == "\r":
                col = 0
            elif tok == "\b":
                col = max(col - 1, 0)
            elif tok.startswith("\x1b"):
                m = re.fullmatch(r"\x1b\[(\d*)([CDK])", tok)
                if m and m.group(2) == "K":
                    del line[col:]
                elif m:
                    n = int(m.group(1) or 1)
                    col = col + n if m.group(2) == "C" else max(col - n, 0)
            else:
                for ch in tok:
                    if col < len(line):
                        line[col] = ch
                    else:
                        line.extend(" " * (col - len(line)) + ch)
                    col += 1
        lines.append("".join(line))
        return "\n".join(lines)

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.master], [], [], min(left, 0.2))
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            time.sleep(0.05)
            return self.proc.poll() is None
        self.raw += data
        return True

    def fail(self, why):
        pytest.fail(f"{why}\ncommand: {' '.join(self.argv)}\n--- terminal ---\n{self.text()[-4000:]}",
                    pytrace=False)

    def expect(self, pattern, timeout=10):
        """Waits for regex `pattern` in the screen text after the last match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            m = rx.search(text, min(self.pos, len(text)))
            if m:
                # the current (last) line can still change (the line editor redraws it, output
                # takes the prompt away): the next search starts at its beginning
                self.pos = min(m.end(), text.rfind("\n") + 1)
                return m
            if not self._read(deadline):
                self.fail(f"did not see {pattern!r} within {timeout} s")

    def expect_prompt(self, timeout=10):
        return self.expect(PROMPT_RE, timeout)

    def quiet(self, seconds):
        """Reads for `seconds` and returns what appeared (screen text)."""
        start = len(self.text())
        deadline = time.monotonic() + seconds
        while self._read(deadline):
            pass
        return self.text()[start:]

    def send(self, keys):
        os.write(self.master, keys.encode())

    def line(self, code, timeout=10):
        """Types a line, waits for the next prompt; returns what the line printed."""
        self.send(code + "\r")
        self.expect(re.escape(code) + "\n", timeout)
        start = self.pos
        m = self.expect(PROMPT_RE, timeout)
        return self.text()[start:m.start()]

    def wait_exit(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                self.fail(f"did not exit within {timeout} s")
            self._read(deadline)
        while self._read(time.monotonic() + 0.3) and self.proc.poll() is None:
            pass
        self.check_sanitizer()
        return self.proc.returncode

    def check_sanitizer(self):
        report = sanitizer_report(self.text())
        if report:
            self.fail(f"sanitizer report:\n{report}")

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        os.close(self.master)


@pytest.fixture
def repl(cosocket_bin, tmp_path):
    """repl(*args) -> a Session running `cosocket *args` on a terminal, HOME=tmp_path."""
    sessions = []

    def start(*args, home=None):
        s = Session(cosocket_bin, args, home=home or tmp_path, cwd=tmp_path)
        sessions.append(s)
        return s

    yield start
    for s in sessions:
        s.close()


# --------------------------------------------------------------------------
# on a terminal

def test_no_script_on_a_terminal_opens_the_repl(repl):
    s = repl()
    s.expect_prompt()
    assert s.line("print('hello')") == "hello\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_expressions_are_printed(repl):
    s = repl("-i")
    s.expect_prompt()
    assert s.line("1+1") == "2\n"
    assert s.line("1, nil, 'x', true") == "1\tnil\tx\ttrue\n"
    assert s.line("nil") == "nil\n"
    assert s.line("=2*3") == "6\n"
    assert s.line("= 'a', 'b'") == "a\tb\n"
    assert s.line("x = 41") == ""              # a statement prints nothing
    assert s.line("x + 1") == "42\n"           # globals live on from line to line
    assert s.line("local y = 5") == ""
    assert s.line("y") == "nil\n"              # a local belongs to its line, as in lua
    assert s.line("setmetatable({}, {__tostring = function() return 'T!' end})") == "T!\n"
    assert s.line("(function() return end)()") == ""   # no values: nothing printed
    assert s.line("type(ngx.socket.tcp)") == "function\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_redis_session(repl, redis):
    s = repl()
    s.expect_prompt()
    assert s.line("s = ngx.socket.tcp()") == ""
    assert s.line("s:settimeout(5000)") == ""
    assert s.line(f"s:connect('{redis.host}', {redis.port})") == "1\n"
    assert s.line(r's:send("PING\r\n")') == "6\n"
    assert s.line("s:receive()") == "+PONG\n"
    # a command that makes the server wait: the line waits, then prints
    t0 = time.monotonic()
    assert s.line(r's:send("BLPOP repl:nothing 1\r\n") return s:receive()', timeout=10) == "*-1\n"
    assert time.monotonic() - t0 >= 0.9
    assert s.line("s:close()") == "1\n"
    # the redis driver, a connection kept in a global
    assert s.line("red = require('resty.redis'):new()") == ""
    assert s.line(f"red:connect('{redis.host}', {redis.port})") == "1\n"
    assert s.line("(red:set('repl:k', 'v1'))") == "OK\n"
    assert s.line("(red:get('repl:k'))") == "v1\n"
    assert s.line("(red:del('repl:k'))") == "1\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_timer_output_between_prompts(repl):
    s = repl()
    s.expect_prompt()
    assert s.line("n = 0") == ""
    assert s.line("ngx.timer.every(0.2, function() n = n + 1 print('tick ' .. n) end)") == "1\n"
    # the user sits at the prompt: ticks appear, each followed by the prompt again
    s.expect(r"tick 1\n> ", timeout=5)
    s.expect(r"tick 2\n> ", timeout=5)
    # half a line typed: the ticks do not lose it
    s.send("1 +")
    s.expect(r"tick \d+\n> 1 \+", timeout=5)
    s.send(" 1\r")
    s.expect(r"\n2\n", timeout=5)
    s.expect_prompt(timeout=5)
    # lines still work, and a line that waits lets the ticks run meanwhile
    out = s.line("ngx.sleep(0.7) return 'slept'", timeout=10)
    assert out.endswith("slept\n"), out
    assert len(re.findall(r"tick \d+", out)) >= 2, out
    assert s.line("n >= 4") == "true\n"
    s.send("\x04")
    t0 = time.monotonic()
    assert s.wait_exit() == 0   # at once: the every-timer is dropped
    assert time.monotonic() - t0 < 3


def test_ctrl_c_cancels_a_waiting_line(repl):
    s = repl()
    s.expect_prompt()
    assert s.line("ngx.timer.at(0.3, function() print('timer still ran') end)") == "1\n"
    s.send("print('sleeping') ngx.sleep(100) print('not reached')\r")
    s.expect(r"\nsleeping\n")
    s.send("\x03")
    s.expect(r"interrupted\n", timeout=5)
    s.expect_prompt(timeout=5)
    # timers started before go on
    s.expect(r"timer still ran\n> ", timeout=5)
    assert s.line("1+1") == "2\n"
    assert "\nnot reached" not in s.text()
    # a line blocked on a socket read
    s.send("u = ngx.socket.udp() u:setpeername('127.0.0.1', 9) u:settimeout(100000) u:receive()\r")
    time.sleep(0.3)
    s.send("\x03")
    s.expect(r"interrupted\n", timeout=5)
    s.expect_prompt(timeout=5)
    assert s.line("'still here'") == "still here\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_ctrl_c_interrupts_lua_code_that_does_not_yield(repl):
    s = repl()
    s.expect_prompt()
    s.send("print('busy') ngx.flush() while true do ngx.now() end\r")   # interpreted: C calls are not compiled
    s.expect(r"\nbusy\n")
    time.sleep(0.3)
    s.send("\x03")
    s.expect(r"stdin:1: interrupted\n", timeout=5)
    s.expect_prompt(timeout=5)
    assert s.line("1+1") == "2\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_ctrl_c_stops_a_loop_typed_at_the_prompt(repl):
    # the REPL's own lines run interpreted: the hook sees the loop LuaJIT would compile
    s = repl()
    s.expect_prompt()
    s.send("print('busy') ngx.flush() local x = 0 while true do x = x + 1 end\r")
    s.expect(r"\nbusy\n")
    time.sleep(0.3)
    s.send("\x03")
    s.expect(r"stdin:1: interrupted\n", timeout=5)
    s.expect_prompt(timeout=5)
    assert s.line("1+1") == "2\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_second_ctrl_c_leaves_a_compiled_loop(repl, tmp_path):
    # a loop LuaJIT compiled in a module never sees the hook: the first Ctrl-C says so,
    # the second exits 130; the history is on disk already
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "spin.lua").write_text("return function() local x = 0 while true do x = x + 1 end end\n")
    s = repl("-I", mods)
    s.expect_prompt()
    assert s.line("spin = require 'spin'") == ""
    s.send("print('busy') ngx.flush() spin()\r")
    s.expect(r"\nbusy\n")
    time.sleep(0.3)
    s.send("\x03")
    s.expect(r"interrupted, but .*press Ctrl-C again to quit\n", timeout=5)
    assert s.proc.poll() is None
    s.send("\x03")
    s.expect(r"interrupted again: the Lua code does not yield, leaving\n", timeout=5)
    assert s.wait_exit() == 130
    history = (tmp_path / ".cosocket_history").read_text().splitlines()
    assert history[-2:] == ["spin = require 'spin'", "print('busy') ngx.flush() spin()"], history


def test_history_is_written_line_by_line(repl, tmp_path):
    s = repl()
    s.expect_prompt()
    assert s.line("first_line = 1") == ""
    assert s.line("second_line = 2") == ""
    # before the session ends: each line is on disk as soon as it is entered
    history = (tmp_path / ".cosocket_history").read_text().splitlines()
    assert history == ["first_line = 1", "second_line = 2"], history
    s.proc.kill()    # a session that ends any way keeps its history
    s.proc.wait(5)
    s = repl()
    s.expect_prompt()
    s.send("\x1b[A\r")
    s.expect(r"second_line = 2\n> $")
    s.send("\x04")
    assert s.wait_exit() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(repl):
    s = repl()
    s.expect_prompt()
    s.send("this is not lua")
    s.expect("this is not lua")
    s.send("\x03")
    s.expect(r"\^C\n> $", timeout=5)
    assert s.line("1+2") == "3\n"
    # inside a continued chunk: the chunk is dropped too
    s.send("for i = 1, 3 do\r")
    s.expect(r"\n>> $")
    s.send("\x03")
    s.expect(r"\^C\n> $", timeout=5)
    assert s.line("'fresh'") == "fresh\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_and_fg_continues_the_line(repl):
    s = repl()
    s.expect_prompt()
    assert not termios.tcgetattr(s.master)[3] & termios.ICANON   # the line editor's raw mode
    s.send("1 +")
    s.expect(r"> 1 \+")
    s.send("\x1a")
    deadline = time.monotonic() + 5
    while proc_state(s.proc.pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_state(s.proc.pid) == "T"
    assert termios.tcgetattr(s.master)[3] & termios.ICANON       # the terminal given back
    os.kill(s.proc.pid, signal.SIGCONT)
    s.expect(r"> 1 \+$", timeout=5)                               # the typed text is back
    s.send(" 2\r")
    s.expect(r"\n3\n> $")
    s.send("\x04")
    assert s.wait_exit() == 0


def test_incomplete_input_continues(repl):
    s = repl()
    s.expect_prompt()
    s.send("for i = 1, 3 do\r")
    s.expect(r"\n>> $")
    s.send("print(i * 10)\r")
    s.expect(r"\n>> $")
    s.send("end\r")
    s.expect(r"\n10\n20\n30\n> $")
    s.send("function add(a,\r")
    s.expect(r"\n>> $")
    s.send("b) return a + b\r")
    s.expect(r"\n>> $")
    s.send("end\r")
    s.expect_prompt()
    assert s.line("add(2, 3)") == "5\n"
    s.send("x = [[one\r")
    s.expect(r"\n>> $")
    s.send("two]]\r")
    s.expect_prompt()
    assert s.line("x") == "one\ntwo\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_errors_are_printed_and_the_repl_goes_on(repl):
    s = repl()
    s.expect_prompt()
    out = s.line("error('boom')")
    assert out.startswith("stdin:1: boom\n"), out
    out = s.line("x = = 1")
    assert out == "stdin:1: unexpected symbol near '='\n", out
    out = s.line("nosuch()")
    assert "stdin:1: attempt to call global 'nosuch' (a nil value)" in out, out
    out = s.line("ngx.sleep(0.05) error({code = 1})")
    assert "(error object is a table value)" in out, out
    # an error in a background timer is logged; the REPL is unharmed
    assert s.line("ngx.timer.at(0.2, function() error('in timer') end)") == "1\n"
    s.expect(r"\S+ \S+ \[error\] \d+#0: lua entry thread aborted: runtime error: stdin:1: in timer\n", timeout=5)
    s.expect(r"context: ngx.timer\n> $", timeout=5)
    assert s.line("1+1") == "2\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_ctrl_d_exits_0_and_keeps_history(repl, tmp_path):
    s = repl()
    s.expect_prompt()
    assert s.line("hist_value = 7 * 6") == ""
    assert s.line("hist_value") == "42\n"
    s.send("\x04")
    assert s.wait_exit() == 0
    history = (tmp_path / ".cosocket_history").read_text()
    assert "hist_value = 7 * 6" in history.splitlines(), history
    # the next session: arrow up brings back the last line
    s = repl()
    s.expect_prompt()
    assert s.line("hist_value = 1") == ""
    s.send("\x1b[A\x1b[A\r")  # two up: "hist_value" from the previous session... then run it
    s.expect(r"\n1\n> $")
    s.send("\x04")
    assert s.wait_exit() == 0


def test_utf8_input(repl, monkeypatch):
    monkeypatch.setenv("LANG", "C.UTF-8")   # the line editor takes the character set from it
    s = repl()
    s.expect_prompt()
    assert s.line("print('h\u00e9llo', #'\u00e9')") == "h\u00e9llo\t2\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_unwritable_history_is_no_error(repl, tmp_path):
    home = tmp_path / "no" / "such" / "home"
    s = repl(home=home)
    s.expect_prompt()
    assert s.line("1+1") == "2\n"
    s.send("\x04")
    assert s.wait_exit() == 0
    assert not (tmp_path / "no").exists()


def test_script_then_repl(repl, tmp_path):
    script = tmp_path / "setup.lua"
    script.write_text("greeting = 'hi ' .. (...)\n"
                      "ngx.sleep(0.1)\n"
                      "print('setup done')\n")
    s = repl("-i", script, "there")
    s.expect(r"setup done\n> $")
    assert s.line("greeting") == "hi there\n"
    assert s.line("arg[0] == '%s'" % script) == "true\n"
    s.send("\x04")
    assert s.wait_exit() == 0


def test_os_exit_leaves_with_its_status(repl):
    s = repl()
    s.expect_prompt()
    s.send("os.exit(7)\r")
    assert s.wait_exit() == 7


def test_sigterm_is_the_graceful_shutdown(repl):
    s = repl()
    s.expect_prompt()
    assert s.line("ngx.timer.at(100, function(premature) print('premature', premature) end)") == "1\n"
    s.proc.send_signal(signal.SIGTERM)
    s.expect(r"premature\ttrue\n", timeout=5)
    assert s.wait_exit() == 0


def test_light_threads_outlive_their_line(repl):
    s = repl()
    s.expect_prompt()
    out = s.line("ngx.thread.spawn(function() ngx.sleep(0.3) print('child done') end) return 'line done'")
    assert out == "line done\n", out
    s.expect(r"child done\n> $", timeout=5)
    s.send("\x04")
    assert s.wait_exit() == 0


# --------------------------------------------------------------------------
# stdin not a terminal

def test_piped_lines(run_lua):
    code = ("1+1\n"
            "1, nil, 'x'\n"
            "=2*3\n"
            "x = 10\n"
            "x * 2\n"
            "for i = 1, 2 do\n"
            "  print('i', i)\n"
            "end\n"
            "error('boom')\n"
            "ngx.sleep(0.05) return 'slept'\n"
            "'last line without a newline'")
    r = run_lua(flags=["-i"], stdin=code, timeout=20)
    assert r.rc == 0, r.describe()
    assert r.out == ("2\n1\tnil\tx\n6\n20\ni\t1\ni\t2\nslept\nlast line without a newline\n"), r.describe()
    assert r.err.startswith("stdin:1: boom\n"), r.describe()


def test_piped_lines_wait_for_each_other(run_lua, redis):
    code = (f"s = ngx.socket.tcp() s:connect('{redis.host}', {redis.port})\n"
            "s:send('PING\\r\\n')\n"
            "s:receive()\n"
            "ngx.thread.spawn(function() ngx.sleep(0.2) print('child') end)\n"
            "ngx.sleep(0.4) return 'after child'\n")
    r = run_lua(flags=["-i"], stdin=code, timeout=20)
    assert r.rc == 0, r.describe()
    assert r.out.splitlines() == ["6", "+PONG", "thread: " + r.out.splitlines()[2].split(": ")[1],
                                  "child", "after child"], r.describe()


def test_piped_end_of_input_exits_at_once(run_lua):
    r = run_lua(flags=["-i"], stdin="ngx.timer.every(0.1, function() print('tick') end)\n", timeout=20)
    assert r.rc == 0, r.describe()
    assert r.out == "1\n", r.describe()
    assert r.duration < 5


def test_piped_incomplete_chunk_at_end(run_lua):
    r = run_lua(flags=["-i"], stdin="print('a')\nfor i = 1, 2 do\n", timeout=20)
    assert r.rc == 0, r.describe()
    assert r.out == "a\n"
    # the chunk's lines count from its first one
    assert r.err == "stdin:1: 'end' expected near '<eof>'\n", r.describe()


def test_piped_exit_status_and_script_first(run_lua, tmp_path):
    r = run_lua(flags=["-i"], stdin="print('before')\nos.exit(3)\nprint('after')\n", timeout=20)
    assert (r.rc, r.out) == (3, "before\n"), r.describe()
    script = tmp_path / "first.lua"
    script.write_text("v = 'from script' print('script ran')\n")
    r = run_lua(None, file=None, flags=["-i", script], stdin="v\n", timeout=20)
    assert (r.rc, r.out) == (0, "script ran\nfrom script\n"), r.describe()


def test_piped_from_a_file_and_dev_null(run_lua, tmp_path, cosocket_bin):
    f = tmp_path / "lines.txt"
    f.write_text("1+1\nngx.sleep(0.01) return 'ok'\n")
    with open(f) as stdin:
        p = subprocess.run([cosocket_bin, "-i"], stdin=stdin, capture_output=True, timeout=20)
    assert (p.returncode, p.stdout) == (0, b"2\nok\n"), p
    assert not sanitizer_report(p.stderr.decode()), p.stderr
    r = run_lua(flags=["-i"], timeout=20)   # stdin /dev/null
    assert (r.rc, r.out) == (0, ""), r.describe()


def test_piped_sigint_cancels_the_line(cosocket_bin):
    p = subprocess.Popen([cosocket_bin, "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        p.stdin.write(b"print('waiting') io.stdout:flush() ngx.flush() ngx.sleep(100)\n")
        p.stdin.flush()
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"waiting\n") and time.monotonic() < deadline:
            if select.select([p.stdout], [], [], 0.2)[0]:
                line += os.read(p.stdout.fileno(), 100)
        assert line == b"waiting\n"
        time.sleep(0.3)  # into ngx.sleep: a signal while Lua code runs interrupts that code
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(b"'next'\n", timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert out == b"next\n"
    assert err == b"interrupted\n"


def test_piped_sigint_in_a_compiled_loop(cosocket_bin, tmp_path):
    (tmp_path / "spin.lua").write_text("return function() local x = 0 while true do x = x + 1 end end\n")
    p = subprocess.Popen([cosocket_bin, "-I", str(tmp_path), "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        p.stdin.write(b"print('spinning') ngx.flush() require('spin')()\n")
        p.stdin.flush()
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"spinning\n") and time.monotonic() < deadline:
            if select.select([p.stdout], [], [], 0.2)[0]:
                line += os.read(p.stdout.fileno(), 100)
        assert line == b"spinning\n"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        time.sleep(1)   # the hook cannot stop compiled code: still running, and it says so
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, (out, err)
    assert b"press Ctrl-C again to quit\n" in err and err.endswith(b"leaving\n"), err


def test_no_script_without_terminal_runs_stdin_as_the_script(run_lua):
    # as lua does: no REPL without -i, the whole input is one chunk
    r = run_lua(stdin="local x = 1\nprint(x + 1)\n")
    assert (r.rc, r.out) == (0, "2\n"), r.describe()
    r = run_lua(flags=["-"], stdin="print('script from stdin')\n")
    assert (r.rc, r.out) == (0, "script from stdin\n"), r.describe()
    r = run_lua(flags=["-i", "-"], stdin="print(1)\n")
    assert r.rc == 2 and "-i and - both want stdin" in r.err, r.describe()
