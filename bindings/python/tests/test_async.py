"""async with mylockfile(...) / atomic_write(...): waits that do not block the event loop."""
import asyncio
import errno
import os
import threading
import time

import pytest

import wrap_lockfile as w
from conftest import entries, held_elsewhere


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def ticks_while(awaitable):
    """Runs awaitable while a ticker task counts loop turns of ~1 ms."""
    count = [0]

    async def ticker():
        while True:
            count[0] += 1
            await asyncio.sleep(0.001)

    task = asyncio.ensure_future(ticker())
    try:
        result = await awaitable
    finally:
        task.cancel()
    return result, count[0]


def test_async_lock_waits_without_blocking_the_loop(d):
    f = os.path.join(d, "f")
    holder = w.mylockfile(f)
    holder.acquire()

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, holder.release)

        async def take():
            async with w.mylockfile(f) as lock:
                assert isinstance(lock, w.FcntlFileLock) and lock.is_locked()
                assert held_elsewhere(f)
            return "done"

        start = time.monotonic()
        result, ticks = await ticks_while(take())
        return result, ticks, time.monotonic() - start

    result, ticks, elapsed = run(main())
    assert result == "done" and elapsed >= 0.25
    assert ticks > 50, ticks  # the loop kept running while the lock was awaited
    assert entries(d) == []


def test_async_lock_timeout_and_already_locked(d):
    f = os.path.join(d, "f")

    async def main():
        with w.mylockfile(f):
            start = time.monotonic()
            with pytest.raises(w.LockTimeout) as info:
                async with w.mylockfile(f, timeout=0.25):
                    pass
            elapsed = time.monotonic() - start
            assert info.value.filename == f + ".lock"
            with pytest.raises(w.AlreadyLocked):
                async with w.mylockfile(f, timeout=0):
                    pass
        return elapsed

    elapsed = run(main())
    assert 0.2 <= elapsed < 2, elapsed
    assert entries(d) == []


def test_async_tasks_serialize(d):
    f = os.path.join(d, "f")
    inside, peak = [0], [0]

    async def worker():
        for _ in range(10):
            async with w.mylockfile(f):
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                await asyncio.sleep(0.001)
                inside[0] -= 1

    async def main():
        await asyncio.gather(*(worker() for _ in range(12)))  # more tasks than executor threads

    run(main())
    assert peak[0] == 1
    assert entries(d) == []


async def waiting_threads_gone(before):
    """Until the wait threads started since `before` threads ran have ended."""
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert threading.active_count() == before


def test_cancelled_wait_leaves_no_lock_behind(d):
    f = os.path.join(d, "f")
    before = threading.active_count()

    async def main():
        with w.mylockfile(f):
            task = asyncio.ensure_future(w.mylockfile(f).__aenter__())
            await asyncio.sleep(0.15)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # The waiting thread stops within one slice and takes nothing with it.
        await waiting_threads_gone(before)

    run(main())
    assert not held_elsewhere(f)
    assert entries(d) == []


def test_async_atomic_write_commits_on_success_and_discards_on_exception(d):
    t = os.path.join(d, "t")
    with open(t, "w") as f:
        f.write("old")

    async def main():
        async with w.atomic_write(t, "a") as f:
            assert f.name == t
            f.write("+new")
        assert open(t).read() == "old+new"
        with pytest.raises(ValueError):
            async with w.atomic_write(t) as f:
                f.write("lost")
                raise ValueError()
        assert open(t).read() == "old+new"
        async with w.atomic_write_no_lock(t, "wb") as f:
            f.write(b"bytes")

    run(main())
    assert open(t).read() == "bytes"
    assert entries(d) == ["t"]


def test_async_atomic_write_waits_for_the_lock_without_blocking(d):
    t = os.path.join(d, "t")
    holder = w.mylockfile(t)
    holder.acquire()

    async def main():
        asyncio.get_running_loop().call_later(0.3, holder.release)

        async def write():
            async with w.atomic_write(t) as f:
                f.write("after the wait")

        _, ticks = await ticks_while(write())
        return ticks

    assert run(main()) > 50
    assert open(t).read() == "after the wait"
    assert entries(d) == ["t"]


def test_async_atomic_write_timeout_and_cancel_leave_nothing(d):
    t = os.path.join(d, "t")
    before = threading.active_count()

    async def main():
        with w.mylockfile(t):
            with pytest.raises(w.LockTimeout):
                async with w.atomic_write(t, lock_timeout=0.2):
                    pass
            task = asyncio.ensure_future(w.atomic_write(t).__aenter__())
            await asyncio.sleep(0.15)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await waiting_threads_gone(before)  # the cancelled open has given up

    run(main())
    assert entries(d) == []
    assert not held_elsewhere(t)


def test_cancel_during_the_commit_lets_it_finish_then_cancels(d):
    t = os.path.join(d, "t")
    with open(t, "w") as f:
        f.write("old")

    async def main():
        in_block = asyncio.Event()

        async def write():
            async with w.atomic_write(t, "wb") as f:
                f.write(b"n" * (8 << 20))
                in_block.set()  # this task runs on into the commit's await

        task = asyncio.ensure_future(write())
        await in_block.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert os.path.getsize(t) == 8 << 20  # committed all the same
    assert entries(d) == ["t"]
    assert not held_elsewhere(t)


def test_one_writer_entered_by_two_tasks_commits_each_ones_own_content(d):
    # Each exit ends its own task's entry: before, task a's exit ended task
    # b's entry, committing the half b had written and closing b's file.
    t = os.path.join(d, "t")
    with open(t, "w") as f:
        f.write("old")
    writer = w.atomic_write_no_lock(t)

    async def main():
        a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
        seen = {}

        async def a():
            async with writer as f:
                f.write("from a")
                a_in.set()
                await b_in.wait()
            with open(t) as f:
                seen["after a"] = f.read()
            a_out.set()

        async def b():
            await a_in.wait()
            with pytest.raises(OSError) as refused:
                async with writer as f:
                    f.write("from b, ")
                    b_in.set()
                    await a_out.wait()
                    f.write("whole")
            # Unlocked, b's replacement began before a's commit: it is
            # refused (the target changed meanwhile), not a lost update.
            seen["b refused"] = refused.value.errno
            with open(t) as f:
                seen["after b"] = f.read()

        await asyncio.gather(a(), b())
        return seen

    assert run(main()) == {"after a": "from a", "b refused": errno.ESTALE, "after b": "from a"}
    assert entries(d) == ["t"]
