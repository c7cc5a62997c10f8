"""Path handling of the Python binding: a caller's path as open(2) would
take it, the lock file's name as the core makes it, and the seed's refusal
of non-regular files."""
from __future__ import annotations

import errno
import os
import stat
from typing import Union

from . import _wrap_lockfile as _core

PathType = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _absolute(path: PathType) -> Union[str, bytes]:
    """The path made absolute (a later chdir moves nothing) and otherwise as
    given: not os.path.abspath, whose lexical '..' and dropped trailing '/'
    would name another file than open(2) does ('link/../t', 't/')."""
    path = os.fspath(path)
    if not path:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.isabs(path):
        return path
    return os.path.join(os.getcwdb() if isinstance(path, bytes) else os.getcwd(), path)


def _clean_name(target: str) -> str:
    """The final target's name without '.', '//' and '..' components; a
    '..' names what the kernel makes of it (after a symlink: the link
    target's parent)."""
    if ".." not in target.split(os.sep):
        return os.path.normpath(target)  # without '..' it only drops '.' and '//': the same file
    directory, base = os.path.split(target)
    return os.path.join(os.path.realpath(directory), base)


def _lock_file(filename: PathType) -> str:
    """filename + '.lock', as the core names it: a name of 251 to 255 bytes
    has a shortened lock file (README "Locks")."""
    name = os.fsdecode(filename)
    base = os.path.basename(name)
    return name[:len(name) - len(base)] + _core.lock_file_name(base) if base else name + ".lock"


def _refuse_non_file(path: str) -> None:
    """The seed's check, before anything is locked, created or written."""
    try:
        st = os.stat(path)
    except OSError:
        return  # missing (or unreachable): the core decides, under the lock
    if not stat.S_ISREG(st.st_mode):
        raise RuntimeError("Works only on files, not %r" % path)
