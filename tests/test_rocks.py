"""rocks/cosocket-drivers-*.rockspec: one rock for every driver. `luarocks make` (Debian's
luarocks) installs it into a temporary tree; every module then loads on cosocket from that
tree (LUA_PATH pointed at it, a copy of the binary that has no bundled drivers), resty.redis
from the rock talks to a real redis, and the same rock works inside nginx + ngx_lua
(Debian's libnginx-mod-http-lua: what OpenResty users run)."""
import glob
import os
import re
import shutil
import socket
import subprocess
import urllib.request

import pytest

import services

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FOLDERS = ("redis", "mysql", "memcached", "dns", "websocket", "beanstalkd", "drivers")


def rockspec():
    specs = glob.glob(os.path.join(REPO, "rocks", "cosocket-drivers-*-1.rockspec"))
    assert len(specs) == 1, specs
    return specs[0]


def rock_modules():
    """{module: file} of the rockspec's build.modules."""
    with open(rockspec()) as f:
        text = f.read()
    return dict(re.findall(r'^\s*\["([\w.]+)"\]\s*=\s*"([^"]+)",', text, re.M))


def source_modules():
    mods = {}
    for folder in FOLDERS:
        for path in glob.glob(os.path.join(REPO, folder, "resty", "**", "*.lua"), recursive=True):
            rel = os.path.relpath(path, os.path.join(REPO, folder))
            mods[rel[:-4].replace("/", ".")] = os.path.relpath(path, REPO)
    return mods


def test_rockspec_lists_every_driver_module():
    assert rock_modules() == source_modules()


def test_rockspec_version_is_the_project_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        version = re.search(r"project\(cosocket VERSION (\S+)", f.read()).group(1)
    assert os.path.basename(rockspec()) == f"cosocket-drivers-{version}-1.rockspec"
    with open(rockspec()) as f:
        assert f'version = "{version}-1"' in f.read()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tree = tmp_path_factory.mktemp("rocks") / "tree"
    if not shutil.which("luarocks"):
        pytest.fail("luarocks not found: install Debian's luarocks (scripts/bootstrap does)")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    r = subprocess.run(["luarocks", "make", "--tree", str(tree), rockspec()], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is now installed in" in r.stdout, r.stdout
    after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    assert after.stdout == before.stdout, "luarocks make left files in the source tree"
    return tree


def lua_dir(tree):
    return str(tree / "share" / "lua" / "5.1")


def test_luarocks_installs_every_module(tree):
    for mod in rock_modules():
        assert os.path.isfile(os.path.join(lua_dir(tree), *mod.split(".")) + ".lua"), mod
    r = subprocess.run(["luarocks", "list", "--tree", str(tree), "--porcelain"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split()[:2] == ["cosocket-drivers", os.path.basename(rockspec())[17:-9]], r.stdout


@pytest.fixture
def bare_cosocket(cosocket_bin, tmp_path):
    """A copy of the binary with no build-tree marker beside it and an empty
    ../share/cosocket/lua (so not even an install under /usr/local counts): the only drivers
    it finds are the rock's."""
    copy = tmp_path / "bin" / "cosocket"
    copy.parent.mkdir()
    shutil.copy2(cosocket_bin, copy)
    (tmp_path / "share" / "cosocket" / "lua").mkdir(parents=True)
    return str(copy)


REQUIRE_ALL = r'''
local tree = arg[1]
local n = 0
for mod in arg[2]:gmatch("[^,]+") do
    local file = package.searchpath(mod, package.path)
    if not file or file:sub(1, #tree) ~= tree then
        error(mod .. " found at " .. tostring(file) .. ", not in the rock's tree", 0)
    end
    assert(require(mod), mod)
    n = n + 1
end
local redis = require "resty.redis"
local r = redis:new()
r:set_timeout(2000)
assert(r:connect(arg[3], tonumber(arg[4])))
assert(r:set("rock:k", "through the rock"))
ngx.say(n, " modules; redis get -> ", (r:get("rock:k")))
'''


def test_every_module_requires_on_cosocket_from_the_tree(tree, bare_cosocket, redis, tmp_path):
    script = tmp_path / "require_all.lua"
    script.write_text(REQUIRE_ALL)
    d = lua_dir(tree)
    mods = sorted(rock_modules())
    env = dict(os.environ, LUA_PATH=f"{d}/?.lua;{d}/?/init.lua;;", HOME=str(tmp_path))
    r = subprocess.run([bare_cosocket, str(script), d, ",".join(mods), redis.host, str(redis.port)],
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"{len(mods)} modules; redis get -> through the rock"


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    lua_package_path "{lua}/?.lua;{lua}/?/init.lua;;";
    server {{
        listen 127.0.0.1:{port};
        location / {{
            content_by_lua_block {{
                local redis = require "resty.redis"
                local r = redis:new()
                r:set_timeout(2000)
                assert(r:connect("{redis_host}", {redis_port}))
                assert(r:set("rock:ngx", "on nginx"))
                ngx.say(package.searchpath("resty.redis", package.path), " ", (r:get("rock:ngx")))
                r:set_keepalive()
            }}
        }}
    }}
}}
"""


def test_the_rock_runs_on_nginx_with_ngx_lua(tree, redis, tmp_path):
    nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin")
    assert nginx and os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so"), \
        "nginx + ngx_lua not found: install nginx libnginx-mod-http-lua (scripts/bootstrap does)"
    port = services.free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, lua=lua_dir(tree), port=port,
                                      redis_host=redis.host, redis_port=redis.port))
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        services.wait_until(lambda: socket.create_connection(("127.0.0.1", port), 0.2).close() or True,
                            10, "nginx", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            body = resp.read().decode().strip()
    except Exception:
        print((tmp_path / "error.log").read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        proc.wait(10)
    assert body == f"{lua_dir(tree)}/resty/redis.lua on nginx", body
