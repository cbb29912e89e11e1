"""Shared by the socket test files: the Lua prelude (P / PC / Q helpers from
tests/lua/socket/prelude.lua) put in front of each script, the lua() runner, and
Interactive, a cosocket process stopping at checkpoints so a test can look at the
servers in between."""
import os
import select
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(HERE, "lua", "socket", "prelude.lua")) as _f:
    PRELUDE = _f.read()


def lua(run_lua_ok, code, subst=None, **kw):
    """Run PRELUDE + code (after replacing @KEY@ placeholders) and return stdout's lines."""
    for k, v in (subst or {}).items():
        code = code.replace(f"@{k}@", str(v))
    return run_lua_ok(PRELUDE + code, **kw).splitlines()


def wait_for(pred, timeout=3.0):
    """Polls pred() until it is true or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


# A Lua `checkpoint(name)`: prints name and waits for a line on stdin.
CHECKPOINT = 'local function checkpoint(name) io.stdout:write(name, "\\n") io.stdout:flush() io.read("*l") end\n'


class Interactive:
    """cosocket running a script that stops at checkpoints: the script prints a line and waits
    for one on stdin (io.read), so the test can look at the servers in between."""

    def __init__(self, binary, tmp_path, code, subst=None, flags=()):
        for k, v in (subst or {}).items():
            code = code.replace(f"@{k}@", str(v))
        path = tmp_path / "interactive.lua"
        path.write_text(PRELUDE + CHECKPOINT + code)
        self.proc = subprocess.Popen([binary, *flags, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines = []

    def expect(self, line, timeout=5.0):
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    break
                if ch == b"\n":
                    got = buf.decode()
                    self.lines.append(got)
                    if got == line:
                        return
                    buf = b""
                    continue
                buf += ch
        self.kill()
        pytest.fail(f"checkpoint {line!r} not reached; output so far: {self.lines!r} {buf!r}; "
                    f"stderr: {self.proc.stderr.read().decode(errors='replace')[-2000:]}",
                    pytrace=False)

    def resume(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=10.0):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("cosocket did not exit", pytrace=False)
        assert self.proc.returncode == 0, err.decode(errors="replace")
        return self.lines + out.decode().splitlines()

    def kill(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
