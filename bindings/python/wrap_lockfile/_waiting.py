"""Waiting for a lock from Python: timed waits in slices (so that signal
handlers and cancelled asyncio tasks are served), and commits from asyncio
that finish even when cancelled."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from ._errors import LockTimeout

_T = TypeVar("_T")


def _timeout(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


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
