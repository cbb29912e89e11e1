"""The C++ GoogleTest units, run through CTest in the build directory under test
(<repo>/<$COSOCKET_BUILD_DIR or build>; scripts/test runs it for build and build-asan)."""
import os
import re
import subprocess

import pytest

import conftest


def test_gtest_units_via_ctest():
    build = conftest.build_dir()
    if not os.path.isfile(os.path.join(build, "CTestTestfile.cmake")):
        pytest.fail(f"no CTest build at {build}: run scripts/bootstrap (or set COSOCKET_BUILD_DIR)",
                    pytrace=False)
    try:
        r = subprocess.run(["ctest", "--test-dir", build, "--output-on-failure", "--no-tests=error",
                            "-j", str(os.cpu_count() or 2), "--timeout", "300"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"ctest did not finish in {e.timeout} s", pytrace=False)
    output = r.stdout + r.stderr
    report = conftest.sanitizer_report(output)
    assert not report, f"sanitizer report in the unit tests:\n{report}\n{output[-8000:]}"
    assert r.returncode == 0, f"ctest failed (rc={r.returncode}):\n{output[-8000:]}"
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", output)
    assert m, f"no CTest summary line:\n{output[-4000:]}"
    assert int(m.group(2)) == 0 and int(m.group(3)) >= 1, m.group(0)
    print(m.group(0))
