"""The bundled Lua (drivers/, redis/, mysql/, ...) is found without flags: from the build
tree (the build's binary reads the source dir from the cosocket-build-tree marker CMake
writes beside it) and after `cmake --install` (<prefix>/share/cosocket/lua next to
<prefix>/bin/cosocket, whatever the prefix). An installed or copied binary never looks at
the source tree. The install also lays out the man page and the examples."""
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FOLDERS = ("redis", "mysql", "memcached", "dns", "websocket", "beanstalkd", "drivers")
DEMO_LINES = ("redis GET -> hello from a cosocket",
              "50 light threads x 20 INCR -> demo:counter = 1000",
              "memcached multi-get -> demo:k1=value-1, demo:k2=value-2, demo:k3=value-3",
              "resty.redis pipeline -> OK, 42, 42, 1",
              "resty.memcached get -> hello, memcached",
              "resty.dns.resolver www.cosocket.test A -> 127.0.0.10, 127.0.0.11",
              "resty.mysql query -> answer=42",
              "resty.beanstalkd put/reserve -> true, send the report",
              "websocket via cosocket.listen -> HELLO FROM THE CLIENT",
              "demo done")


def run(argv, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)


def source_entries(path):
    """The package.path entries that point into the source tree."""
    return [e for e in path.split(";") if e.startswith(REPO + "/")]


@pytest.fixture(scope="module")
def installed(build_dir_path, tmp_path_factory):
    """`cmake --install` of the build under test into a fresh prefix."""
    prefix = tmp_path_factory.mktemp("install") / "prefix"
    r = run(["cmake", "--install", build_dir_path, "--prefix", prefix], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return prefix


def test_build_tree_package_path_has_the_driver_folders(run_lua_ok, build_dir_path):
    out = run_lua_ok('print(package.path)').strip()
    for folder in FOLDERS:
        assert os.path.join(REPO, folder, "?.lua") in out.split(";"), (folder, out)
    marker = os.path.join(build_dir_path, "cosocket", "cosocket-build-tree")
    with open(marker) as f:
        assert f.read().strip() == REPO


def test_a_copy_of_the_build_binary_does_not_use_the_source_tree(cosocket_bin, tmp_path):
    # only the build tree's binary has the marker beside it
    copy = tmp_path / "bin" / "cosocket"
    copy.parent.mkdir()
    shutil.copy2(cosocket_bin, copy)
    r = run([copy, "-e", "print(package.path)"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert source_entries(r.stdout.strip()) == [], r.stdout


def test_install_layout(installed):
    binary = installed / "bin" / "cosocket"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert not (installed / "bin" / "cosocket-build-tree").exists()
    lua = installed / "share" / "cosocket" / "lua" / "resty"
    for mod in ("redis.lua", "redis/cluster.lua", "mysql.lua", "memcached.lua", "dns/resolver.lua",
                "websocket/client.lua", "beanstalkd.lua", "cosocket/driver.lua"):
        assert (lua / mod).is_file(), mod
    for ex in os.listdir(os.path.join(REPO, "examples")):
        assert (installed / "share" / "doc" / "cosocket" / "examples" / ex).is_file(), ex
    man = (installed / "share" / "man" / "man1" / "cosocket.1").read_text()
    assert man.startswith(".TH COSOCKET 1 "), man[:200]
    for section in (".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"):
        assert section in man, section
    # every option of --help is a tagged paragraph of the page (one source: --help)
    help_text = run([binary, "--help"]).stdout
    tags = re.findall(r"^  ?(-\S*(?: \S+)*)", help_text, re.M)
    assert len(tags) >= 10 and "-e CODE" in tags, tags
    bold = [line[3:] for line in man.splitlines() if line.startswith(".B ")]
    assert [t.replace("-", "\\-") for t in tags] == bold


def test_man_page_renders(installed):
    # man (man-db) formats it without warnings: groff's -ww shows bad requests
    page = installed / "share" / "man" / "man1" / "cosocket.1"
    r = run(["man", "--warnings=all", "-l", page], env={**os.environ, "MANWIDTH": "80",
                                                        "MAN_KEEP_FORMATTING": "0"})
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
    text = re.sub(".\b", "", r.stdout)       # no bold/underline overstrikes
    assert "cosocket - run Lua scripts" in text, text[:500]
    assert "\nOPTIONS\n" in text and "\n       -e CODE\n" in text, text


def test_installed_binary_finds_modules_under_its_prefix(installed, tmp_path):
    binary = installed / "bin" / "cosocket"
    # a module dropped where the drivers are installed is found with no -I flag
    lua_dir = installed / "share" / "cosocket" / "lua" / "resty"
    (lua_dir / "installed_probe.lua").write_text('return { where = "installed tree" }\n')
    try:
        r = run([binary, "-e", 'print(require("resty.installed_probe").where)'], cwd=tmp_path)
    finally:
        (lua_dir / "installed_probe.lua").unlink()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "installed tree"
    assert "Sanitizer" not in r.stderr


def test_installed_binary_runs_the_demo_with_the_build_directory_moved_away(
        installed, build_dir_path, tmp_path, redis, memcached, knot, mariadb, beanstalkd):
    """The installed tree alone: the build directory renamed, the demo from
    share/doc/cosocket/examples, the drivers from share/cosocket/lua, against real servers."""
    binary = installed / "bin" / "cosocket"
    env = dict(os.environ)
    for svc in (redis, memcached, knot, mariadb, beanstalkd):
        env.update(svc.env())
    moved = build_dir_path.rstrip("/") + ".moved-by-test_install"
    os.rename(build_dir_path, moved)
    try:
        assert not os.path.exists(build_dir_path)
        r = run([binary, "-e", "print(package.path)"], cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        path = r.stdout.strip()
        assert source_entries(path) == [], path
        assert build_dir_path not in path
        lua = str(installed / "share" / "cosocket" / "lua")
        assert path.split(";")[:2] == [lua + "/?.lua", lua + "/?/init.lua"], path
        r = run([binary, "-e", 'print(package.searchpath("resty.redis", package.path))'],
                cwd=tmp_path, env=env)
        assert r.stdout.strip() == lua + "/resty/redis.lua", r.stdout + r.stderr
        demo = installed / "share" / "doc" / "cosocket" / "examples" / "demo.lua"
        r = run([binary, demo], cwd=tmp_path, env=env, timeout=90)
    finally:
        os.rename(moved, build_dir_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for want in DEMO_LINES:
        assert want in r.stdout, (want, r.stdout, r.stderr)
