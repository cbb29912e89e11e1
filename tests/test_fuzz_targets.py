"""libFuzzer targets of the C++ parsers (cosocket/fuzz/): receiveuntil's matcher, the read
buffer, the ngx codecs (base64, URI escaping, args, HTTP dates) and the ngx.shared store,
built with clang (-fsanitize=fuzzer,address,undefined) in ./build-fuzz and run with a fixed
seed and a fixed number of runs from the seed corpus in cosocket/fuzz/corpus/. Each target
checks its own oracle (a plain search, a std::string model, round trips, the store's
invariants) and aborts on a difference; a crash, a sanitizer report or a leak fails here.

COSOCKET_FUZZ_RUNS=N multiplies every budget for a longer run on demand; the seed and the
crashing input are printed (libFuzzer writes it under the temporary directory).
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-fuzz")
SCALE = int(os.environ.get("COSOCKET_FUZZ_RUNS", "1"))
BUDGETS = {"until": 200000, "buffer": 30000, "codec": 40000, "shdict": 20000}


@pytest.fixture(scope="module")
def fuzz_build():
    env = dict(os.environ, CC="clang", CXX="clang++")
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        r = subprocess.run(["cmake", "-S", ROOT, "-B", BUILD, "-DCOSOCKET_FUZZ=ON",
                            "-DCOSOCKET_TESTS=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", BUILD, "-j2", "--target"] +
                       [f"{n}_fuzz" for n in BUDGETS], capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    return os.path.join(BUILD, "cosocket", "fuzz")


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_fuzz_target(fuzz_build, name, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(ROOT, "cosocket", "fuzz", "corpus", name), corpus)
    runs = BUDGETS[name] * SCALE
    argv = [os.path.join(fuzz_build, f"{name}_fuzz"), f"-runs={runs}", "-seed=1",
            "-max_len=1024", "-timeout=10", f"-artifact_prefix={tmp_path}/", str(corpus)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600 * SCALE,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    tail = r.stderr[-6000:]
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-"))]
    assert r.returncode == 0 and not crashes, f"{' '.join(argv)}\n{crashes}\n{tail}"
    assert f"Done {runs} runs" in r.stderr, tail
