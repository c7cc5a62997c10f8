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

import asyncio
import errno
import io
import locale
import os
import stat
import threading
import time
from typing import IO, Any, Callable, List, Optional, TypeVar, Union

from ._errors import AlreadyLocked, LockError, LockFailed, LockTimeout
from . import _wrap_lockfile as _core

__version__: str = _core.__version__

__all__ = [
    "mylockfile", "myLockTimeout", "mylockfile_other_exceptions", "mylockfile_exceptions",
    "atomic_write_content_with_lock", "atomic_write_no_lock", "atomic_write_lock", "atomic_write",
    "LockError", "LockTimeout", "AlreadyLocked", "LockFailed", "HAVE_FCNTL", "FcntlFileLock",
    "ModeBehavior", "open_modes_behaviour", "sync_pending",
]

PathType = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_T = TypeVar("_T")

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


def _timeout(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


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


# ---- waiting in slices ---------------------------------------------------------

# A timed wait runs in slices of this many seconds: between two of them the
# interpreter runs its signal handlers (Ctrl-C raises KeyboardInterrupt within
# a slice, as in the seed's polling loop), and a wait from asyncio (in a thread
# of its own) sees that its task was cancelled.
_SLICE = 0.1


def _timeout_error(e: LockTimeout, timeout: float) -> LockTimeout:
    holder = " held by pid %d" % e.holder if e.holder else ""
    return LockTimeout("wrap_lockfile: timed out after %g s waiting for lock%s %r" % (timeout, holder, e.filename),
                       e.errno, e.filename, e.holder)


def _call_sliced(call: Callable[[Optional[float]], _T], timeout: Optional[float], sliced: bool,
                 cancelled: Optional[threading.Event]) -> Optional[_T]:
    """call(t) with lock timeouts t of at most _SLICE until it succeeds,
    `timeout` expires (LockTimeout) or `cancelled` is set (None)."""
    if not sliced or (timeout is not None and timeout <= 0):
        return call(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
        try:
            return call(max(left, 1e-6))
        except LockTimeout as e:
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout_error(e, timeout) from None
        if cancelled is not None and cancelled.is_set():
            return None


def _wait(call: Callable[[Optional[float]], _T], timeout: Optional[float]) -> _T:
    """call(timeout), a timed wait in slices (see _SLICE). An untimed wait is
    one call: the core returns to run the signal handlers (without_gil)."""
    if timeout is None or timeout <= 0:
        return call(timeout)
    return _call_sliced(call, timeout, True, None)  # type: ignore[return-value]


async def _wait_in_thread(call: Callable[[Optional[float]], _T], timeout: Optional[float], sliced: bool,
                          undo: Callable[[_T], None]) -> _T:
    """Runs a blocking acquisition without blocking the event loop.

    A thread of its own per wait, not the loop's executor: waiters queued in
    the executor could keep the holder's commit (which needs the executor)
    from ever running. If the task is cancelled, the thread stops within one
    slice and whatever it still acquired is undone.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    cancelled = threading.Event()

    def deliver(ok: bool, value: Any) -> None:
        if fut.cancelled():
            if ok and value is not None:
                undo(value)
        elif ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def run() -> None:
        try:
            outcome = (True, _call_sliced(call, timeout, sliced, cancelled))
        except BaseException as e:  # handed to the awaiting task
            outcome = (False, e)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            if outcome[0] and outcome[1] is not None:
                undo(outcome[1])

    threading.Thread(target=run, name="wrap_lockfile wait", daemon=True).start()
    try:
        return await fut
    except asyncio.CancelledError:
        cancelled.set()
        # Cancelled after the thread delivered but before this task resumed.
        if fut.done() and not fut.cancelled() and fut.exception() is None and fut.result() is not None:
            undo(fut.result())
        raise


async def _finish_in_executor(fn: Callable[[], _T]) -> _T:
    """Runs fn (a commit) in the loop's executor and waits for its outcome
    even when cancelled meanwhile: a commit cannot be stopped halfway, and its
    errors must not be lost. The cancellation is raised after it finished."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(fut)
            break
        except asyncio.CancelledError:
            cancelled = True
            if fut.done():
                result = fut.result()  # raises the commit's own error
                break
    if cancelled:
        raise asyncio.CancelledError()
    return result


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


# ---- open modes (the later upstream's helper) -------------------------------

class ModeBehavior:
    """What an open() mode does: read, write, append, truncate, create, must_exist, binary, exclusive."""

    def __init__(self, read: bool = False, write: bool = False, append: bool = False, truncate: bool = False,
                 create: bool = False, must_exist: bool = False, binary: bool = False,
                 exclusive: bool = False) -> None:
        self.read = read
        self.write = write
        self.append = append
        self.truncate = truncate
        self.create = create
        self.must_exist = must_exist
        self.binary = binary
        self.exclusive = exclusive

    @property
    def text(self) -> bool:
        return not self.binary

    def __repr__(self) -> str:
        return "ModeBehavior(%s)" % ", ".join("%s=%s" % kv for kv in self.__dict__.items() if kv[1])


def open_modes_behaviour(mode: str) -> ModeBehavior:
    """The behaviour of an open() mode; ValueError for an invalid one."""
    binary = "b" in mode
    base = mode.replace("b", "").replace("t", "")
    if binary and "t" in mode:
        raise ValueError("Invalid file mode: '%s'. Cannot specify both 'b' and 't'" % mode)
    allowed = ("r", "r+", "w", "w+", "a", "a+", "x", "x+")
    if base not in allowed:
        raise ValueError("Invalid file mode: '%s'. Valid modes are: %s (with optional 'b' or 't')"
                         % (mode, ", ".join(allowed)))
    return ModeBehavior(read="+" in base or base == "r", write=base != "r", append="a" in base,
                        truncate="w" in base, create=base not in ("r", "r+"), must_exist="r" in base,
                        binary=binary, exclusive="x" in base)


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
        self._pending: List[tuple] = []  # (core file, file object) per nested entry
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
        self._pending.append((core, f))
        return f

    def __enter__(self) -> IO[Any]:
        self._check()
        timeout = _timeout(self.lock_timeout)
        return self._file_object(_wait(self._open_core, timeout) if self._use_lock else self._open_core(timeout))

    def _finish(self, exc_type: Any) -> Optional[_core.File]:
        """Closes the file object; returns the core file to commit, or None."""
        core, f = self._pending.pop()
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
