"""Shared helpers for the wrap_lockfile Python suite (meson test --suite python)."""
import os
import subprocess
import sys

import pytest

import wrap_lockfile

BUILD_PACKAGE = os.path.dirname(os.path.abspath(wrap_lockfile.__file__))

# The two file-object writers, for tests that hold for both.
WRITERS = [wrap_lockfile.atomic_write_no_lock, wrap_lockfile.atomic_write_lock]


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def put(path, content):
    with open(path, "w") as f:
        f.write(content)


@pytest.fixture
def d(tmp_path):
    """A fresh directory as str (the seed's tests use str paths)."""
    return str(tmp_path)


def entries(directory):
    """What is in a directory: the file names, sorted (leftovers show here)."""
    return sorted(os.listdir(directory))


def held_elsewhere(target, timeout=0):
    """Whether another process finds the lock on `target` held (tries once)."""
    code = ("import sys, wrap_lockfile as w\n"
            "try:\n"
            "    with w.mylockfile(sys.argv[1], timeout=%r): pass\n"
            "except w.AlreadyLocked: sys.exit(3)\n"
            "except w.LockTimeout: sys.exit(3)\n" % timeout)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(BUILD_PACKAGE))
    rc = subprocess.run([sys.executable, "-c", code, target], env=env).returncode
    assert rc in (0, 3), rc
    return rc == 3
