"""A cosocket process running a server script (tests/test_listen.py, test_workers.py):
started in its own session, read line by line from stdout, signalled, and reaped with
a sanitizer check of its stderr."""
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest

import conftest


class ServerProc:
    def __init__(self, binary, tmp_path, code=None, file=None, args=(), flags=(), name="server.lua",
                 preexec_fn=None):
        if code is not None:
            file = tmp_path / name
            file.write_text(code)
        self.argv = [binary, *[str(f) for f in flags], str(file), *[str(a) for a in args]]
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=str(tmp_path), start_new_session=True,
                                  preexec_fn=preexec_fn)
        self.out = b""
        self.err = ""
        self.pid = self.p.pid

    def wait_for(self, pattern, timeout=10, count=1):
        """Reads stdout until the regex `pattern` matched `count` times; returns the matches."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        rx = re.compile(pattern.encode())
        while len(rx.findall(self.out)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no {pattern!r} x{count} within {timeout} s; stdout {self.out!r}; "
                            f"stderr {self.err[-3000:]}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.err = self.p.stderr.read().decode(errors="replace")
                    pytest.fail(f"cosocket ended before {pattern!r}: rc {self.p.wait()} stdout {self.out!r} "
                                f"stderr {self.err[-3000:]}")
                self.out += chunk
        return [m.decode() if isinstance(m, bytes) else tuple(x.decode() for x in m)
                for m in rx.findall(self.out)]

    def port(self, timeout=10):
        return int(self.wait_for(r"listening on (\d+)", timeout)[0])

    def signal(self, sig):
        self.p.send_signal(sig)

    def finish(self, timeout=10):
        """Waits for the exit; returns the status (stdout in .out, stderr in .err)."""
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"cosocket did not exit within {timeout} s; stdout {self.out!r}; "
                        f"stderr {self.err[-3000:]}")
        self.out = (self.out + out).decode(errors="replace") if isinstance(self.out, bytes) else self.out
        self.err = err.decode(errors="replace")
        report = conftest.sanitizer_report(self.err)
        assert not report, report
        return self.p.returncode

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.communicate(timeout=5)
        except Exception:
            pass


def connect(port, timeout=5, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        ch = s.recv(1)
        if not ch:
            break
        buf += ch
    return buf.decode()


def recv_all(s):
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def children_of(pid):
    """The pids whose parent is pid (from /proc)."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def parse_benchmark(text):
    """redis-benchmark -q output -> {TEST: requests per second}."""
    text = text.replace("\r", "\n")
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^\s*([A-Z_]+): ([\d.]+) requests per second", text, re.M)}
