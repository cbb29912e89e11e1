"""The Debian package (CPack's DEB generator, CMakeLists.txt): built from the build under
test with cpack in a temporary directory, its control data and contents checked, installed
with a real `dpkg -i` (as root, removed afterwards; else unpacked with dpkg-deb -x into a
temporary root), and /usr/bin/cosocket from it runs resty.redis against a real redis."""
import fcntl
import os
import re
import subprocess

import pytest

LOCK = "/tmp/cosocket-test-deb.lock"     # one dpkg -i of cosocket at a time on the machine
DRIVER_SCRIPT = r'''
local redis = require "resty.redis"
local memcached = require "resty.memcached"
ngx.say("redis from ", package.searchpath("resty.redis", package.path))
local r = redis:new()
r:set_timeout(2000)
assert(r:connect(arg[1], tonumber(arg[2])))
assert(r:set("deb:k", "from the .deb"))
ngx.say("redis get -> ", (r:get("deb:k")))
r:close()
local m = memcached:new()
m:set_timeout(2000)
assert(m:connect(arg[3], tonumber(arg[4])))
assert(m:set("deb:m", "memcached too"))
ngx.say("memcached get -> ", (m:get("deb:m")))
m:close()
ngx.say("cjson ", require("cjson").encode({ 1 }), ", lrucache ", type(require("resty.lrucache").new))
'''


def run(argv, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def version(build_dir):
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        m = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(\S+)$", f.read(), re.M)
    assert m, "no CMAKE_PROJECT_VERSION in CMakeCache.txt"
    return m.group(1)


@pytest.fixture(scope="module")
def deb(build_dir_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    r = run(["cpack", "-G", "DEB", "--config", os.path.join(build_dir_path, "CPackConfig.cmake"),
             "-B", out], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    assert debs == [f"cosocket_{version(build_dir_path)}_amd64.deb"], (debs, r.stdout)
    return out / debs[0]


def field(info, name):
    m = re.search(rf"^ {name}: (.*)$", info, re.M)
    assert m, (name, info)
    return m.group(1)


def test_control_fields(deb, build_dir_path):
    r = run(["dpkg-deb", "-I", deb])
    assert r.returncode == 0, r.stderr
    assert field(r.stdout, "Package") == "cosocket"
    assert field(r.stdout, "Version") == version(build_dir_path)
    assert field(r.stdout, "Architecture") == "amd64"
    depends = [d.strip().split()[0] for d in field(r.stdout, "Depends").split(",")]
    # dpkg-shlibdeps found the shared libraries' packages; the two Lua libraries are added
    for pkg in ("libc6", "libevent-2.1-7", "libluajit2-5.1-2", "libssl3", "libpcre2-8-0",
                "lua-cjson", "lua-resty-lrucache", "libedit2"):
        assert pkg in depends, (pkg, depends)
    # the line editor is BSD libedit: nothing of GNU readline (GPL) is pulled in
    assert not [d for d in depends if "readline" in d], depends


def test_contents(deb):
    r = run(["dpkg-deb", "-c", deb])
    assert r.returncode == 0, r.stderr
    files = {line.split()[-1] for line in r.stdout.splitlines() if line}
    for f in ("./usr/bin/cosocket", "./usr/share/man/man1/cosocket.1",
              "./usr/share/cosocket/lua/resty/redis.lua", "./usr/share/cosocket/lua/resty/mysql.lua",
              "./usr/share/cosocket/lua/resty/memcached.lua",
              "./usr/share/cosocket/lua/resty/dns/resolver.lua",
              "./usr/share/cosocket/lua/resty/websocket/client.lua",
              "./usr/share/cosocket/lua/resty/beanstalkd.lua",
              "./usr/share/cosocket/lua/resty/cosocket/driver.lua",
              "./usr/share/doc/cosocket/examples/demo.lua"):
        assert f in files, (f, sorted(files))
    assert not any("cosocket-build-tree" in f or "unit" in f for f in files), sorted(files)


def installed_version():
    r = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "cosocket"])
    return r.stdout.strip() if r.returncode == 0 else ""


@pytest.fixture
def installed_cosocket(deb, tmp_path):
    """/usr/bin/cosocket from `dpkg -i` (root), removed afterwards; without root the package
    unpacked into a temporary root by dpkg-deb -x (the same files, no maintainer scripts)."""
    if os.geteuid() != 0:
        root = tmp_path / "root"
        r = run(["dpkg-deb", "-x", deb, root])
        assert r.returncode == 0, r.stderr
        yield root / "usr" / "bin" / "cosocket", str(root / "usr" / "share" / "cosocket" / "lua")
        return
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert installed_version() in ("", "un", "rc"), \
            "a cosocket package is already installed; remove it first: dpkg -r cosocket"
        r = run(["dpkg", "-i", deb], timeout=300)
        try:
            assert r.returncode == 0, r.stdout + r.stderr
            assert installed_version() == "ii"
            files = run(["dpkg", "-L", "cosocket"]).stdout.split()
            assert "/usr/bin/cosocket" in files
            yield "/usr/bin/cosocket", "/usr/share/cosocket/lua"
        finally:
            r = run(["dpkg", "-r", "cosocket"], timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr
            assert not os.path.exists("/usr/bin/cosocket")


def test_installed_package_runs_drivers_against_real_servers(installed_cosocket, redis, memcached,
                                                             tmp_path):
    binary, lua_dir = installed_cosocket
    script = tmp_path / "drivers.lua"
    script.write_text(DRIVER_SCRIPT)
    r = run([binary, script, redis.host, redis.port, memcached.host, memcached.port],
            cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        f"redis from {lua_dir}/resty/redis.lua",
        "redis get -> from the .deb",
        "memcached get -> memcached too",
        "cjson [1], lrucache function",
    ], r.stdout + r.stderr
    r = run([binary, "-e", "print(package.path)"], cwd=tmp_path)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert r.returncode == 0 and repo + "/" not in r.stdout, r.stdout
