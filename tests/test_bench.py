"""bench/run: a smoke run of the benchmark harness (the smallest workload, --quick), checking
that it measures every client and writes a well-formed CSV, Markdown table and plot."""
import csv
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(os.path.dirname(HERE), "bench", "run")
COLUMNS = ["kind", "workload", "label", "concurrency", "client", "runs", "ops_per_run", "ops_median",
           "ops_min", "ops_max", "cpu_per_100k", "cosocket_ops_ratio", "cosocket_cpu_ratio", "value",
           "value_min", "unit"]


def test_bench_quick_echo(tmp_path, cosocket_bin):
    r = subprocess.run([sys.executable, BENCH, "--quick", "echo", "--out", str(tmp_path)],
                       env=dict(os.environ, COSOCKET_BIN=cosocket_bin), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    got = {(row["workload"], int(row["concurrency"]), row["client"]) for row in rows}
    assert got == {("echo", c, client) for c in (1, 50)
                   for client in ("cosocket", "nginx+ngx_lua", "C epoll client")}
    for row in rows:
        assert row["kind"] == "throughput"
        assert int(row["runs"]) == 2
        assert 0 < float(row["ops_min"]) <= float(row["ops_median"]) <= float(row["ops_max"])
        assert float(row["cpu_per_100k"]) > 0
        if row["client"] != "cosocket":
            assert float(row["cosocket_ops_ratio"]) > 0 and float(row["cosocket_cpu_ratio"]) > 0
    md = (tmp_path / "results.md").read_text()
    assert "| echo 32 B | 50 | **cosocket** |" in md and "load average" in md
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
