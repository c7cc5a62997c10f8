"""Python peers for tools/bench.sh, each timed one operation at a time in one
interpreter (start-up and imports are not in the numbers).

  py_peers.py replace IMPL DIR SIZE {full|none} BUDGET_MS MAX_ITERS LIBWRAP
    ours          our C API through ctypes: wlf_write_content (lock + replace)
    floor         os.open(temp, O_CREAT|O_EXCL) + os.write + [os.fsync] +
                  os.rename + [fsync dir]: the interpreter's own floor
    atomicwrites  atomicwrites.atomic_write(overwrite=True) (always fsyncs
                  file and directory: "full" only)
    filelock+atomicwrites  filelock.FileLock(target.lock), then atomic_write
    binding       our Python binding: with wrap_lockfile.atomic_write(target, 'wb')
                  (lock + replace; needs PYTHONPATH=BUILD/bindings/python)
    binding-nolock    with wrap_lockfile.atomic_write_no_lock(target, 'wb')
    binding-content   wrap_lockfile.atomic_write_content_with_lock(target, data)
  py_peers.py lock IMPL DIR BUDGET_MS LIBWRAP
    ours          wlf_lock_acquire + wlf_lock_release through ctypes
    floor         os.open + fcntl.flock + os.unlink + unlock + os.close
    filelock      filelock.FileLock acquire + release
    portalocker   portalocker.Lock acquire + release
    binding       our Python binding: with wrap_lockfile.mylockfile(target)
Prints "MEDIAN_NS ITERS".
"""
import ctypes
import fcntl
import os
import statistics
import sys
import time


# The structs of <wrap_lockfile/wrap_lockfile.h>, ABI 1 (libwrap_lockfile.so.1).
class LockOptions(ctypes.Structure):
    _fields_ = [("has_timeout", ctypes.c_int), ("timeout", ctypes.c_double),
                ("backend", ctypes.c_int), ("keep_lock_file", ctypes.c_int),
                ("no_nesting", ctypes.c_int), ("interruptible", ctypes.c_int)]


class WriteOptions(ctypes.Structure):
    _fields_ = [("use_lock", ctypes.c_int), ("lock", LockOptions),
                ("temp_suffix", ctypes.c_char_p), ("durability", ctypes.c_int),
                ("hardlink_policy", ctypes.c_int), ("lock_only", ctypes.c_int),
                ("has_create_mode", ctypes.c_int), ("create_mode", ctypes.c_uint32)]


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("op", ctypes.c_char_p), ("path", ctypes.c_char * 4096),
                ("step", ctypes.c_int)]


def loop(op, budget_ms, max_iters):
    t = []
    end = time.monotonic_ns() + budget_ms * 1_000_000
    op()  # warm-up
    while len(t) < max_iters and (len(t) < 2 or time.monotonic_ns() < end):
        a = time.perf_counter_ns()
        op()
        t.append(time.perf_counter_ns() - a)
    print(int(statistics.median(t)), len(t))


def lib(path):
    w = ctypes.CDLL(path)
    w.wlf_write_content.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.POINTER(WriteOptions), ctypes.POINTER(Error)]
    w.wlf_lock_acquire.argtypes = [ctypes.c_char_p, ctypes.POINTER(LockOptions),
                                   ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Error)]
    w.wlf_lock_release.argtypes = [ctypes.c_void_p, ctypes.POINTER(Error)]
    return w


def check(rc, err):
    if rc != 0:
        raise OSError(rc, f"{err.op.decode()} {err.path.decode()}")


def replace(impl, d, size, dur, budget, max_iters, libpath):
    target = os.path.join(d, "target")
    data = b"x" * size
    full = dur == "full"
    if impl == "ours":
        w = lib(libpath)
        opt = WriteOptions()
        w.wlf_write_options_init(ctypes.byref(opt))
        opt.durability = 0 if full else 1
        err = Error()
        bt = target.encode()
        op = lambda: check(w.wlf_write_content(bt, data, size, ctypes.byref(opt), ctypes.byref(err)), err)
    elif impl == "floor":
        temp = target + "~~"

        def op():
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if full:
                os.fsync(fd)
            os.close(fd)
            os.rename(temp, target)
            if full:
                dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(dfd)
                os.close(dfd)
    elif impl in ("atomicwrites", "filelock+atomicwrites"):
        from atomicwrites import atomic_write
        if not full:
            raise SystemExit("atomicwrites always fsyncs: full only")

        def write():
            with atomic_write(target, mode="wb", overwrite=True) as f:
                f.write(data)
        if impl == "atomicwrites":
            op = write
        else:
            from filelock import FileLock
            lk = FileLock(target + ".lock")

            def op():
                with lk:
                    write()
    elif impl in ("binding", "binding-nolock"):
        import wrap_lockfile
        cm = wrap_lockfile.atomic_write if impl == "binding" else wrap_lockfile.atomic_write_no_lock

        def op():
            with cm(target, "wb", durability=dur) as f:
                f.write(data)
    elif impl == "binding-content":
        import wrap_lockfile
        op = lambda: wrap_lockfile.atomic_write_content_with_lock(target, data, durability=dur)
    else:
        raise SystemExit(f"unknown replace impl {impl}")
    loop(op, budget, max_iters)
    os.unlink(target)


def lock(impl, d, budget, libpath):
    target = os.path.join(d, "locktarget")
    lockp = target + ".lock"
    if impl == "ours":
        w = lib(libpath)
        opt = LockOptions()
        w.wlf_lock_options_init(ctypes.byref(opt))
        err = Error()
        h = ctypes.c_void_p()
        bt = target.encode()

        def op():
            check(w.wlf_lock_acquire(bt, ctypes.byref(opt), ctypes.byref(h), ctypes.byref(err)), err)
            check(w.wlf_lock_release(h, ctypes.byref(err)), err)
    elif impl == "floor":
        def op():
            fd = os.open(lockp, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.unlink(lockp)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    elif impl == "filelock":
        from filelock import FileLock
        lk = FileLock(lockp)

        def op():
            lk.acquire()
            lk.release()
    elif impl == "portalocker":
        import portalocker
        lk = portalocker.Lock(lockp, mode="a", timeout=60)

        def op():
            lk.acquire()
            lk.release()
    elif impl == "binding":
        import wrap_lockfile
        lk = wrap_lockfile.mylockfile(target)

        def op():
            with lk:
                pass
    else:
        raise SystemExit(f"unknown lock impl {impl}")
    loop(op, budget, 1_000_000)


def main(a):
    if len(a) == 8 and a[0] == "replace":
        replace(a[1], a[2], int(a[3]), a[4], int(a[5]), int(a[6]), a[7])
    elif len(a) == 5 and a[0] == "lock":
        lock(a[1], a[2], int(a[3]), a[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
