"""What tests/fuzz/record and tests/test_fuzz.py share: the drivers, their real servers, and
running one batch of fuzz_run.lua.

DRIVERS maps a driver to the tests/services.py service whose real conversations its corpus
holds. Environment:
    COSOCKET_FUZZ_SEED   the seed (default 21)
    COSOCKET_FUZZ_CASES  cases per driver (default: the per-driver budget of tests/test_fuzz.py)
    COSOCKET_FUZZ_CASE   run only this case number (a replay; with the seed of the failure)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LUA_DIR = os.path.join(HERE, "lua")
RUNNER = os.path.join(LUA_DIR, "fuzz_run.lua")
sys.path.insert(0, HERE)

DRIVERS = {"redis": "redis", "memcached": "memcached", "mysql": "mariadb", "dns": "knot",
           "websocket": "ws_echo", "beanstalkd": "beanstalkd"}


def parse_lines(out, tag):
    """The tab-separated lines of out that start with tag, split (without the tag)."""
    return [line.split("\t")[1:] for line in out.splitlines() if line.startswith(tag + "\t")]


def unescape(s):
    """The fields' \\xHH escapes back to bytes (Lua's fuzz_util.esc)."""
    out, i = bytearray(), 0
    while i < len(s):
        if s.startswith("\\x", i) and i + 4 <= len(s):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode()
            i += 1
    return bytes(out)


def scenario_names(binary, driver):
    out = subprocess.run([binary, "-I", LUA_DIR, "-e",
                          "local t = {} for k in pairs(require('fuzz_' .. ...).scenarios) do "
                          "t[#t + 1] = k end table.sort(t) print(table.concat(t, ' '))", driver],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"listing the {driver} scenarios failed: {out.stderr}")
    return out.stdout.split()


def runner_argv(binary, driver, mode, ctl_port, data_port, timeout_ms, real=None):
    argv = [binary, "-I", LUA_DIR, RUNNER, driver, mode, str(ctl_port), str(data_port),
            str(timeout_ms)]
    if real is not None:
        argv += [real[0], str(real[1])]
    return argv
