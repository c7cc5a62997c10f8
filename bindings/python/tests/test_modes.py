"""Open modes of atomic_write_no_lock / atomic_write_lock: each mode's result, the file object,
exclusive, read-only and invalid modes."""
import errno
import io
import os

import pytest

import wrap_lockfile as w
from conftest import WRITERS, entries, put, read


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
