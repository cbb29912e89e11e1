"""examples/demo.lua (what scripts/demo runs) against the real servers of the test session."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_script(run_lua, redis, memcached, knot, mariadb, beanstalkd):
    env = {}
    for svc in (redis, memcached, knot, mariadb, beanstalkd):
        env.update(svc.env())
    r = run_lua(file=os.path.join(REPO, "examples", "demo.lua"), env=env, timeout=60)
    assert r.rc == 0, r.describe()
    for want in ("redis GET -> hello from a cosocket",
                 "50 light threads x 20 INCR -> demo:counter = 1000",
                 "memcached multi-get -> demo:k1=value-1, demo:k2=value-2, demo:k3=value-3",
                 "semaphore wait -> true",
                 'connect to a closed port -> nil, "connection refused"',
                 "resty.redis pipeline -> OK, 42, 42, 1",
                 "resty.memcached get -> hello, memcached",
                 "resty.dns.resolver www.cosocket.test A -> 127.0.0.10, 127.0.0.11",
                 "resty.mysql query -> answer=42",
                 "resty.mysql prepared -> 42, it's safe",
                 "resty.beanstalkd put/reserve -> true, send the report",
                 "websocket via cosocket.listen -> HELLO FROM THE CLIENT",
                 "demo done"):
        assert want in r.out, (want, r.describe())
