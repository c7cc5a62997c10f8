#!/bin/sh
# venv_install.sh SOURCE_ROOT [PYTHON] — what README "Python" tells users, offline:
#   PYTHON -m venv --system-site-packages V && V/bin/pip install --no-build-isolation .
# then `import wrap_lockfile` from the venv, a replacement through it, and a
# look at what pip installed: the package and its extension, nothing of the
# C library, headers, preload object or launcher. The source tree is copied
# first: meson-python writes a file into the tree it builds.
set -eu
src=$1
py=${2:-/usr/bin/python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wlf-venv.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$py" -c 'import mesonpy, pybind11' 2>/dev/null || { echo "SKIP: meson-python or pybind11 missing for $py (python3-mesonpy, python3-pybind11)"; exit 77; }
"$py" -m venv --system-site-packages "$tmp/venv" || { echo "SKIP: $py -m venv failed (python3-venv missing?)"; exit 77; }

mkdir "$tmp/src"
tar -C "$src" --exclude=./.git --exclude=./build --exclude='./build-*' --exclude='./.mesonpy*' -cf - . | tar -C "$tmp/src" -xf -

# Offline: no index at all; the build requirements are Debian's.
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Relative paths for ccache, so that repeated runs in new temp dirs hit.
export CCACHE_BASEDIR="$tmp"
cd "$tmp/src"
"$tmp/venv/bin/pip" install -q --no-build-isolation . || { echo "FAIL: pip install --no-build-isolation . failed"; exit 1; }

cd "$tmp"
"$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import os, sys, importlib.metadata as md
import wrap_lockfile
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(wrap_lockfile.__file__)
assert where.startswith(venv + os.sep), "imported %s, not the venv's copy" % where

target = os.path.join(os.path.dirname(venv), "t.txt")
with wrap_lockfile.atomic_write(target) as f:
    f.write("from the venv\n")
assert open(target).read() == "from the venv\n"
assert sorted(os.listdir(os.path.dirname(target))) == ["src", "t.txt", "venv"], os.listdir(os.path.dirname(target))

files = [str(p) for p in md.files("wrap_lockfile")]
bad = [p for p in files if not (p.startswith("wrap_lockfile/") or p.startswith("wrap_lockfile-"))]
assert not bad, "pip installed more than the package: %s" % bad
names = {os.path.basename(p) for p in files}
for need in ("__init__.py", "_errors.py", "_modes.py", "_paths.py", "_waiting.py", "_wrap_lockfile.pyi", "py.typed"):
    assert need in names, "missing %s in %s" % (need, files)
assert any(n.startswith("_wrap_lockfile.") and n.endswith(".so") for n in names), files
for banned in ("libwrap_lockfile", "wrap_lockfile.h", "preload", "atomically", ".pc"):
    assert not any(banned in p for p in files), "%s in %s" % (banned, files)
print("venv install ok:", ", ".join(sorted(files)))
PY
