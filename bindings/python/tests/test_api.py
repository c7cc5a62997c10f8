"""The seed's names, signatures, defaults and exception hierarchy."""
import errno
import inspect
import os
import pickle

import pytest

import wrap_lockfile as w


def test_every_seed_name_exists():
    for name in ("mylockfile", "myLockTimeout", "mylockfile_other_exceptions", "mylockfile_exceptions",
                 "atomic_write_content_with_lock", "atomic_write_no_lock", "atomic_write_lock", "atomic_write",
                 "LockTimeout", "AlreadyLocked", "LockFailed", "HAVE_FCNTL", "FcntlFileLock"):
        assert hasattr(w, name), name
    assert set(w.__all__) <= set(dir(w))


def test_aliases_are_the_same_objects():
    assert w.myLockTimeout is w.LockTimeout
    assert w.mylockfile is w.FcntlFileLock
    assert w.atomic_write is w.atomic_write_lock
    assert w.mylockfile_exceptions is w.mylockfile_other_exceptions
    assert w.HAVE_FCNTL is True


def test_exception_tuple_and_hierarchy():
    assert w.mylockfile_other_exceptions == (w.LockTimeout, w.AlreadyLocked, w.LockFailed)
    for cls in w.mylockfile_other_exceptions:
        assert issubclass(cls, w.LockError) and issubclass(cls, Exception)
        # Code written for the seed catches OSError for I/O errors only.
        assert not issubclass(cls, OSError)
        for other in w.mylockfile_other_exceptions:
            assert cls is other or not issubclass(cls, other)


def test_lock_errors_keep_their_attributes_when_pickled():
    e = w.LockTimeout("timed out", errno.ETIMEDOUT, "/x.lock", 42)
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is w.LockTimeout
    assert (str(e2), e2.errno, e2.filename, e2.holder) == ("timed out", errno.ETIMEDOUT, "/x.lock", 42)
    assert e2.strerror == os.strerror(errno.ETIMEDOUT)


def _params(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def test_signatures_and_defaults_match_the_seed():
    empty = inspect.Parameter.empty
    assert _params(w.atomic_write_content_with_lock) == [
        ("filepath", empty), ("content", empty), ("use_lock", True), ("timeout", None), ("temp_suffix", "~~")]
    assert _params(w.atomic_write_no_lock) == [
        ("filename", empty), ("mode", "w"), ("buffering", -1), ("encoding", None), ("errors", None),
        ("newline", None), ("closefd", True)]
    assert _params(w.atomic_write_lock) == [
        ("filename", empty), ("mode", "w"), ("buffering", -1), ("encoding", None), ("errors", None),
        ("newline", None), ("closefd", True), ("lock_timeout", None)]
    assert _params(w.FcntlFileLock) == [("filename", empty), ("timeout", None)]


def test_seed_lock_attributes(d):
    f = os.path.join(d, "f")
    lock = w.mylockfile(f, timeout=3)
    assert (lock.filename, lock.lockfile, lock.timeout) == (f, f + ".lock", 3)
    assert hasattr(lock, "__enter__") and hasattr(lock, "__exit__")


def test_type_information_is_shipped():
    pkg = os.path.dirname(w.__file__)
    assert os.path.isfile(os.path.join(pkg, "py.typed"))
    assert os.path.isfile(os.path.join(pkg, "_wrap_lockfile.pyi"))


def test_open_modes_behaviour_like_the_later_upstream():
    b = w.open_modes_behaviour("a+")
    assert (b.read, b.write, b.append, b.truncate, b.create, b.must_exist, b.binary, b.exclusive) == \
        (True, True, True, False, True, False, False, False)
    assert w.open_modes_behaviour("rb").binary and not w.open_modes_behaviour("rb").write
    for bad in ("rtb", "invalid", "q"):
        with pytest.raises(ValueError):
            w.open_modes_behaviour(bad)
