#!/usr/bin/env python3
"""Concurrency guarantees of the shim (docs/design.md, "The shim"), on the file system:

  torn reads     readers of a file rewritten by `cat A > f; cat B > f` see
                 only A or B under the shim, and torn content without it
  appenders      8 processes x 200 `echo >> f` keep every line, intact and
                 in order, under --lock-only and under --rule
  threads        4 threads rewriting one file serialize (their open..close
                 intervals never overlap); a reader (another process) only
                 sees whole contents
  fork           a forked child's exit (either way) never commits; the
                 opener's close does
  inherited fds  the lock goes with the opener's close even while children
                 still hold the temp and lock descriptors
  commit race    a thread closes (so commits) a descriptor of a file while
                 the thread that opened it opens the file again: no commit
                 twice, no write lost (1000 rounds)
  nesting        one thread opening a file it already holds does not
                 deadlock; both descriptors are one file, as without the
                 shim (each close writes where its offset is)
  exec           a pending replacement survives exec; the new image's exit
                 commits it
  dup            only the last close of the dups commits

usage: concurrency_test.py ATOMICALLY PRELOAD_OBJECT
Exit: 0 pass, 1 fail, 77 skip.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

failures = []
ATOMICALLY = ""
PY = sys.executable


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def shim(*opts):
    """Command prefix running under atomically with the given options."""
    return [ATOMICALLY, *opts, "--fsync", "none", "--"]


def run(cmd, name, timeout=30, **kw):
    """Runs cmd; returns its CompletedProcess, or None after reporting a failure."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        fail(f"{name}: timed out after {timeout} s (deadlock?)")
        return None
    if p.returncode != 0:
        fail(f"{name}: exit {p.returncode}\n  stdout: {p.stdout.strip()}\n  stderr: {p.stderr.strip()}")
        return None
    return p


def py(code):
    """A python3 command line running `code` (dedented), with argv after it."""
    return [PY, "-c", textwrap.dedent(code)]


# ---------------------------------------------------------------- torn reads

READER = """
    import os, sys
    f, a, b, stop = sys.argv[1:5]
    A, B = open(a, "rb").read(), open(b, "rb").read()
    reads = torn = 0
    while not os.path.exists(stop):
        with open(f, "rb") as fh:
            data = fh.read()
        reads += 1
        # f starts as A, so an empty or short read is torn too.
        torn += data != A and data != B
    print(reads, torn)
"""

TORN_SIZE = 4 << 20
TORN_ITERATIONS = 30


def torn_reads(d, prefix):
    """(reads, torn) summed over 2 readers while a shell loop rewrites f."""
    f, stop = os.path.join(d, "f"), os.path.join(d, "stop")
    write(f, read(os.path.join(d, "A")))
    if os.path.exists(stop):
        os.unlink(stop)
    readers = [subprocess.Popen(py(READER) + [f, "A", "B", stop], cwd=d, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    writer = ["bash", "-c", f'for i in $(seq {TORN_ITERATIONS}); do cat A > f; cat B > f; done']
    p = run(prefix + writer, "torn reads: writer loop", timeout=60, cwd=d)
    write(stop, b"")
    reads = torn = 0
    for r in readers:
        out, _ = r.communicate(timeout=30)
        n, t = map(int, out.split())
        reads, torn = reads + n, torn + t
    return (reads, torn) if p else None


def test_torn_reads(d):
    write(os.path.join(d, "A"), b"A" * 1024 + os.urandom(TORN_SIZE - 1024))
    write(os.path.join(d, "B"), b"B" * 1024 + os.urandom(TORN_SIZE - 1024))
    f = os.path.join(d, "f")
    plain = torn_reads(d, [])
    shimmed = torn_reads(d, shim("--rule", f))
    if not plain or not shimmed:
        return
    print(f"torn reads ({TORN_ITERATIONS} x 2 rewrites of {TORN_SIZE >> 20} MiB, 2 readers):")
    print(f"  plain      {plain[1]:5d} torn of {plain[0]:5d} reads")
    print(f"  atomically {shimmed[1]:5d} torn of {shimmed[0]:5d} reads")
    # Without the shim the setup must show the problem, or the zero below
    # would prove nothing.
    check(plain[1] > 0, "torn reads: the plain run showed no torn read; the check cannot tell")
    check(shimmed[0] > 0, "torn reads: the readers under the shim run never read")
    check(shimmed[1] == 0, f"torn reads: {shimmed[1]} torn reads under atomically")
    check(read(f) == read(os.path.join(d, "B")), "torn reads: final content is not B")


# ---------------------------------------------------------------- appenders

WRITERS, LINES = 8, 200


def check_appended(path, name):
    lines = read(path).decode(errors="replace").split("\n")
    check(lines[-1] == "", f"{name}: the file does not end with a newline")
    lines = lines[:-1]
    check(len(lines) == WRITERS * LINES, f"{name}: {len(lines)} lines, want {WRITERS * LINES}")
    seen = {i: [] for i in range(WRITERS)}
    for line in lines:
        m = re.fullmatch(r"writer (\d+) line (\d+)", line)
        if not m or int(m.group(1)) not in seen:
            fail(f"{name}: malformed line {line!r}")
            return
        seen[int(m.group(1))].append(int(m.group(2)))
    for i, got in seen.items():
        check(got == list(range(1, LINES + 1)), f"{name}: writer {i}'s lines are missing or out of order")


def test_appenders(d, mode):
    f = os.path.join(d, f"log-{mode}")
    write(f, b"")
    ino = os.stat(f).st_ino
    # Holding the original open keeps its inode number from being reused by
    # one of the 1600 replacements, which would fake "not replaced".
    original = open(f, "rb")
    loop = f'for j in $(seq {LINES}); do echo "writer $0 line $j" >> "$1"; done'
    procs = [subprocess.Popen(shim(mode, f) + ["bash", "-c", loop, str(i), f]) for i in range(WRITERS)]
    deadline = time.monotonic() + 50
    for p in procs:
        try:
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
            check(rc == 0, f"appenders {mode}: a writer exited {rc}")
        except subprocess.TimeoutExpired:
            p.kill()
            fail(f"appenders {mode}: a writer did not finish in time")
    check_appended(f, f"appenders {mode}")
    # Each mode did what it says: --rule replaced the file, --lock-only wrote in place.
    replaced = os.stat(f).st_ino != ino
    original.close()
    check(replaced == (mode == "--rule"), f"appenders {mode}: the file was {'' if replaced else 'not '}replaced")


# ---------------------------------------------------------------- threads

THREADS = """
    import os, subprocess, sys, threading, time
    f = sys.argv[1]
    SIZE, CHUNKS, ROUNDS, NTHREADS = 64 * 1024, 4, 50, 4

    def content(t, i):
        head = b"thread %d round %d\\n" % (t, i)
        return head + bytes([65 + t]) * (SIZE - len(head))

    intervals, errors = [], []

    def writer(t):
        for i in range(ROUNDS):
            data = content(t, i)
            with open(f, "wb", buffering=0) as fh:
                start = time.monotonic()
                step = SIZE // CHUNKS
                for k in range(CHUNKS):
                    fh.write(data[k * step:(k + 1) * step])
                    time.sleep(0)  # let the other threads try to get in
                end = time.monotonic()
            intervals.append((start, end, t))

    # The reader is another process: this one sees f as the file it is
    # writing (README: one coherent file), torn as without the shim.
    reader = subprocess.Popen([sys.executable, "-c", sys.argv[2], f, str(SIZE)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    # A barrier, not a race: the writers start once the reader has read.
    assert reader.stdout.readline() == b"ready\\n"
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(NTHREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    reads, bad = map(int, reader.communicate(b"stop")[0].split())
    intervals.sort()
    overlaps = sum(1 for a, b in zip(intervals, intervals[1:]) if b[0] < a[1])
    print(len(intervals), reads, bad, overlaps)
"""


THREAD_READER = """
    import select, sys
    f, size = sys.argv[1], int(sys.argv[2])
    def content(t, i):
        head = b"thread %d round %d\\n" % (t, i)
        return head + bytes([65 + t]) * (size - len(head))
    reads = bad = 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        with open(f, "rb") as fh:
            data = fh.read()
        reads += 1
        head = data.split(b"\\n", 1)[0]
        try:
            _, t, _, i = head.split()
            ok = data == content(int(t), int(i))
        except ValueError:
            ok = data == b"initial"
        bad += not ok
        if reads == 1:
            print("ready", flush=True)  # the writers start only now
    print(reads, bad)
"""


def test_threads(d):
    f = os.path.join(d, "threads")
    write(f, b"initial")
    p = run(shim("--rule", f) + py(THREADS) + [f, textwrap.dedent(THREAD_READER)], "threads", timeout=50)
    if not p:
        return
    writes, reads, bad, overlaps = map(int, p.stdout.split())
    print(f"threads: {writes} rewrites, {reads} reads by another process")
    check(writes == 200, f"threads: {writes} rewrites completed, want 200")
    check(reads > 0, "threads: the reader never read")
    check(bad == 0, f"threads: {bad} of {reads} reads were not one complete content")
    check(overlaps == 0, f"threads: {overlaps} open..close intervals of different threads overlapped")
    data = read(f)
    check(len(data) == 64 * 1024 and data.startswith(b"thread "), "threads: final content is not a complete one")


# ---------------------------------------------------------------- fork

FORK = """
    import os, subprocess, sys
    f, how = sys.argv[1:3]
    # The file system's view, from a process without the shim: this one
    # (and its child) see f as the file they write.
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    def content():
        return subprocess.run(["cat", f], stdout=subprocess.PIPE, env=plain, check=True).stdout
    def inode():
        return int(subprocess.run(["stat", "-c", "%i", f], stdout=subprocess.PIPE, env=plain, check=True).stdout)
    old, old_ino = content(), inode()
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"parent1 ")
    pid = os.fork()
    if pid == 0:
        os.write(fd, b"child ")
        if how == "_exit":
            os._exit(0)
        if how == "close":
            os.close(fd)
        sys.exit(0)  # normal exit: atexit handlers, stdio, the shim's destructor
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit("child failed: status %d" % status)
    if content() != old or inode() != old_ino:
        sys.exit("the child's exit committed: f = %r" % content())
    os.write(fd, b"parent2")
    if content() != old:
        sys.exit("committed before the parent's close")
    if open(f, "rb").read() != b"parent1 child parent2":
        sys.exit("the opener does not read its own pending content: %r" % open(f, "rb").read())
    os.close(fd)
    # The descriptor is shared, offset and all: the child's bytes sit
    # between the parent's in the one temp, committed at the parent's close.
    if content() != b"parent1 child parent2" or inode() == old_ino:
        sys.exit("after the parent's close: f = %r" % content())
"""


def test_fork(d):
    for how in ("_exit", "exit", "close"):
        f = os.path.join(d, f"fork-{how}")
        write(f, b"old")
        run(shim("--rule", f) + py(FORK) + [f, how], f"fork ({how} in the child)")


# ---------------------------------------------------------------- inherited fds

INHERIT = """
    import os, subprocess, sys, time
    f, how, probe = sys.argv[1], sys.argv[2], sys.argv[3:]
    def probe_ok():
        # Another writer that gives up at once if the lock is held.
        return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"opener")
    if how == "fork":
        # A plain fork: the child holds every descriptor, the lock's too.
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
    else:
        os.set_inheritable(fd, True)
        child = subprocess.Popen(["sleep", "60"], close_fds=False).pid
    try:
        held = []
        for n in os.listdir("/proc/%d/fd" % child):
            try:
                held.append(os.readlink("/proc/%d/fd/%s" % (child, n)))
            except FileNotFoundError:
                pass  # a close-on-exec descriptor going away right now
        if not os.path.exists("/proc/%d/fd/%d" % (child, fd)):
            sys.exit("the child does not hold the temp's descriptor; the check proves nothing")
        if how == "fork" and f + ".lock" not in held:
            sys.exit("the forked child does not hold the lock file: %r" % held)
        if probe_ok():
            sys.exit("the probe got the lock while the opener held it: it cannot tell")
        os.close(fd)
        if open(f, "rb").read() != b"opener":
            sys.exit("the opener's close did not commit")
        if not probe_ok():
            sys.exit("lock still held after the opener's close, while the child runs")
        if open(f, "rb").read() != b"probe":
            sys.exit("the probe's write did not commit")
        if os.waitpid(child, os.WNOHANG) != (0, 0):
            sys.exit("the child ended early; the check proves nothing")
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
"""


def test_inherited(d):
    for how in ("fork", "exec"):
        f = os.path.join(d, f"inherit-{how}")
        write(f, b"old")
        probe = shim("--rule", f, "--timeout", "0") + [PY, "-c", f"open({f!r}, 'w').write('probe')"]
        run(shim("--rule", f) + py(INHERIT) + [f, how] + probe, f"lock release with a {how}ed child holding fds")


# ---------------------------------------------------------------- commit race

COMMIT_RACE = """
    import os, sys, threading
    f, n = sys.argv[1], int(sys.argv[2])
    handed = []
    go, closed = threading.Event(), threading.Event()
    def closer():
        while True:
            go.wait(); go.clear()
            if not handed:
                return
            os.close(handed.pop())
            closed.set()
    t = threading.Thread(target=closer)
    t.start()
    for i in range(n):
        a = os.open(f, os.O_WRONLY | os.O_APPEND)
        os.write(a, b"a")
        handed.append(a)
        go.set()  # the other thread closes a, committing it, while ...
        b = os.open(f, os.O_WRONLY | os.O_APPEND)  # ... this one opens f again
        os.write(b, b"b")
        os.close(b)
        closed.wait(); closed.clear()
    go.set()
    t.join()
"""


def test_commit_race(d):
    f = os.path.join(d, "commit-race")
    write(f, b"")
    # With fsync the commit (outside the table's lock) takes long enough for
    # the second open to meet it every time.
    cmd = [ATOMICALLY, "--rule", f, "--fsync", "full", "--"] + py(COMMIT_RACE) + [f, "1000"]
    if run(cmd, "commit race", timeout=60):
        data = read(f)
        check(len(data) == 2000 and data.count(b"a") == 1000,
              f"commit race: {len(data)} bytes ({data.count(b'a')} a, {data.count(b'b')} b), want 1000 of each")


# ---------------------------------------------------------------- nesting

NESTED = """
    import sys
    f, order = sys.argv[1:3]
    first = open(f, "w")
    first.write("first")
    second = open(f, "w")  # the same thread already holds f's lock
    second.write("second")
    if order == "inner-last":
        first.close(); second.close()
    else:
        second.close(); first.close()
"""


def test_nested(d):
    # Buffered: each close writes at offset 0 of the one file, so the plain
    # run leaves b"second" and b"firstd".
    for order, want in (("inner-last", b"second"), ("outer-last", b"firstd")):
        plain = os.path.join(d, f"nested-{order}-plain")
        write(plain, b"old")
        run(["timeout", "10"] + py(NESTED) + [plain, order], f"nested opens ({order}), plainly")
        check(read(plain) == want, f"nested opens ({order}), plainly: f = {read(plain)!r}, want {want!r}")
        f = os.path.join(d, f"nested-{order}")
        write(f, b"old")
        if run(["timeout", "10"] + shim("--rule", f) + py(NESTED) + [f, order], f"nested opens ({order})"):
            check(read(f) == want, f"nested opens ({order}): f = {read(f)!r}, want {want!r}")


# ---------------------------------------------------------------- exec

def test_exec(d):
    f = os.path.join(d, "exec")
    write(f, b"old")
    ino = os.stat(f).st_ino
    # The new image checks that nothing was committed at the exec.
    # (read by a process without the shim: the new image sees f as its own)
    image = ("import os, subprocess, sys; os.write(3, b'via exec'); "
             f"sys.exit(subprocess.run(['env', '-u', 'LD_PRELOAD', 'cat', {f!r}], "
             "stdout=subprocess.PIPE).stdout != b'old')")
    script = f'exec 3>"$1"; exec {PY} -c "{image}"'
    if run(shim("--rule", f) + ["bash", "-c", script, "bash", f], "exec survival"):
        check(read(f) == b"via exec", f"exec survival: f = {read(f)!r}")
        check(os.stat(f).st_ino != ino, "exec survival: f was written in place, not replaced")


# ---------------------------------------------------------------- dup

DUP = """
    import os, subprocess, sys
    f = sys.argv[1]
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    def content():  # the file system's view (this process reads its own pending file)
        return subprocess.run(["cat", f], stdout=subprocess.PIPE, env=plain, check=True).stdout
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    fd2 = os.dup(fd)
    os.write(fd, b"one ")
    os.close(fd)
    if content() != b"old":
        sys.exit("committed at the first of two closes: f = %r" % content())
    os.write(fd2, b"two")
    os.close(fd2)
    if open(f, "rb").read() != b"one two":
        sys.exit("after the last close: f = %r" % open(f, "rb").read())
"""


def test_dup(d):
    f = os.path.join(d, "dup")
    write(f, b"old")
    run(shim("--rule", f) + py(DUP) + [f], "dup counting")


def main():
    global ATOMICALLY
    if len(sys.argv) != 3:
        print(__doc__)
        return 1
    ATOMICALLY = os.path.realpath(sys.argv[1])
    os.environ["WRAP_LOCKFILE_PRELOAD"] = os.path.realpath(sys.argv[2])
    # The test controls these; inherited values would change the expectations.
    for var in ("WRAP_LOCKFILE_RULES", "WRAP_LOCKFILE_LOCK_ONLY", "WRAP_LOCKFILE_EXCLUDE", "WRAP_LOCKFILE_CONFIG",
                "WRAP_LOCKFILE_TIMEOUT", "WRAP_LOCKFILE_FSYNC", "WRAP_LOCKFILE_LOG", "LD_PRELOAD"):
        os.environ.pop(var, None)
    for tool in ("bash", "timeout", "sleep", "cat"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode:
            print(f"SKIP: {tool} not found")
            return 77

    with tempfile.TemporaryDirectory(prefix="wlf-conc-") as d:
        d = os.path.realpath(d)
        for name, fn in (("torn reads", test_torn_reads),
                         ("appenders --lock-only", lambda d: test_appenders(d, "--lock-only")),
                         ("appenders --rule", lambda d: test_appenders(d, "--rule")),
                         ("threads", test_threads), ("fork", test_fork), ("inherited fds", test_inherited),
                         ("commit race", test_commit_race), ("nesting", test_nested), ("exec", test_exec), ("dup", test_dup)):
            start = time.monotonic()
            before = len(failures)
            fn(d)
            status = "ok" if len(failures) == before else "FAILED"
            print(f"-- {name}: {status} ({time.monotonic() - start:.1f} s)", flush=True)
        leftovers = sorted(n for n in os.listdir(d) if n.endswith(".lock") or n.startswith(".") or "tmp" in n)
        check(not leftovers, f"files left behind: {leftovers}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all concurrency checks passed")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
