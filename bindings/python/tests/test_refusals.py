"""What the writers refuse and how errors read: OSError fields, a target named like a lock file,
non-files, /proc."""
import errno
import os
import socket
import stat

import pytest

import wrap_lockfile as w
from conftest import entries, put, read


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


@pytest.mark.parametrize("how", ["content", "no_lock", "lock", "append", "x", "xb", "x+"])
def test_non_files_are_refused_before_anything_is_written(d, how):
    # DESIGN/README: a directory, FIFO, socket or device (or a symlink to
    # one) raises RuntimeError, whatever the mode, 'x' ones too (the seed
    # checks before looking at the mode).
    sock, targets = _special_targets(d)
    try:
        before = entries(d)
        for target in targets:
            # A FIFO opened for writing would block without a reader: the
            # check comes first, so this returns at once.
            with pytest.raises(RuntimeError, match=r"^Works only on files, not '%s'$" % target):
                if how == "content":
                    w.atomic_write_content_with_lock(target, "x")
                elif how.startswith("x"):
                    with w.atomic_write(target, how) as f:
                        f.write(b"x" if "b" in how else "x")
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


@pytest.mark.parametrize("writer", [w.atomic_write_no_lock, w.atomic_write_lock])
def test_writers_refuse_read_only_modes_and_non_files_when_constructed(d, writer):
    # The seed's __init__ raises these, before any `with`: code that
    # constructs a writer in a try block relies on it.
    for mode in ("r", "rb", "rt"):
        with pytest.raises(ValueError, match="read-only mode"):
            writer(os.path.join(d, "t"), mode)
    with pytest.raises(RuntimeError, match=r"^Works only on files, not '%s'$" % d):
        writer(d)
    assert entries(d) == []


def test_a_temp_suffix_that_cannot_be_a_name_is_refused(d):
    t = os.path.join(d, "t")
    with pytest.raises(ValueError, match="temp_suffix"):
        w.atomic_write_content_with_lock(t, "x", temp_suffix="~\0~")
    with pytest.raises(OSError) as info:
        w.atomic_write_content_with_lock(t, "x", temp_suffix="/x")
    assert info.value.errno == errno.EINVAL
    assert entries(d) == []


@pytest.mark.parametrize("mode", ["w", "wb", "w+"])
def test_a_link_into_proc_is_refused_before_its_file_is_opened(d, mode):
    # /dev/stdout -> /proc/self/fd/1 -> a log file: RuntimeError as README
    # says, and the log keeps every byte (the core's write-through open,
    # O_TRUNC included, came first and emptied it).
    log = os.path.join(d, "log")
    put(log, "precious log\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        link = os.path.join(d, "stdout")
        os.symlink("/proc/self/fd/%d" % fd, link)
        with pytest.raises(RuntimeError, match=r"^Works only on files, not "):
            w.atomic_write_content_with_lock(link, "x")
        for writer in (w.atomic_write_no_lock, w.atomic_write_lock):
            with pytest.raises(RuntimeError, match=r"^Works only on files, not "):
                with writer(link, mode) as f:
                    f.write(b"x" if "b" in mode else "x")
        assert read(log) == "precious log\n"
        assert entries(d) == ["log", "stdout"]
    finally:
        os.close(fd)


def test_a_proc_fd_link_named_directly_is_refused_like_one_reached_by_a_link(d):
    # /proc/self/fd/N names an open file, not a path: open() writes that
    # inode, even a deleted one. Its link text ('<path> (deleted)') is not
    # a name to replace: that wrote, or replaced, a file of that name.
    x = os.path.join(d, "x")
    fd = os.open(x, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"old")
        os.unlink(x)
        put(x + " (deleted)", "precious")  # somebody's file, named like the link text
        path = "/proc/self/fd/%d" % fd
        with pytest.raises(RuntimeError, match=r"^Works only on files, not '/proc/self/fd/"):
            w.atomic_write_content_with_lock(path, "new")
        with pytest.raises(RuntimeError, match=r"^Works only on files, not '/proc/self/fd/"):
            with w.atomic_write_no_lock(path) as f:
                f.write("new")
        assert os.pread(fd, 10, 0) == b"old"
        assert read(x + " (deleted)") == "precious"
        assert entries(d) == ["x (deleted)"]
    finally:
        os.close(fd)
