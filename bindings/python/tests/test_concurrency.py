"""Counters: N threads or processes x M locked increments must give exactly N x M."""
import os
import subprocess
import sys
import threading

import pytest

import wrap_lockfile as w
from conftest import BUILD_PACKAGE, entries

N, M = 4, 50


def increment_r_plus(counter):
    # Read, modify and write under one lock: the replacement's own.
    with w.atomic_write_lock(counter, "r+", lock_timeout=60) as f:
        value = int(f.read() or "0")
        f.seek(0)
        f.write(str(value + 1))
        f.truncate()


def increment_mylockfile(counter):
    # The seed's pattern: mylockfile around a read and an unlocked replacement.
    with w.mylockfile(counter, timeout=60):
        with open(counter) as f:
            value = int(f.read() or "0")
        w.atomic_write_content_with_lock(counter, str(value + 1), use_lock=False)


def increment_no_lock_inside(counter):
    with w.mylockfile(counter):
        with open(counter) as f:
            value = int(f.read() or "0")
        with w.atomic_write_no_lock(counter) as f:
            f.write(str(value + 1))


INCREMENTS = {"r_plus": increment_r_plus, "mylockfile": increment_mylockfile, "no_lock_inside": increment_no_lock_inside}


@pytest.mark.parametrize("how", sorted(INCREMENTS))
def test_thread_counter_is_exact(d, how):
    counter = os.path.join(d, "counter")
    with open(counter, "w") as f:
        f.write("0")
    go = threading.Barrier(N)
    errors = []

    def worker():
        try:
            go.wait()
            for _ in range(M):
                INCREMENTS[how](counter)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with open(counter) as f:
        assert int(f.read()) == N * M
    assert entries(d) == ["counter"]


WORKER = r"""
import os, sys
sys.path.insert(0, sys.argv[4])
import test_concurrency as t
go = int(sys.argv[3])
os.read(go, 1)  # the start barrier: EOF when the parent closes its end
for _ in range(int(sys.argv[2])):
    t.INCREMENTS[sys.argv[5]](sys.argv[1])
"""


@pytest.mark.parametrize("how", sorted(INCREMENTS))
def test_process_counter_is_exact(d, how):
    counter = os.path.join(d, "counter")
    with open(counter, "w") as f:
        f.write("0")
    r, wfd = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(BUILD_PACKAGE))
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, counter, str(M), str(r), here, how],
                              pass_fds=(r,), env=env) for _ in range(N)]
    os.close(r)
    os.close(wfd)
    assert [p.wait(180) for p in procs] == [0] * N
    with open(counter) as f:
        assert int(f.read()) == N * M
    assert entries(d) == ["counter"]
