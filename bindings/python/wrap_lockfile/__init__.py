"""Exclusive file locks and atomic file replacement, on the wrap_lockfile C++ core.

The API of ColDoc's pure-Python ``wrap_lockfile`` module, with the same names,
signatures and defaults: ``mylockfile``, ``atomic_write_content_with_lock``,
``atomic_write_no_lock``, ``atomic_write_lock`` / ``atomic_write``, the
exceptions ``LockTimeout``, ``AlreadyLocked``, ``LockFailed``. The work is done
by the C++ core (kept permissions, owner and ACLs, fsync of file and
directory, the verified lock-file cleanup); README sections "Python" and
"Migrating from the pure-Python wrap_lockfile" say what differs.
"""
from __future__ import annotations

import io
import locale
import os
import sys
import threading
from typing import IO, Any, List, Optional, Union

from ._errors import AlreadyLocked, LockError, LockFailed, LockTimeout
from . import _wrap_lockfile as _core
from ._modes import ModeBehavior, open_modes_behaviour
from ._paths import PathType, _absolute, _clean_name, _lock_file, _refuse_non_file
from ._waiting import _finish_in_executor, _timeout, _wait, _wait_in_thread

__version__: str = _core.__version__

__all__ = [
    "mylockfile", "myLockTimeout", "mylockfile_other_exceptions", "mylockfile_exceptions",
    "atomic_write_content_with_lock", "atomic_write_no_lock", "atomic_write_lock", "atomic_write",
    "LockError", "LockTimeout", "AlreadyLocked", "LockFailed", "HAVE_FCNTL", "FcntlFileLock",
    "ModeBehavior", "open_modes_behaviour", "sync_pending",
]


# The seed's flag for "locks are flock(2) on '<file>.lock'"; here they always are.
HAVE_FCNTL = True

myLockTimeout = LockTimeout
mylockfile_other_exceptions = (LockTimeout, AlreadyLocked, LockFailed)
# The later upstream spelling of the same tuple.
mylockfile_exceptions = mylockfile_other_exceptions


def sync_pending() -> None:
    """durability='batch': fsync, once each, the directories that commits since
    the last call renamed into (also done at normal interpreter exit). A
    failure raises OSError (errno, the directory, step 'fsync_dir')."""
    _core.sync_pending()


# ---- locks -----------------------------------------------------------------

class FcntlFileLock(threading.local):
    """An exclusive lock on ``filename + '.lock'`` (flock(2)), as a context manager.

    ``timeout`` None waits as long as it takes, > 0 raises LockTimeout after
    that many seconds, <= 0 tries once and raises AlreadyLocked. Every lock
    object is a lock of its own: a second one on the same file waits even in
    the same thread, like the seed's. A lock file this library created is
    removed at release by the verified protocol (unlink while holding, every
    acquirer checks its inode still has the name). Like the seed's class it is
    thread-local: one object shared by threads locks in each of them.
    ``async with`` waits without blocking the event loop.
    """

    def __init__(self, filename: PathType, timeout: Optional[float] = None) -> None:
        self.filename = filename
        self.lockfile = _lock_file(filename)
        self.timeout = timeout
        self._held: List[_core.Lock] = []

    def _acquire(self, timeout: Optional[float]) -> _core.Lock:
        return _core.Lock(self.filename, _timeout(timeout))

    def acquire(self) -> None:
        """Take the lock (see the class for the timeout)."""
        self._held.append(_wait(self._acquire, _timeout(self.timeout)))

    def _pop(self, what: str) -> _core.Lock:
        if not self._held:
            raise RuntimeError("wrap_lockfile: %s of a lock that is not held (by this object, in this thread): %r"
                               % (what, self.lockfile))
        return self._held.pop()

    def release(self) -> None:
        """Release the lock taken last by this object in this thread."""
        self._pop("release()").release()

    def is_locked(self) -> bool:
        """Whether this object holds the lock in this thread."""
        return bool(self._held)

    def __enter__(self) -> "FcntlFileLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        lock = self._pop("__exit__")
        try:
            lock.release()
        except LockError:
            if exc_type is None:
                raise  # the lock file could not be removed: say so
        return False

    async def __aenter__(self) -> "FcntlFileLock":
        lock = await _wait_in_thread(self._acquire, _timeout(self.timeout), True, lambda held: held.release())
        self._held.append(lock)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return "<%s %r%s>" % (type(self).__name__, self.lockfile, " held" if self._held else "")


# The seed's name for its lock class.
mylockfile = FcntlFileLock


# ---- atomic replacement ------------------------------------------------------

def _text_encoding() -> str:
    """The encoding open(path, 'w') would use."""
    encoding = io.text_encoding(None)
    return locale.getpreferredencoding(False) if encoding == "locale" else encoding


def atomic_write_content_with_lock(filepath: PathType, content: Union[str, bytes, bytearray, memoryview],
                                   use_lock: bool = True, timeout: Optional[float] = None,
                                   temp_suffix: str = "~~", *, durability: str = "full",
                                   keep_lock_file: bool = False) -> None:
    """Replace ``filepath`` with ``content`` (str: encoded as open(path, 'w')
    would; bytes-like: as is) atomically, under the lock on the final
    target's ``.lock`` unless ``use_lock`` is false. A symlink stays a
    symlink; its final target is replaced. ``temp_suffix`` ends the name of
    a temporary file where the file system has no O_TMPFILE.
    Raises LockTimeout / AlreadyLocked / LockFailed, OSError (the target is
    then as it was), RuntimeError for a directory, FIFO, socket or device."""
    path = _absolute(filepath)
    if "\0" in temp_suffix:  # as a path's: the C string would end there
        raise ValueError("wrap_lockfile: embedded null byte in temp_suffix %r" % temp_suffix)
    _refuse_non_file(os.fsdecode(path))
    data = content.encode(_text_encoding()) if isinstance(content, str) else content
    _wait(lambda t: _core.write_content(path, data, use_lock, t, temp_suffix, durability, keep_lock_file),
          _timeout(timeout) if use_lock else None)


class atomic_write_no_lock:
    """``with atomic_write_no_lock(filename, mode) as f:`` — f is a file object
    (the arguments of open()) on the new content; the target gets it only
    when the block ends without an exception, and is untouched otherwise.

    Modes w, wb, a, ab, r+, w+, a+, x, x+ (and their b variants); a, r+ and +
    start from the current content. ``f.name`` is the final target's path
    (symlinks resolved), in the directory where the new content is written.
    Nothing is left beside the target either way. ``async with`` works too.
    Beyond the seed's arguments: ``durability`` ('full': fsync file and
    directory; 'batch': fsync the file, the directory once at
    ``sync_pending()`` or exit; 'none'), ``keep_lock_file``, ``hard_links`` ('keep': a
    hard-linked target is rewritten in place, not atomically; 'split').
    """

    _use_lock = False

    def __init__(self, filename: PathType, mode: str = "w", buffering: int = -1, encoding: Optional[str] = None,
                 errors: Optional[str] = None, newline: Optional[str] = None, closefd: bool = True, *,
                 durability: str = "full", keep_lock_file: bool = False, hard_links: str = "keep") -> None:
        self.filename = _absolute(filename)
        self.mode = mode
        self.mode_behaviour = open_modes_behaviour(mode)
        self.buffering = buffering
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self.closefd = closefd
        self.lock_timeout: Optional[float] = None
        self.durability = durability
        self.keep_lock_file = keep_lock_file
        self.hard_links = hard_links
        self.kind: Optional[str] = None  # after the commit: 'rename', or 'in_place' (not atomic)
        self._pending: List[tuple] = []  # (entrant, core file, file object) per entry
        self._check()  # as the seed's __init__; again at each entry

    def _open_core(self, timeout: Optional[float]) -> _core.File:
        return _core.File(self.filename, self.mode, self._use_lock, timeout, "~~", self.durability,
                          self.keep_lock_file, self.hard_links)

    def _check(self) -> None:
        if not self.mode_behaviour.write:
            raise ValueError("atomic_write_no_lock does not support read-only mode: %r" % self.mode)
        # Whatever the mode, as the seed: 'x' on a directory is RuntimeError
        # too ('x' on a regular file or a dangling symlink: FileExistsError).
        _refuse_non_file(os.fsdecode(self.filename))

    def _file_object(self, core: _core.File) -> IO[Any]:
        text = self.mode_behaviour.text
        try:
            f = open(core.fd, self.mode, self.buffering, self.encoding if text else None,
                     self.errors if text else None, self.newline if text else None, closefd=False)
            raw = f if isinstance(f, io.FileIO) else (f.buffer.raw if isinstance(f, io.TextIOWrapper) else f.raw)
            raw.name = _clean_name(core.target)
            # The descriptor is the core's (closefd=False): while any layer of
            # f can still flush into it, it must stay open, or a later open()
            # given the same number would get f's writes.
            raw._wrap_lockfile_file = core
        except BaseException:
            core.discard()
            raise
        self._pending.append((_entrant(), core, f))
        return f

    def __enter__(self) -> IO[Any]:
        self._check()
        timeout = _timeout(self.lock_timeout)
        return self._file_object(_wait(self._open_core, timeout) if self._use_lock else self._open_core(timeout))

    def _finish(self, exc_type: Any) -> Optional[_core.File]:
        """Closes the file object; returns the core file to commit, or None."""
        core, f = self._pop_entry()
        if not core.is_opener:  # a forked child: the replacement is its parent's
            _close_quietly(f)
            return None
        if exc_type is not None:
            _close_quietly(f)
            core.discard()
            return None
        try:
            f.close()  # flushes: a write error surfaces here
        except BaseException:
            core.discard()
            raise
        return core

    def _pop_entry(self) -> tuple:
        # One object entered by two threads or tasks at once: each exit
        # ends its own entry (the last one of this thread or task), never
        # the other's temp with what that one has written so far. An exit
        # from elsewhere ends the entry only when it is the only one.
        me = _entrant()
        for i in range(len(self._pending) - 1, -1, -1):
            if _same_entrant(self._pending[i][0], me):
                break
        else:
            if len(self._pending) != 1:
                raise RuntimeError("wrap_lockfile: __exit__ of %r by a thread or task that did not enter it, "
                                   "with %d entries pending" % (self.filename, len(self._pending)))
            i = 0
        _, core, f = self._pending.pop(i)
        return core, f

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        core = self._finish(exc_type)
        if core is not None:
            self.kind = core.commit()
        return False

    async def __aenter__(self) -> IO[Any]:
        self._check()
        core = await _wait_in_thread(self._open_core, _timeout(self.lock_timeout), self._use_lock,
                                     lambda c: c.discard())
        return self._file_object(core)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        core = self._finish(exc_type)
        if core is not None:
            self.kind = await _finish_in_executor(core.commit)
        return False


def _entrant() -> tuple:
    """Who enters a writer: this thread, and its running asyncio task if any
    (asyncio is looked up, not imported: without it there is no task)."""
    task = None
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running event loop in this thread
            pass
    return (threading.get_ident(), task)


def _same_entrant(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] is b[1]


def _close_quietly(f: IO[Any]) -> None:
    try:
        f.close()
    except Exception:  # deliberate: this content is being thrown away
        pass


class atomic_write_lock(atomic_write_no_lock):
    """atomic_write_no_lock under the lock on the final target's ``.lock``
    (symlinks resolved), waiting ``lock_timeout`` seconds (None: as long as
    it takes; <= 0: one try, AlreadyLocked)."""

    _use_lock = True

    def __init__(self, filename: PathType, mode: str = "w", buffering: int = -1, encoding: Optional[str] = None,
                 errors: Optional[str] = None, newline: Optional[str] = None, closefd: bool = True,
                 lock_timeout: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(filename, mode, buffering, encoding, errors, newline, closefd, **kwargs)
        self.lock_timeout = lock_timeout


# The seed's recommended default: atomic replacement under the lock.
atomic_write = atomic_write_lock
