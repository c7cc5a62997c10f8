"""mylockfile / FcntlFileLock: timeouts, exclusion, lock-file cleanup, GIL, signals, fork."""
import contextlib
import errno
import os
import signal
import sys
import threading
import time

import pytest

import wrap_lockfile as w
from conftest import entries, held_elsewhere


def test_lock_file_exists_while_held_and_is_removed_after(d):
    f = os.path.join(d, "testfile.txt")
    with w.mylockfile(f) as lock:
        assert isinstance(lock, w.FcntlFileLock)
        assert os.path.exists(f + ".lock")
        assert held_elsewhere(f)
    assert entries(d) == []
    assert not held_elsewhere(f)


def test_lock_released_and_removed_on_exception(d):
    f = os.path.join(d, "f")
    with pytest.raises(ZeroDivisionError):
        with w.mylockfile(f):
            1 / 0
    assert entries(d) == []
    assert not held_elsewhere(f)


def test_second_lock_object_in_the_same_thread_times_out(d):
    f = os.path.join(d, "f")
    with w.mylockfile(f):
        start = time.monotonic()
        with pytest.raises(w.LockTimeout) as info:
            with w.FcntlFileLock(f, timeout=0.1):
                pass
        elapsed = time.monotonic() - start
        assert 0.08 <= elapsed < 0.5, elapsed
        e = info.value
        assert e.errno == errno.ETIMEDOUT and e.filename == f + ".lock"
        assert e.holder == os.getpid()
        assert isinstance(e, w.mylockfile_other_exceptions) and isinstance(e, w.myLockTimeout)


@pytest.mark.parametrize("timeout", [0, 0.0, -1])
def test_timeout_zero_or_negative_is_already_locked(d, timeout):
    f = os.path.join(d, "f")
    with w.mylockfile(f):
        start = time.monotonic()
        with pytest.raises(w.AlreadyLocked) as info:
            with w.mylockfile(f, timeout=timeout):
                pass
        assert time.monotonic() - start < 0.5
        assert info.value.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        assert info.value.filename == f + ".lock"
    with w.mylockfile(f, timeout=0):
        pass


def test_same_object_entered_twice_excludes_itself(d):
    lock = w.mylockfile(os.path.join(d, "f"), timeout=0)
    with lock:
        with pytest.raises(w.AlreadyLocked):
            lock.__enter__()
        assert lock.is_locked()
    assert not lock.is_locked()


def test_lock_failed_carries_errno_and_filename(d):
    missing = os.path.join(d, "no", "such", "dir", "f")
    with pytest.raises(w.LockFailed) as info:
        with w.mylockfile(missing, timeout=1):
            pass
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == missing + ".lock"


def test_threads_serialize_and_a_shared_object_locks_per_thread(d):
    f = os.path.join(d, "f")
    shared = w.mylockfile(f)  # one object used by every thread (thread-local, as the seed's)
    inside, peak, log = [0], [0], []
    guard = threading.Lock()

    def worker(i):
        for _ in range(20):
            with shared:
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                log.append(i)
                time.sleep(0.0005)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert peak[0] == 1 and len(log) == 80
    assert entries(d) == []


def test_untimed_wait_ends_when_the_holder_releases(d):
    f = os.path.join(d, "f")
    holder = w.mylockfile(f)
    holder.acquire()
    got = threading.Event()

    def waiter():
        with w.mylockfile(f):
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not got.wait(0.2)
    holder.release()
    assert got.wait(10)
    t.join(10)


def test_gil_is_released_while_waiting_for_a_lock(d):
    f = os.path.join(d, "f")
    ticks = [0]
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    with w.mylockfile(f):
        t = threading.Thread(target=ticker)
        t.start()
        time.sleep(0.05)
        before = ticks[0]
        start = time.monotonic()
        with pytest.raises(w.LockTimeout):
            w.mylockfile(f, timeout=0.5).acquire()  # this thread waits inside the core
        assert time.monotonic() - start >= 0.4
        stop.set()
        t.join()
    # The ticker ran all the while (it needs the GIL for every tick).
    assert ticks[0] - before > 50, ticks[0] - before


class Interrupted(Exception):
    pass


def _raise_interrupted(signum, frame):
    raise Interrupted()


@contextlib.contextmanager
def _sigalrm(handler, after):
    """SIGALRM runs handler `after` seconds from now; put back on the way out."""
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, after)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_untimed_wait_is_interrupted_by_a_signal_handler_that_raises(d):
    f = os.path.join(d, "f")

    calls = [0]

    def counting(signum, frame):
        calls[0] += 1

    with w.mylockfile(f):
        with _sigalrm(_raise_interrupted, 0.1):
            start = time.monotonic()
            with pytest.raises(Interrupted):
                w.mylockfile(f).acquire()  # like fcntl.flock: Ctrl-C gets through
            assert time.monotonic() - start < 5
        # A handler that does not raise: the wait goes on (PEP 475).
        with _sigalrm(counting, 0.05):
            with pytest.raises(w.LockTimeout):
                w.mylockfile(f, timeout=0.3).acquire()
    assert calls[0] == 1


@pytest.mark.parametrize("how", ["lock", "atomic_write", "content"])
def test_timed_wait_is_interrupted_by_a_signal_handler_that_raises(d, how):
    # The seed polls in Python (time.sleep): Ctrl-C ends a wait with a
    # timeout too, long before the timeout, and nothing is written.
    f = os.path.join(d, "f")
    waits = {
        "lock": lambda: w.mylockfile(f, timeout=60).acquire(),
        "atomic_write": lambda: w.atomic_write(f, lock_timeout=60).__enter__().write("new"),
        "content": lambda: w.atomic_write_content_with_lock(f, "new", timeout=60),
    }
    with w.mylockfile(f):
        with _sigalrm(_raise_interrupted, 0.1):
            start = time.monotonic()
            with pytest.raises(Interrupted):
                waits[how]()
            assert time.monotonic() - start < 30
    assert entries(d) == []
    assert not held_elsewhere(f)


def test_forked_child_does_not_release_the_parents_lock(d):
    f = os.path.join(d, "f")
    lock = w.mylockfile(f)
    lock.acquire()
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: lets go of its copy in every way it can, then exits normally
        try:
            os.close(r)
            try:
                lock.release()
            except Exception:
                pass
            del lock
            os.write(wfd, b"x")
        finally:
            os._exit(0)
    os.close(wfd)
    assert os.read(r, 1) == b"x"
    os.close(r)
    assert os.waitpid(pid, 0)[1] == 0
    assert os.path.exists(f + ".lock")
    assert held_elsewhere(f)
    lock.release()
    assert not held_elsewhere(f)
    assert entries(d) == []


def _fs_type(path):
    best, kind = "", ""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def test_gil_is_released_during_the_commit(d):
    """With a switch interval too long to ever expire, another thread runs
    only where this one releases the GIL: a tick between the commit's start
    and its return proves the commit released it (fsync of 32 MiB)."""
    if _fs_type(os.path.realpath(d)) in ("tmpfs", "ramfs"):
        pytest.skip("fsync on %s returns at once: nothing to observe" % d)
    t = os.path.join(d, "big")
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0)  # gives the GIL back at once

    old = sys.getswitchinterval()
    seen = False
    th = threading.Thread(target=ticker)
    th.start()
    try:
        sys.setswitchinterval(1000)
        for _ in range(5):
            cm = w.atomic_write(t, "wb")
            f = cm.__enter__()
            f.write(b"x" * (32 << 20))
            f.flush()
            start = time.monotonic()
            cm.__exit__(None, None, None)
            end = time.monotonic()
            if any(start < tick < end for tick in ticks):
                seen = True
                break
    finally:
        sys.setswitchinterval(old)
        stop.set()
        th.join()
    assert seen
    assert os.path.getsize(t) == 32 << 20


@pytest.mark.parametrize("backend", ["flock", "auto"])
def test_private_backends_exclude_the_public_lock(d, backend):
    """The private module's "flock" and "auto" (the shim's default, which is
    flock on a local file system) lock <target>.lock against mylockfile in
    another process."""
    from wrap_lockfile import _wrap_lockfile as core
    f = os.path.join(d, "f")
    lock = core.Lock(f, timeout=0, backend=backend)
    try:
        assert lock.held
        assert os.path.exists(f + ".lock")
        assert held_elsewhere(f)
    finally:
        lock.release()
    assert entries(d) == []


def test_private_backend_names_are_checked(d):
    from wrap_lockfile import _wrap_lockfile as core
    with pytest.raises(ValueError, match="backend"):
        core.Lock(os.path.join(d, "f"), backend="fcntl")
    assert entries(d) == []


@pytest.mark.parametrize("length", [250, 251, 255])
def test_lockfile_attribute_names_the_lock_file_of_a_long_name(d, length):
    # README "Locks": a name of 251 to 255 bytes has a shortened lock file;
    # lock.lockfile (and the AlreadyLocked it causes) name that very file.
    f = os.path.join(d, "é" * 5 + "L" * (length - 10))
    assert len(os.fsencode(os.path.basename(f))) == length
    with w.mylockfile(f) as lock:
        assert entries(d) == [os.path.basename(lock.lockfile)]
        assert os.path.exists(lock.lockfile)
        with pytest.raises(w.AlreadyLocked) as info:
            w.mylockfile(f, timeout=0).acquire()
        assert info.value.filename == lock.lockfile
    assert (length <= 250) == (lock.lockfile == f + ".lock")
    assert entries(d) == []


def test_exit_without_the_lock_is_a_clear_error_and_releases_nothing(d):
    # The object is thread-local: __exit__ in a thread that did not enter
    # names the lock (it was an IndexError) and leaves the holder's lock alone.
    f = os.path.join(d, "f")
    lock = w.mylockfile(f)
    lock.__enter__()
    errors = []

    def other_thread():
        for end in (lambda: lock.__exit__(None, None, None), lock.release):
            try:
                end()
            except BaseException as e:
                errors.append(e)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(30)
    assert [type(e) for e in errors] == [RuntimeError, RuntimeError]
    assert all(lock.lockfile in str(e) for e in errors)
    assert held_elsewhere(f)
    lock.__exit__(None, None, None)
    assert not held_elsewhere(f)
    assert entries(d) == []
