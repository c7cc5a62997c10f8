"""Writes through symbolic links: the lock and the replacement are the final target's, links are
kept."""
import errno
import os
import pwd
import shutil
import tempfile
import traceback

import pytest

import wrap_lockfile as w
from conftest import entries, put, read


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


def _write_all_ways(path, content):
    """Each writer's outcome on path: None, or the exception's type and errno."""
    def content_with_lock():
        w.atomic_write_content_with_lock(path, content)

    def writer(cls):
        def run():
            with cls(path) as f:
                f.write(content)
        return run

    outcomes = []
    for how in (content_with_lock, writer(w.atomic_write_lock), writer(w.atomic_write_no_lock)):
        try:
            how()
            outcomes.append(None)
        except (OSError, w.LockError) as e:
            outcomes.append((type(e), e.errno))
    return outcomes


def test_dot_dot_after_a_symlink_is_the_kernels_not_a_lexical_one(d):
    # open(2) resolves 'link/..' to the link target's parent: the file written
    # is the one open() would write, never the one beside the link.
    os.makedirs(os.path.join(d, "real", "sub"))
    beside, far = os.path.join(d, "t"), os.path.join(d, "real", "t")
    put(beside, "beside")
    put(far, "far")
    os.symlink(os.path.join("real", "sub"), os.path.join(d, "link"))
    path = os.path.join(d, "link", "..", "t")
    with open(path) as f:
        assert f.read() == "far"
    assert _write_all_ways(path, "new") == [None, None, None]
    assert read(far) == "new" and read(beside) == "beside"
    with w.atomic_write(path, "a") as f:
        assert f.name == far
        f.write("+")
    assert read(far) == "new+" and read(beside) == "beside"
    assert entries(os.path.join(d, "real")) == ["sub", "t"]


@pytest.mark.parametrize("name", ["t/", "missing/../t", ""])
def test_paths_the_kernel_refuses_are_refused(d, name):
    # open('t/', 'w') is EISDIR or ENOTDIR, open('missing/../t') ENOENT,
    # open('') ENOENT: not a write of 't' (a lock on 'missing/../t.lock' is
    # LockFailed, ENOENT).
    t = os.path.join(d, "t")
    put(t, "old")
    path = os.path.join(d, name) if name else name
    with pytest.raises(OSError) as plain:
        open(path, "w")
    outcomes = _write_all_ways(path, "new")
    assert all(o is not None and o[1] in (errno.EISDIR, errno.ENOTDIR, errno.ENOENT) for o in outcomes), outcomes
    assert read(t) == "old"
    assert entries(d) == ["t"]
    assert plain.value.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENOENT)
