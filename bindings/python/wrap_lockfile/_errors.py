"""The lock exceptions of wrap_lockfile (the seed's names).

Kept in their own module so that the C++ extension can raise these very
classes (it imports them when it loads) without importing the package first.
"""
from __future__ import annotations

import os
from typing import Optional


class LockError(Exception):
    """Base of LockTimeout, AlreadyLocked and LockFailed.

    Like OSError it carries ``errno``, ``strerror`` and ``filename`` (the lock
    file, ``<target>.lock``); ``holder`` is the pid holding the lock where the
    kernel shows it, else None. Not an OSError: code written for the seed,
    whose exceptions derive from Exception only, must not see a lock timeout
    in an ``except OSError`` clause.
    """

    def __init__(self, message: str, errno: Optional[int] = None, filename: Optional[str] = None,
                 holder: Optional[int] = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.strerror = os.strerror(errno) if errno else None
        self.filename = filename
        self.holder = holder

    def __reduce__(self):
        # Keeps the attributes across pickling (multiprocessing).
        return (type(self), (str(self), self.errno, self.filename, self.holder))


class LockTimeout(LockError):
    """A positive timeout expired while somebody else held the lock."""


class AlreadyLocked(LockError):
    """The timeout was <= 0 (one try) and somebody else held the lock."""


class LockFailed(LockError):
    """The lock could not be taken at all (ENOLCK, EACCES, EROFS, not a regular lock file...)."""
