"""atomic_write_no_lock / atomic_write_lock / atomic_write_content_with_lock: commit at the end,
failures, content, metadata, processes and threads, paths, durability."""
import io
import os
import stat
import threading

import pytest

import wrap_lockfile as w
from conftest import WRITERS, entries, held_elsewhere, put, read


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
    for spelling in ("./n.txt", ".//n.txt", "real/../n.txt"):
        with w.atomic_write(os.path.join(d, spelling)) as f:
            assert f.name == os.path.join(d, "n.txt")


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


def test_paths_that_are_not_utf8(d):
    # A file name is bytes on Linux: open(b'\xff') works, and so must a
    # replacement of it, its errors and its lock's errors (the name as
    # os.fsdecode gives it).
    t = os.path.join(os.fsencode(d), b"caf\xe9")
    name = os.fsdecode(t)
    with w.atomic_write(t) as f:
        assert f.name == name
        f.write("new")
    assert read(t) == "new"
    with pytest.raises(FileNotFoundError) as info:
        with w.atomic_write(t + b".missing", "r+"):
            pass
    assert info.value.filename == name + ".missing"
    with w.mylockfile(t):
        with pytest.raises(w.AlreadyLocked) as locked:
            with w.mylockfile(t, timeout=0):
                pass
    assert locked.value.filename == name + ".lock"
    assert entries(os.fsencode(d)) == [b"caf\xe9"]


def test_file_object_that_outlives_its_writer_never_writes_into_another_file(d):
    # f = atomic_write(t).__enter__(): the writer is garbage at once. f's
    # descriptor must not be closed under it, or the next open() reuses the
    # number and f's buffered writes land in that other file.
    import gc
    t = os.path.join(d, "t")
    put(t, "old")
    f = w.atomic_write(t).__enter__()
    gc.collect()
    others = [os.open(os.path.join(d, "other%d" % i), os.O_WRONLY | os.O_CREAT, 0o644) for i in range(8)]
    try:
        f.write("the writer's content")
        f.close()
    finally:
        for fd in others:
            os.close(fd)
    for i in range(8):
        assert read(os.path.join(d, "other%d" % i)) == ""
    del f
    gc.collect()
    assert read(t) == "old"  # never committed: discarded, nothing left
    assert entries(d) == sorted(["t"] + ["other%d" % i for i in range(8)])
    assert not held_elsewhere(t)
