"""Seeded hostile-server fuzzing of every driver (issue 21, item 4).

tests/fuzz/corpus/DRIVER/*.conv hold real conversations of resty.redis, resty.memcached,
resty.mysql (handshake, login, result sets, OK/ERR, a prepared statement), resty.dns.resolver
(UDP, TCP, a truncated UDP answer retried over TCP), resty.websocket.client and
resty.beanstalkd with the servers of tests/services.py (re-record: tests/fuzz/record). For each
driver one cosocket process (tests/fuzz/lua/fuzz_run.lua) runs a batch of cases against
tests/fuzz/servers.py's FuzzServer, which replays the server side of a conversation with one
seeded mutation (tests/fuzz/mutate.py: truncation then close / stall / RST, byte flips,
inserted garbage, absurd length fields, tiny writes, a decoy datagram).

Each case must end within 3 socket timeouts plus slack, with a result or with nil/false and a
non-empty string error (a Lua error raised by a driver fails the test); the unmutated and the
tiny-write cases must give exactly the real server's result. After every case the connection
goes through set_keepalive: when the driver accepts it, the next connect takes it from the pool
and the driver's sentinel request on it must get the sentinel's reply (a connection pooled in
the middle of a reply fails here; the one exception, counted but not failed: an inserted run of
whole, well-formed RESP replies, which no redis client can tell from the real ones -- the
replies after it answer the wrong commands and the last one may arrive only after the
connection was pooled and taken again). After the batch the same driver talks to the real server
(a scenario, then the sentinel on the pooled connection). The runtime must exit 0 with no
sanitizer or leak-check report (run_lua).

COSOCKET_FUZZ_SEED=S (default 21), COSOCKET_FUZZ_CASES=N (cases per driver, default BUDGET),
COSOCKET_FUZZ_CASE=K (only case K: the replay of a failure, which prints its seed, case number
and bytes), COSOCKET_FUZZ_VERBOSE=1 (a line per case, with -s).
"""
import collections
import os

import pytest

from fuzz import harness  # noqa: F401  (puts tests/fuzz on sys.path)
import corpus
import mutate
from servers import FuzzServer

SEED = int(os.environ.get("COSOCKET_FUZZ_SEED") or 21)
BUDGET = {"redis": 160, "memcached": 160, "mysql": 160, "dns": 160, "websocket": 160,
          "beanstalkd": 160}
VERBOSE = bool(os.environ.get("COSOCKET_FUZZ_VERBOSE"))
TIMEOUT_MS = 500          # every socket timeout of the fuzz client (room for ASan on a loaded machine)
SLACK_MS = 2000           # on top of 3 timeouts per case (a stall, a reconnect, the sentinel)
NO_SENTINEL = (b"\xff no sentinel request \xff" * 2, b"")
POOL_REFUSED_WHEN_CLEAN = {("websocket", "close")}   # a close frame was sent: not reusable


def _cases():
    only = os.environ.get("COSOCKET_FUZZ_CASE")
    return int(only) if only else None


@pytest.mark.parametrize("driver", list(harness.DRIVERS))
def test_fuzz(driver, request, run_lua):
    svc = request.getfixturevalue(harness.DRIVERS[driver])
    convs = corpus.load(driver)
    assert len(convs) >= 4, f"corpus of {driver} missing: run tests/fuzz/record {driver}"
    sentinel = convs["sentinel"].streams["tcp0"][-1] if driver != "dns" else NO_SENTINEL
    sentinel_result = convs["sentinel"].result if driver != "dns" else None
    n = int(os.environ.get("COSOCKET_FUZZ_CASES") or BUDGET[driver])
    only = _cases()
    numbers = [only] if only else list(range(1, n + 1))
    plans = {}

    def plan_for(k):
        plans[k] = mutate.plan(driver, convs, SEED, k)
        return plans[k]

    srv = FuzzServer(driver, convs, numbers, plan_for, sentinel)
    try:
        r = run_lua(None, driver, "fuzz", srv.ctl_port, srv.port, TIMEOUT_MS, svc.host, svc.port,
                    file=harness.RUNNER, flags=["-I", harness.LUA_DIR],
                    timeout=120 + len(numbers) * 3)
    finally:
        srv.stop()
    assert r.rc == 0, r.describe()
    assert not srv.errors, srv.errors

    lines = {int(f[0]): f[1:] for f in harness.parse_lines(r.out, "CASE")}
    assert sorted(lines) == sorted(numbers), f"cases printed: {sorted(lines)}\n{r.describe()}"
    limit = 3 * TIMEOUT_MS + SLACK_MS
    failures, stats = [], collections.Counter()
    for k in numbers:
        ms, status, detail, pool = lines[k]
        p = plans[k]
        conv = convs[p.scenario]
        stats[(p.kind, status)] += 1
        stats["pool " + pool.split(":")[0]] += 1
        why = []
        if VERBOSE:
            print(f"case {k} {p.scenario} {p.kind} {p.stream}/{p.turn} {p.note} offset={p.offset}"
                  f" -> {status} {ms} ms {detail[:100]} pool={pool[:60]}")
        if status not in ("ok", "err"):
            why.append(f"the driver {'raised' if status == 'raised' else 'failed without an error string'}")
        if int(ms) > limit:
            why.append(f"took {ms} ms (limit {limit})")
        if p.expect_same and (status, detail) != ("ok", conv.result):
            why.append(f"not the real server's result {conv.result!r}")
        kind = pool.split(":", 1)[0]
        if kind in ("raised", "bad", "err", "reopen"):
            why.append("the pool check failed")
        elif kind == "ok" and pool != "ok:" + sentinel_result and p.injects_reply:
            stats["pool out of step after an injected whole reply (undetectable)"] += 1
        elif kind == "ok" and pool != "ok:" + sentinel_result:
            why.append(f"a pooled connection answered the sentinel wrongly "
                       f"(want {sentinel_result!r}): corrupted pool")
        if p.expect_same and driver != "dns":
            want = ("refused" if (driver, p.scenario) in POOL_REFUSED_WHEN_CLEAN
                    else "ok:" + sentinel_result)
            if pool != want:
                why.append(f"after a clean conversation the pool check gave {pool!r}, not {want!r}")
        if why:
            original = conv.streams[p.stream][p.turn][1] if p.stream else None
            failures.append(
                f"case {k}: {'; '.join(why)}\n  client: status={status} ms={ms} detail={detail}"
                f"\n  pool={pool}\n{p.describe(original)}\n  replay: COSOCKET_FUZZ_SEED={SEED} "
                f"COSOCKET_FUZZ_CASE={k} /usr/bin/python3 -m pytest -q tests/test_fuzz.py -k {driver}")

    real = harness.parse_lines(r.out, "REAL")
    assert len(real) >= 2, r.describe()
    for name, status, detail, pool in real:
        if status != "ok" or not pool.startswith("n/a" if driver == "dns" else "ok:"):
            failures.append(f"the real server after the batch: {name}: {status} {detail} pool={pool}")

    if len(numbers) >= 50:
        # the mutations reach the client: some cases fail, some still succeed
        assert any(st == "err" for _, st, _, _ in lines.values()), stats
        assert any(st == "ok" for _, st, _, _ in lines.values()), stats

    print(f"\n{driver}: seed {SEED}, {len(numbers)} cases, "
          + ", ".join(f"{k}={v}" for k, v in sorted(stats.items(), key=str)))
    if failures:
        pytest.fail(f"{len(failures)} of {len(numbers)} {driver} fuzz cases failed (seed {SEED}):\n"
                    + "\n\n".join(failures[:12]), pytrace=False)
