"""The Docker path of the suite (docs/services.md): docker-compose.yml describes every server
of tests/services.py with a healthcheck (so `docker compose up --wait` works) and no
`version:` key; `scripts/test --external` runs tests against servers that are already up,
named by the COSOCKET_* variables, and starts none for them; a test needing something the
variables don't give (a unix socket, an unset service) fails naming the variable to set.
The servers here are started by tests/services.py and handed over through the variables,
as docker compose's would be."""
import os
import re
import socket
import subprocess

import pytest
import yaml

import services

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = "/usr/bin/python3"


@pytest.fixture(scope="module")
def compose():
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def test_compose_has_no_version_key(compose):
    assert "version" not in compose, "Compose v2 warns about `version:`; remove it"


def test_compose_describes_every_service(compose):
    assert set(compose["services"]) == set(services.NAMES)


@pytest.mark.parametrize("name", services.NAMES)
def test_every_service_has_a_healthcheck(compose, name):
    check = compose["services"][name].get("healthcheck")
    assert check, f"{name}: no healthcheck, `docker compose up --wait` can't wait for it"
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2, check
    assert check.get("retries", 0) >= 10 and check.get("interval"), check


def test_compose_comment_and_docs_name_every_variable(compose):
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        head = f.read().split("services:")[0]
    with open(os.path.join(REPO, "docs", "services.md")) as f:
        doc = f.read()
    assert "docker compose up -d --wait" in head and "scripts/test --external" in head
    for name in services.NAMES:
        var = services.ENV_VARS[name]
        assert var + "=" in head, var
        assert f"`{name}`" in doc, f"docs/services.md does not list the service {name}"
        assert f"`{var}`" in doc, f"docs/services.md does not list {var}"
        assert f"`{var}_PORT`" in doc or f"{var}_PORT" in doc, f"{var}_PORT (compose) undocumented"
    for var in services.SOCKET_ENV_VARS.values():
        assert f"`{var}`" in doc, var
    assert "`COSOCKET_EXTERNAL`" in doc and "scripts/test --external" in doc


CONTAINER_PORTS = {"redis": 6379, "memcached": 11211, "knot": 53, "ws_echo": 8765,
                   "beanstalkd": 11300}


def local_check(name, test, port):
    """A compose healthcheck command run here, its container port replaced by a local one:
    bash /dev/tcp, python and kdig take the port in the command; redis-cli gets -p."""
    kind, argv = test[0], list(test[1:])
    cport = CONTAINER_PORTS[name]
    if kind == "CMD-SHELL":
        argv = ["sh", "-c", argv[0]]
    argv = [re.sub(rf"(/dev/tcp/127\.0\.0\.1/|-p ){cport}\b", rf"\g<1>{port}", a)
            .replace(f"8765)", f"{port})") for a in argv]
    if argv[0] == "redis-cli":
        argv[1:1] = ["-p", str(port)]
    if argv[0] == "python":
        argv[0] = PY
    assert str(port) in " ".join(argv), (argv, "the port was not replaced")
    return subprocess.run(argv, capture_output=True, timeout=10).returncode


@pytest.mark.parametrize("name", sorted(CONTAINER_PORTS))
def test_healthchecks_pass_on_the_real_server_and_fail_on_a_closed_port(
        compose, name, request, tcp_port_closed):
    """The commands of the healthchecks (all but MariaDB's image script), run here against the
    real servers: they pass on the server and fail on a port with nothing behind it."""
    svc = request.getfixturevalue(name)
    test = compose["services"][name]["healthcheck"]["test"]
    assert local_check(name, test, svc.port) == 0, test
    assert local_check(name, test, tcp_port_closed) != 0, test


def redis_cmd(svc, *args):
    with socket.create_connection((svc.host, svc.port), timeout=2) as s:
        req = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        s.sendall(req.encode())
        return s.recv(4096)


def external_env(**variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSOCKET_")
           or k in ("COSOCKET_BUILD_DIR", "COSOCKET_BIN", "COSOCKET_CHECK_LEAKS")}
    env.update(COSOCKET_EXTERNAL="1", **variables)
    return env


def pytest_child(args, env):
    return subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_driver_test_runs_against_the_external_redis(redis):
    redis_cmd(redis, "DEL", "rt:s")
    r = pytest_child(["tests/test_redis.py::test_reply_types"],
                     external_env(COSOCKET_REDIS=redis.addr))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\b1 passed\b", r.stdout), r.stdout
    # the test wrote into the redis named by the variable
    assert redis_cmd(redis, "GET", "rt:s") == b"$1\r\nv\r\n"


def test_a_test_needing_the_unix_socket_names_the_variable(redis):
    r = pytest_child(["tests/test_redis.py::test_unix_socket"],
                     external_env(COSOCKET_REDIS=redis.addr))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "set COSOCKET_REDIS_SOCKET to a socket path" in r.stdout, r.stdout
    assert "nil|nil" not in r.stdout
    # with the variable, the same test passes
    r = pytest_child(["tests/test_redis.py::test_unix_socket"],
                     external_env(COSOCKET_REDIS=redis.addr, COSOCKET_REDIS_SOCKET=redis.path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_unset_service_is_not_started_but_named():
    r = pytest_child(["tests/test_memcached.py::test_set_get_add_replace_append_prepend"],
                     external_env())
    assert r.returncode == 1, r.stdout + r.stderr
    assert "set COSOCKET_MEMCACHED=host:port" in r.stdout, r.stdout


def test_scripts_test_external_runs_without_bootstrap(redis, build_dir_path):
    redis_cmd(redis, "DEL", "rt:s")
    env = external_env(COSOCKET_REDIS=redis.addr,
                       COSOCKET_BUILD_DIR=os.path.relpath(build_dir_path, REPO))
    r = subprocess.run([os.path.join(REPO, "scripts", "test"), "--external",
                        "tests/test_redis.py::test_reply_types"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "bootstrap" not in out, out      # no apt, no scripts/bootstrap
    assert "summary: 1 passed, 0 failed" in out, out
    assert f"ALL PASSED (external servers, ./{os.path.relpath(build_dir_path, REPO)})" in out, out
    assert redis_cmd(redis, "GET", "rt:s") == b"$1\r\nv\r\n"


def test_dockerfile_is_multi_stage_with_debian_packages_and_libedit():
    """The Dockerfile (docs/packaging.md): a build stage and a runtime stage on
    debian:bookworm-slim; every package its build stage installs is a Debian package (apt
    knows it); the line editor is libedit (BSD), never GNU readline."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        text = f.read()
    assert "ARG DEBIAN=debian:bookworm-slim" in text
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${DEBIAN}", "${DEBIAN}"]
    assert "readline" not in text
    install = re.search(r"apt-get install -y -q --no-install-recommends \\\n(.*?)\n &&", text, re.S)
    packages = install.group(1).replace("\\", " ").split()
    assert "libedit-dev" in packages and "dpkg-dev" in packages, packages
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                       capture_output=True, text=True, timeout=60)
    known = set(re.findall(r"^Package: (\S+)$", r.stdout, re.M))
    assert known == set(packages), (sorted(set(packages) - known), r.stderr)
    assert "cpack -G DEB" in text and "/tmp/cosocket.deb" in text
    assert 'ENTRYPOINT ["cosocket"]' in text
