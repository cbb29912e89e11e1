"""The core's layout (cosocket/README.md): cosocket/src/ has one folder per layer, and a
file includes only headers of its own layer or of the layers below it, so the
dependencies point one way: loop <- runtime <- net <- ngx <- cli. Also: every project
include names an existing header by its layer path, and no core file grows past the
size at which it starts holding several concepts."""
import os
import re

import conftest

SRC = os.path.join(conftest.REPO, "cosocket", "src")
LAYERS = ["loop", "runtime", "net", "ngx", "cli"]  # bottom first
MAX_LINES = 800
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def core_files():
    for dirpath, _, names in os.walk(SRC):
        for name in sorted(names):
            if name.endswith((".cc", ".h")):
                yield os.path.join(dirpath, name)


def layer_of(path):
    return os.path.relpath(path, SRC).split(os.sep)[0]


def test_src_has_exactly_the_layer_folders():
    entries = sorted(os.listdir(SRC))
    loose = [e for e in entries if os.path.isfile(os.path.join(SRC, e)) and e != "README.md"]
    assert loose == [], f"files outside the layer folders: {loose}"
    folders = [e for e in entries if os.path.isdir(os.path.join(SRC, e))]
    assert sorted(folders) == sorted(LAYERS), f"layer folders {folders}, expected {LAYERS}"


def test_includes_point_down_the_layers():
    upward, missing, bare = [], [], []
    for path in core_files():
        rel = os.path.relpath(path, SRC)
        mine = LAYERS.index(layer_of(path))
        with open(path) as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            if "/" not in inc:
                bare.append(f"{rel}: \"{inc}\"")
                continue
            target = inc.split("/")[0]
            if target not in LAYERS:
                bare.append(f"{rel}: \"{inc}\"")
                continue
            if not os.path.isfile(os.path.join(SRC, inc)):
                missing.append(f"{rel}: \"{inc}\"")
            if LAYERS.index(target) > mine:
                upward.append(f"{rel} ({LAYERS[mine]}) includes {inc} ({target})")
    assert upward == [], "includes against the layer order:\n" + "\n".join(upward)
    assert missing == [], "includes of headers that do not exist:\n" + "\n".join(missing)
    assert bare == [], "project includes must name their layer (\"layer/file.h\"):\n" + "\n".join(bare)


def test_no_core_file_past_the_size_limit():
    big = []
    for path in core_files():
        with open(path) as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            big.append(f"{os.path.relpath(path, SRC)}: {n} lines")
    assert big == [], f"core files over {MAX_LINES} lines (split them by concept):\n" + "\n".join(big)
