"""The project's licence and its binary's: LICENSE is BSD-2-Clause, and the `cosocket` binary
links no GPL-only library (each library `ldd` resolves is looked up in its Debian package's
copyright file; docs/licences.md lists them)."""
import os
import re
import subprocess
from functools import lru_cache

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def test_licence_file_is_bsd_2_clause():
    text = open(os.path.join(REPO, "LICENSE")).read()
    assert text.startswith("BSD 2-Clause License"), text[:80]
    assert "the cosocket authors" in text
    assert "1. Redistributions of source code must retain" in text
    assert "2. Redistributions in binary form must reproduce" in text
    assert "3." not in text  # no advertising / endorsement clause: two clauses
    assert "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS \"AS IS\"" in text


def linked_libraries(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return out, libs


@lru_cache(maxsize=None)
def package_of(path):
    real = os.path.realpath(path)
    for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
        p = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.split(":")[0].strip()
    raise AssertionError(f"no Debian package owns {path}")


def main_licence(copyright_text):
    """The licence of a Debian copyright file's first Files stanza (DEP-5), or None."""
    if not copyright_text.startswith("Format:"):
        return None
    m = re.search(r"^Files:.*?^License: *([^\n]+)", copyright_text, re.M | re.S)
    return m.group(1).strip() if m else None


def gpl_only(copyright_text):
    lic = main_licence(copyright_text)
    if lic is not None:
        return bool(re.match(r"GPL", lic)) and "exception" not in lic.lower()
    # not machine-readable (glibc, gcc's runtime): LGPL or GPL with the runtime exception
    if re.search(r"Lesser General Public License|RUNTIME LIBRARY EXCEPTION", copyright_text):
        return False
    return "General Public License" in copyright_text


def test_gpl_only_detection_on_known_packages():
    # the check itself: GPL-3+ packages (bash and coreutils are essential, always there; readline
    # where installed) are caught, libedit (BSD) and glibc (LGPL) are not
    def text(pkg):
        return open(f"/usr/share/doc/{pkg}/copyright").read()
    assert gpl_only(text("bash")) and gpl_only(text("coreutils"))
    if os.path.exists("/usr/share/doc/libreadline8/copyright"):
        assert gpl_only(text("libreadline8"))
    assert not gpl_only(text("libedit2"))
    assert not gpl_only(text("libc6"))
    assert not gpl_only(text("libstdc++6"))


def test_binary_links_no_gpl_library(cosocket_bin):
    out, libs = linked_libraries(cosocket_bin)
    assert "libreadline" not in out, out
    assert "libedit" in out, out
    offenders = []
    for name, path in sorted(libs.items()):
        pkg = package_of(path)
        with open(f"/usr/share/doc/{pkg}/copyright", errors="replace") as f:
            text = f.read()
        if gpl_only(text):
            offenders.append(f"{name} ({pkg}: {main_licence(text)})")
    assert not offenders, f"GPL-only libraries linked: {offenders}\n{out}"


def test_licences_doc_lists_every_linked_library(cosocket_bin):
    doc = open(os.path.join(REPO, "docs", "licences.md")).read()
    _, libs = linked_libraries(cosocket_bin)
    for name, path in libs.items():
        pkg = package_of(path)
        assert pkg.split(":")[0] in doc, f"{pkg} ({name}) is not in docs/licences.md"
