"""The bundled Lua (drivers/, redis/, mysql/, ...) is found without flags: from the build
tree (the source folders are compiled into the binary's package.path) and after
`cmake --install` (<prefix>/share/cosocket/lua next to <prefix>/bin/cosocket)."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FOLDERS = ("redis", "mysql", "memcached", "dns", "websocket", "beanstalkd", "drivers")


def test_build_tree_package_path_has_the_driver_folders(run_lua_ok):
    out = run_lua_ok('print(package.path)').strip()
    for folder in FOLDERS:
        assert os.path.join(REPO, folder, "?.lua") in out.split(";"), (folder, out)


def test_installed_binary_finds_modules_under_its_prefix(build_dir_path, tmp_path, run_lua):
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", build_dir_path, "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    binary = prefix / "bin" / "cosocket"
    assert binary.is_file()
    # a module dropped where the drivers are installed is found with no -I flag
    lua_dir = prefix / "share" / "cosocket" / "lua" / "resty"
    lua_dir.mkdir(parents=True, exist_ok=True)
    (lua_dir / "installed_probe.lua").write_text('return { where = "installed tree" }\n')
    r = subprocess.run([str(binary), "-e", 'print(require("resty.installed_probe").where)'],
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "installed tree"
    assert "Sanitizer" not in r.stderr
