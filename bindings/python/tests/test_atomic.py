"""atomic_write_no_lock / atomic_write_lock / atomic_write_content_with_lock."""
import errno
import io
import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
import traceback

import pytest

import wrap_lockfile as w
from conftest import entries, held_elsewhere

WRITERS = [w.atomic_write_no_lock, w.atomic_write_lock]


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def put(path, content):
    with open(path, "w") as f:
        f.write(content)


@pytest.mark.parametrize("writer", WRITERS)
def test_text_replace_commits_only_at_the_end(d, writer):
    t = os.path.join(d, "t.txt")
    put(t, "old")
    ino = os.stat(t).st_ino
    with writer(t) as f:
        f.write("Line 1\n")
        f.writelines(["Line 2\n", "Line 3\n"])
        f.flush()
        assert read(t) == "old"  # invisible to readers until the block ends
    assert read(t) == "Line 1\nLine 2\nLine 3\n"
    assert os.stat(t).st_ino != ino  # a new inode: replaced, not rewritten
    assert entries(d) == ["t.txt"]


@pytest.mark.parametrize("writer", WRITERS)
def test_exception_leaves_the_target_untouched_and_nothing_behind(d, writer):
    t = os.path.join(d, "t.txt")
    put(t, "old")
    with pytest.raises(KeyError):
        with writer(t) as f:
            f.write("new")
            f.flush()
            raise KeyError("boom")
    assert read(t) == "old"
    assert entries(d) == ["t.txt"]
    assert not held_elsewhere(t)  # the lock went with the exception


def test_exception_on_a_new_file_creates_nothing(d):
    t = os.path.join(d, "new.txt")
    with pytest.raises(RuntimeError):
        with w.atomic_write(t) as f:
            f.write("x")
            raise RuntimeError()
    assert entries(d) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_binary_and_encoding(d, writer):
    b = os.path.join(d, "f.bin")
    with writer(b, mode="wb") as f:
        assert isinstance(f, io.BufferedIOBase)
        f.write(b"\x00\x01\x02\xff")
    assert read(b, "rb") == b"\x00\x01\x02\xff"
    t = os.path.join(d, "f.txt")
    with writer(t, encoding="utf-8") as f:
        f.write("Hello 世界 🌍")
    assert read(t, "rb") == "Hello 世界 🌍".encode("utf-8")
    with writer(t, encoding="latin-1", errors="replace") as f:
        f.write("a€b")
    assert read(t, "rb") == b"a?b"
    with writer(t, newline="\r\n") as f:
        f.write("a\nb\n")
    assert read(t, "rb") == b"a\r\nb\r\n"
    with pytest.raises(UnicodeEncodeError):
        with writer(t, encoding="ascii") as f:
            f.write("é")
    assert read(t, "rb") == b"a\r\nb\r\n"
    with writer(b, mode="wb", buffering=0) as f:
        assert isinstance(f, io.FileIO)
        f.write(b"raw")
    assert read(b, "rb") == b"raw"
    assert sorted(entries(d)) == ["f.bin", "f.txt"]


# mode -> (initial content or None, what the block does, expected result)
MODES = {
    "w": ("old", lambda f: f.write("new"), "new"),
    "wb": ("old", lambda f: f.write(b"new"), "new"),
    "a": ("old", lambda f: f.write("+a"), "old+a"),
    "ab": ("old", lambda f: f.write(b"+a"), "old+a"),
    "r+": ("old", lambda f: (f.read() == "old" or 1 / 0, f.seek(0), f.write("N")), "Nld"),
    "rb+": ("old", lambda f: (f.seek(1), f.write(b"X")), "oXd"),
    "w+": ("old", lambda f: (f.read() == "" or 1 / 0, f.write("abc"), f.seek(0), f.read() == "abc" or 1 / 0), "abc"),
    "a+": ("old", lambda f: (f.seek(0), f.read() == "old" or 1 / 0, f.write("+"), f.seek(0),
                             f.read() == "old+" or 1 / 0), "old+"),
    "x": (None, lambda f: f.write("ex"), "ex"),
    "x+": (None, lambda f: (f.write("ex"), f.seek(0), f.read() == "ex" or 1 / 0), "ex"),
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_modes(d, writer, mode):
    t = os.path.join(d, "t")
    initial, body, expected = MODES[mode]
    if initial is not None:
        put(t, initial)
    with writer(t, mode) as f:
        assert f.mode == mode
        assert f.name == t
        assert f.writable()
        assert f.readable() == ("+" in mode)
        body(f)
    assert read(t) == expected
    assert entries(d) == ["t"]


@pytest.mark.parametrize("writer", WRITERS)
def test_file_object_methods(d, writer):
    t = os.path.join(d, "t")
    put(t, "0123456789")
    with writer(t, "r+") as f:
        assert f.tell() == 0
        assert f.read(3) == "012"
        assert f.tell() == 3
        f.seek(0, io.SEEK_END)
        f.write("AB")
        f.flush()
        assert os.fstat(f.fileno()).st_size == 12
        f.seek(5)
        f.truncate()
        assert f.seekable()
    assert read(t) == "01234"
    with writer(t, "w") as f:
        with pytest.raises(io.UnsupportedOperation):
            f.read()  # 'w' is write-only, as with open()


def test_name_is_the_final_target_in_its_directory(d):
    real_dir = os.path.join(d, "real")
    os.mkdir(real_dir)
    target = os.path.join(real_dir, "app.conf")
    put(target, "x")
    link = os.path.join(d, "link.conf")
    os.symlink(os.path.join("real", "app.conf"), link)
    with w.atomic_write(link) as f:
        assert f.name == target
        assert os.path.dirname(f.name) == real_dir
        f.write("y")
    assert os.path.islink(link) and os.readlink(link) == os.path.join("real", "app.conf")
    assert read(target) == "y"
    assert entries(real_dir) == ["app.conf"]
    rel = os.path.relpath(os.path.join(d, "n.txt"))
    with w.atomic_write(rel) as f:  # relative paths are absolute afterwards
        assert f.name == os.path.join(d, "n.txt")


@pytest.mark.parametrize("mode", ["x", "x+", "xb"])
def test_exclusive_modes_fail_on_existing_targets(d, mode):
    t = os.path.join(d, "t")
    put(t, "old")
    for path in (t,):
        with pytest.raises(FileExistsError) as info:
            with w.atomic_write(path, mode):
                pass
        assert info.value.errno == errno.EEXIST and info.value.filename == t
    link = os.path.join(d, "dangling")
    os.symlink(os.path.join(d, "nowhere"), link)
    with pytest.raises(FileExistsError):  # as open(link, 'x'): a symlink exists
        with w.atomic_write(link, mode):
            pass
    assert not os.path.exists(os.path.join(d, "nowhere"))
    assert read(t) == "old"


@pytest.mark.parametrize("writer", WRITERS)
def test_r_plus_on_a_missing_file_is_file_not_found(d, writer):
    t = os.path.join(d, "missing")
    with pytest.raises(FileNotFoundError) as info:
        with writer(t, "r+"):
            pass
    assert info.value.errno == errno.ENOENT and info.value.filename == t
    assert entries(d) == []


@pytest.mark.parametrize("mode", ["r", "rb", "q", "wr", "rtb"])
def test_read_only_and_invalid_modes_are_value_errors(d, mode):
    with pytest.raises(ValueError):
        with w.atomic_write(os.path.join(d, "t"), mode):
            pass
    assert entries(d) == []


def test_os_errors_carry_errno_filename_and_step(d):
    with pytest.raises(FileNotFoundError) as info:
        w.atomic_write_content_with_lock(os.path.join(d, "no", "dir", "f"), "x", use_lock=False)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename.startswith(os.path.join(d, "no"))
    assert info.value.op
    assert info.value.step == "open"


def test_a_target_named_like_a_lock_file_fails_as_a_file(d):
    # git's index.lock, created exclusively where it exists: open(2)'s EEXIST,
    # not a lock failure (the error's step decides, not the ".lock" suffix).
    target = os.path.join(d, "index.lock")
    with open(target, "w") as f:
        f.write("old")
    with pytest.raises(FileExistsError) as info:
        with w.atomic_write_no_lock(target, "x") as f:
            f.write("new")
    assert info.value.step == "open"
    assert info.value.filename == target
    with open(target) as f:
        assert f.read() == "old"


def _special_targets(d):
    dir_ = os.path.join(d, "adir")
    os.mkdir(dir_)
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo)
    sock_path = os.path.join(d, "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(sock_path)
    link = os.path.join(d, "link-to-fifo")
    os.symlink(fifo, link)
    return sock, [dir_, fifo, sock_path, link]


@pytest.mark.parametrize("how", ["content", "no_lock", "lock", "append"])
def test_non_files_are_refused_before_anything_is_written(d, how):
    sock, targets = _special_targets(d)
    try:
        before = entries(d)
        for target in targets:
            # A FIFO opened for writing would block without a reader: the
            # check comes first, so this returns at once.
            with pytest.raises(RuntimeError, match=r"^Works only on files, not '%s'$" % target):
                if how == "content":
                    w.atomic_write_content_with_lock(target, "x")
                else:
                    writer = w.atomic_write_no_lock if how == "no_lock" else w.atomic_write_lock
                    with writer(target, "a" if how == "append" else "w") as f:
                        f.write("x")
            assert entries(d) == before  # no lock file, no temp
        assert stat.S_ISFIFO(os.stat(os.path.join(d, "fifo")).st_mode)
    finally:
        sock.close()


def test_proc_files_are_refused_unwritten():
    with open("/proc/self/comm") as f:
        before = f.read()
    with pytest.raises(RuntimeError, match=r"^Works only on files, not '/proc/"):
        with w.atomic_write_no_lock("/proc/self/comm") as f:
            f.write("renamed")
    with pytest.raises(RuntimeError, match=r"^Works only on files, not '/proc/"):
        w.atomic_write_content_with_lock("/proc/self/comm", "renamed", use_lock=False)
    with open("/proc/self/comm") as f:
        assert f.read() == before


def test_permissions_are_kept_and_new_files_follow_the_umask(d):
    t = os.path.join(d, "t")
    put(t, "x")
    os.chmod(t, 0o640)
    w.atomic_write_content_with_lock(t, "string")
    assert stat.S_IMODE(os.stat(t).st_mode) == 0o640
    w.atomic_write_content_with_lock(t, b"bytes")
    assert stat.S_IMODE(os.stat(t).st_mode) == 0o640
    os.chmod(t, 0o604)
    with w.atomic_write(t, "a") as f:
        f.write("+")
    assert stat.S_IMODE(os.stat(t).st_mode) == 0o604
    assert read(t) == "bytes+"
    old = os.umask(0o027)
    try:
        n = os.path.join(d, "new")
        w.atomic_write_content_with_lock(n, "x")
        assert stat.S_IMODE(os.stat(n).st_mode) == 0o640  # 0666 & ~umask, not mkstemp's 0600
        with w.atomic_write(os.path.join(d, "new2")) as f:
            f.write("y")
        assert stat.S_IMODE(os.stat(os.path.join(d, "new2")).st_mode) == 0o640
    finally:
        os.umask(old)


def test_content_with_lock_str_bytes_and_buffers(d):
    t = os.path.join(d, "t")
    w.atomic_write_content_with_lock(t, "Hello, World!")
    assert read(t) == "Hello, World!"
    w.atomic_write_content_with_lock(t, b"\x00\x01\x02\xff")
    assert read(t, "rb") == b"\x00\x01\x02\xff"
    w.atomic_write_content_with_lock(t, bytearray(b"ba"))
    w.atomic_write_content_with_lock(t, memoryview(b"xmv")[1:], use_lock=False)
    assert read(t, "rb") == b"mv"
    w.atomic_write_content_with_lock(t, "content", timeout=10, temp_suffix=".temporary")
    assert read(t) == "content"
    with pytest.raises(TypeError):
        w.atomic_write_content_with_lock(t, 12345)
    assert read(t) == "content"
    assert entries(d) == ["t"]


def test_content_with_lock_waits_for_the_lock_and_times_out(d):
    t = os.path.join(d, "t")
    put(t, "old")
    with w.mylockfile(t):
        with pytest.raises(w.LockTimeout) as info:
            w.atomic_write_content_with_lock(t, "new", timeout=0.1)
        assert info.value.filename == t + ".lock"
        with pytest.raises(w.AlreadyLocked):
            w.atomic_write_content_with_lock(t, "new", timeout=0)
        w.atomic_write_content_with_lock(t, "unlocked", use_lock=False)
    assert read(t) == "unlocked"
    with w.mylockfile(t):
        with pytest.raises(w.LockTimeout):
            with w.atomic_write_lock(t, lock_timeout=0.1):
                pass
    assert entries(d) == ["t"]


def test_lock_of_a_symlink_is_taken_on_the_final_target(d):
    target = os.path.join(d, "target")
    put(target, "x")
    link = os.path.join(d, "link")
    os.symlink("target", link)
    with w.mylockfile(target):
        with pytest.raises(w.AlreadyLocked):
            w.atomic_write_content_with_lock(link, "y", timeout=0)
        with pytest.raises(w.AlreadyLocked):
            with w.atomic_write(link, lock_timeout=0):
                pass
    w.atomic_write_content_with_lock(link, "y")
    assert os.path.islink(link) and read(target) == "y"


def test_symlink_chain_and_relative_links(d):
    os.makedirs(os.path.join(d, "a", "b"))
    final = os.path.join(d, "a", "b", "final")
    put(final, "0")
    os.symlink(os.path.join("b", "final"), os.path.join(d, "a", "mid"))
    os.symlink(os.path.join("a", "mid"), os.path.join(d, "top"))
    w.atomic_write_content_with_lock(os.path.join(d, "top"), "1")
    with w.atomic_write(os.path.join(d, "top"), "a") as f:
        assert f.name == final
        f.write("2")
    assert read(final) == "12"
    assert os.readlink(os.path.join(d, "top")) == os.path.join("a", "mid")
    assert entries(os.path.join(d, "a", "b")) == ["final"]


def test_modes_through_a_symlink_in_a_read_only_directory():
    """The seed's test_modes_through_readonly_symlink (as user nobody when run
    as root, who would ignore the directory's permissions)."""
    base = tempfile.mkdtemp(prefix="wlf-ro-")
    try:
        os.chmod(base, 0o755)
        ro, rw = os.path.join(base, "RO"), os.path.join(base, "RW")
        os.mkdir(ro)
        os.mkdir(rw)
        link, target = os.path.join(ro, "symlink"), os.path.join(rw, "afile")
        os.symlink(os.path.join("..", "RW", "afile"), link)
        if os.geteuid() != 0:
            os.chmod(ro, 0o555)
            try:
                _modes_through(link, target)
            finally:
                os.chmod(ro, 0o755)
            return
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no user nobody to drop root to")
        for p in (base, rw):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        os.chmod(ro, 0o555)  # root's: nobody cannot write there
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgroups([])
                os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
                os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
                try:
                    open(os.path.join(ro, "probe"), "w")
                    code = 3  # the directory is writable after all: nothing proven
                except PermissionError:
                    _modes_through(link, target)
                    code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        status = os.waitpid(pid, 0)[1]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert entries(ro) == ["symlink"]
    finally:
        shutil.rmtree(base)


def test_modes_through_a_symlink(d):
    """The same sequence with a writable link directory (runs as root too)."""
    os.mkdir(os.path.join(d, "L"))
    os.mkdir(os.path.join(d, "RW"))
    link, target = os.path.join(d, "L", "symlink"), os.path.join(d, "RW", "afile")
    os.symlink(os.path.join("..", "RW", "afile"), link)
    _modes_through(link, target)
    assert entries(os.path.join(d, "L")) == ["symlink"]


def _modes_through(link, target):
    with w.atomic_write_lock(link, mode="w") as f:
        f.write("alpha")
    assert read(target) == "alpha"
    with w.atomic_write_lock(link, mode="w+") as f:
        f.write("omega")
        f.seek(0)
        assert f.read() == "omega"
    with w.atomic_write_lock(link, mode="a") as f:
        f.write("\nbeta")
    assert read(target) == "omega\nbeta"
    with w.atomic_write_lock(link, mode="r+") as f:
        assert f.read() == "omega\nbeta"
        f.seek(0)
        f.write("gamma")
        f.truncate()
    assert read(target) == "gamma"
    os.unlink(target)
    with pytest.raises(FileNotFoundError):
        with w.atomic_write_lock(link, mode="r+"):
            pass
    with w.atomic_write_lock(link, mode="a") as f:
        f.write("delta")
    assert read(target) == "delta"
    os.unlink(target)
    with w.atomic_write_lock(target, mode="x") as f:
        f.write("epsilon")
    with pytest.raises(FileExistsError):
        with w.atomic_write_lock(target, mode="x"):
            pass
    for exclusive in ("x", "x+"):
        with pytest.raises(FileExistsError):
            with w.atomic_write_lock(link, mode=exclusive):
                pass
    assert entries(os.path.dirname(target)) == ["afile"]


def test_forked_child_neither_commits_nor_discards_the_parents_replacement(d):
    t = os.path.join(d, "t")
    put(t, "old")
    cm = w.atomic_write(t)
    f = cm.__enter__()
    f.write("parent's")
    f.flush()
    pid = os.fork()
    if pid == 0:
        try:
            cm.__exit__(None, None, None)  # as if the child left the block
            os._exit(0 if read(t) == "old" else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    assert held_elsewhere(t)
    assert read(t) == "old"
    # The parent's replacement is intact: its commit publishes what it wrote.
    f.write(" content")
    cm.__exit__(None, None, None)
    assert read(t) == "parent's content"
    assert entries(d) == ["t"]


def test_concurrent_threads_each_commit_whole_content(d):
    t = os.path.join(d, "t")
    errors = []

    def writer(i):
        try:
            for _ in range(20):
                w.atomic_write_content_with_lock(t, ("%d" % i) * 1000)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    content = read(t)
    assert len(content) == 1000 and len(set(content)) == 1
    assert entries(d) == ["t"]


def test_hard_linked_target_keeps_its_links_unless_split(d):
    t, other = os.path.join(d, "t"), os.path.join(d, "other")
    put(t, "old")
    os.link(t, other)
    cm = w.atomic_write(t)
    with cm as f:
        f.write("kept")
    assert cm.kind == "in_place"  # reported as not atomic
    assert read(other) == "kept" and os.stat(t).st_ino == os.stat(other).st_ino
    cm = w.atomic_write(t, hard_links="split", durability="none")
    with cm as f:
        f.write("split")
    assert cm.kind == "rename"
    assert read(t) == "split" and read(other) == "kept"
    assert entries(d) == ["other", "t"]
    with pytest.raises(ValueError):
        with w.atomic_write(t, hard_links="sometimes"):
            pass


def test_str_bytes_and_pathlike_paths(d):
    import pathlib
    b, p = os.path.join(d, "b"), pathlib.Path(d, "p")
    w.atomic_write_content_with_lock(os.fsencode(b), "x")
    w.atomic_write_content_with_lock(p, "y")
    with w.atomic_write(p, "a") as f:
        assert f.name == str(p)
        f.write("z")
    with w.mylockfile(p) as lock:
        assert lock.lockfile == str(p) + ".lock" and os.path.exists(lock.lockfile)
    with w.mylockfile(os.fsencode(b)) as lock:
        assert lock.lockfile == b + ".lock" and os.path.exists(lock.lockfile)
    assert read(b) == "x" and read(p) == "yz"
    assert entries(d) == ["b", "p"]


def test_durability_batch_and_sync_pending(d):
    # README "What one replacement does", step 4: the file is fsynced before
    # the rename, the directory at sync_pending() (or exit).
    for sub in ("a", "b"):
        os.mkdir(os.path.join(d, sub))
        t = os.path.join(d, sub, "t")
        with w.atomic_write(t, durability="batch") as f:
            f.write("new")
        assert read(t) == "new"
        w.atomic_write_content_with_lock(os.path.join(d, sub, "u"), "u", durability="batch")
        assert entries(os.path.join(d, sub)) == ["t", "u"]
    assert w.sync_pending() is None
    w.sync_pending()  # nothing left: a no-op
    with pytest.raises(ValueError):
        with w.atomic_write(os.path.join(d, "x"), durability="later"):
            pass
