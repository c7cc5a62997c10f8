"""Counters: N threads or processes x M locked increments must give exactly N x M;
one writer object shared by threads."""
import errno
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


def test_one_writer_entered_by_two_threads_commits_each_ones_own_content(d):
    # Each thread's exit ends its own entry, not the one entered last.
    t = os.path.join(d, "t")
    with open(t, "w") as f:
        f.write("old")
    writer = w.atomic_write_no_lock(t)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen, errors = {}, []

    def a():
        try:
            with writer as f:
                f.write("from a")
                a_in.set()
                b_in.wait(30)
            with open(t) as f:
                seen["after a"] = f.read()
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            a_out.set()

    def b():
        try:
            a_in.wait(30)
            try:
                with writer as f:
                    f.write("from b, ")
                    b_in.set()
                    a_out.wait(30)
                    f.write("whole")
            except OSError as e:  # begun before a's commit: refused (unlocked)
                seen["b refused"] = e.errno
            with open(t) as f:
                seen["after b"] = f.read()
        except BaseException as e:
            errors.append(e)
        finally:
            b_in.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == [] and seen == {"after a": "from a", "b refused": errno.ESTALE, "after b": "from a"}
    assert entries(d) == ["t"]


def test_a_writer_entered_once_may_be_exited_by_another_thread_but_not_when_ambiguous(d):
    t = os.path.join(d, "t")
    writer = w.atomic_write_no_lock(t)
    f = writer.__enter__()
    f.write("one")
    th = threading.Thread(target=writer.__exit__, args=(None, None, None))
    th.start()
    th.join(60)
    with open(t) as g:
        assert g.read() == "one"
    # Two entries of this thread: another thread's exit cannot tell which.
    f1, f2 = writer.__enter__(), writer.__enter__()
    f1.write("first")
    f2.write("second")
    caught = []

    def other():
        try:
            writer.__exit__(None, None, None)
        except RuntimeError as e:
            caught.append(e)

    th = threading.Thread(target=other)
    th.start()
    th.join(60)
    assert len(caught) == 1 and "did not enter it" in str(caught[0])
    with open(t) as g:
        assert g.read() == "one"
    writer.__exit__(None, None, None)  # this thread's last: f2
    with open(t) as g:
        assert g.read() == "second"
    with pytest.raises(OSError) as refused:  # f1, begun before f2's commit
        writer.__exit__(None, None, None)
    assert refused.value.errno == errno.ESTALE
    with open(t) as g:
        assert g.read() == "second"
    assert entries(d) == ["t"]
