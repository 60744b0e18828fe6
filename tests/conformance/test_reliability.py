"""Conformance: nothing hangs and nothing is lost, whatever user code does (issue 15).

Hostile exceptions, hooks and callbacks that raise ``BaseException``, hooks that never return
or wait for their own queue, cancelled producers, callables that return coroutines: every
task still ends with exactly one result and ``run()`` returns, on every backend and loop.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from support import aeventually

from osiiso import AsyncQueue, DependencyError, TaskCancelledError, TaskHandle, TaskResult

from .kit import Kit, Unprintable, a_raise_cancelled, s_raise_cancelled, s_returns_coroutine

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

BOUND = 15.0  # seconds: how long any run here may take (a working queue needs well under one)


async def test_an_exception_that_cannot_be_shown_fails_only_its_own_task(kit: Kit) -> None:
    """A task whose exception's __str__ and __repr__ raise fails with a message saying so; the rest run."""
    q = AsyncQueue()
    bad = q.submit(kit.unprintable, **kit.opts)
    dependent = q.submit(kit.echo, bad, **kit.opts)
    beside = q.submit(kit.slow, 0.05, "beside", **kit.opts)
    later = q.submit(kit.echo, "later", delay=0.1, **kit.opts)
    with anyio.fail_after(BOUND):
        summary = await q.run()
    assert bad.status == "failed" and isinstance(bad.exception(), Unprintable)
    assert "could not be shown" in bad.result().message
    assert isinstance(dependent.exception(), DependencyError)
    assert "could not be shown" in dependent.result().message
    assert (beside.value(), later.value()) == ("beside", "later")
    assert (summary.succeeded, summary.failed) == (2, 2)
    await q.shutdown()


async def test_hooks_and_callbacks_raising_base_exceptions_never_break_the_queue(
        kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """SystemExit from on_start, on_retry, on_complete and a done callback is logged; each task ends as itself."""
    def on_start(handle: TaskHandle[Any]) -> None:
        if handle.name == "start-boom":
            raise SystemExit("from on_start")

    def on_retry(handle: TaskHandle[Any], exc: BaseException) -> None:
        raise SystemExit("from on_retry")

    def on_complete(result: TaskResult) -> None:
        if result.name == "complete-boom":
            raise SystemExit("from on_complete")

    q = AsyncQueue(on_start=on_start, on_retry=on_retry, on_complete=on_complete)
    slow = [q.submit(kit.slow, 0.2, i, **kit.opts) for i in range(3)]
    start_boom = q.submit(kit.echo, 1, name="start-boom", **kit.opts)
    complete_boom = q.submit(kit.echo, 2, name="complete-boom", **kit.opts)
    retried = q.submit(kit.fail, "again", retries=1, **kit.opts)
    callback = q.submit(kit.echo, 3, **kit.opts)

    def callback_boom(_: object) -> None:
        raise SystemExit("from a done callback")

    callback.add_done_callback(callback_boom)
    with caplog.at_level(logging.ERROR, logger="osiiso"), anyio.fail_after(BOUND):
        summary = await q.run()
    assert [h.value() for h in slow] == [0, 1, 2]
    assert (start_boom.value(), complete_boom.value(), callback.value()) == (1, 2, 3)
    assert retried.status == "failed" and retried.attempts == 2
    assert (summary.succeeded, summary.failed, summary.cancelled) == (6, 1, 0)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged.count("SystemExit") == 4, logged
    await q.shutdown()


async def test_a_task_raising_a_cancellation_itself_ends_cancelled(kit: Kit) -> None:
    """A task whose attempt raises CancelledError nobody asked for ends cancelled, with TaskCancelledError."""
    q = AsyncQueue()
    fn = a_raise_cancelled if kit.backend == "async" else s_raise_cancelled
    handle = q.submit(fn, **kit.opts)
    beside = q.submit(kit.echo, 1, **kit.opts)
    with anyio.fail_after(BOUND):
        await q.run()
    assert handle.status == "cancelled" and isinstance(handle.exception(), TaskCancelledError)
    assert beside.value() == 1
    await q.shutdown()


async def test_a_cancelled_put_leaves_the_line(kit: Kit) -> None:
    """A put() cancelled while it waits for room takes no wake-up with it: the next producer gets the room."""
    q = AsyncQueue(size=1)
    async with q:
        running = q.submit(kit.slow, 0.3, "first", **kit.opts)
        with anyio.CancelScope() as scope:
            async def cancel_when_waiting() -> None:
                await aeventually(lambda: q._engine.room_waiters, "the first put() to wait for room")
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_waiting)
                await q.put(kit.echo, "never", **kit.opts)
        assert scope.cancelled_caught and not q._engine.room_waiters
        with anyio.fail_after(BOUND):
            second = await q.put(kit.echo, "second", **kit.opts)
            assert (await second).value == "second"
        assert running.value() == "first"


async def test_the_run_time_limit_bounds_a_hook_that_never_returns(kit: Kit) -> None:
    """run(timeout=) returns at its limit even when an async on_complete hook never returns."""
    async def on_complete(result: TaskResult) -> None:
        await anyio.sleep_forever()

    q = AsyncQueue(on_complete=on_complete)
    await q.start()
    handle = q.submit(kit.echo, 1, **kit.opts)
    with anyio.fail_after(BOUND):
        await handle  # done however long a worker takes to start: its hook now never returns
        summary = await q.run(timeout=0.2)
    assert summary.timed_out and handle.value() == 1
    await q.shutdown()


async def test_the_run_time_limit_bounds_the_hook_of_a_task_it_cancels(kit: Kit) -> None:
    """The hook of a task the limit cancels may begin after the limit cut the running hooks: it is cut too.

    A backend that reports the cancelled attempt a turn later (dask) starts the hook then.
    """
    hooked: list[TaskResult] = []

    async def on_complete(result: TaskResult) -> None:
        hooked.append(result)
        await anyio.sleep_forever()

    q = AsyncQueue(on_complete=on_complete)
    handle = q.submit(kit.slow, 30, **kit.opts)
    with anyio.fail_after(BOUND):
        summary = await q.run(timeout=0.01)
    assert summary.timed_out and handle.result().status == "cancelled"
    assert [r.task_id for r in hooked] == [handle.task_id]
    with anyio.fail_after(BOUND):
        await q.shutdown()


async def test_join_inside_a_hook_is_refused_instead_of_waiting_for_itself(kit: Kit) -> None:
    """An on_complete hook that awaits q.join() gets a RuntimeError at once; the run returns."""
    errors: list[BaseException] = []

    async def on_complete(result: TaskResult) -> None:
        try:
            await q.join()
        except RuntimeError as exc:
            errors.append(exc)

    q = AsyncQueue(on_complete=on_complete)
    handles = [q.submit(kit.echo, i, **kit.opts) for i in range(3)]
    with anyio.fail_after(BOUND):
        summary = await q.run()
    assert summary.succeeded == 3 and [h.value() for h in handles] == [0, 1, 2]
    assert len(errors) == 3 and "join() cannot be awaited inside one of the queue's own hooks" in str(errors[0])
    await q.shutdown()


async def test_a_callable_that_returns_a_coroutine_is_awaited(kit: Kit) -> None:
    """``lambda: fetch(21)`` gives fetch's value on threads and processes alike; backend='async' refuses it."""
    q = AsyncQueue()
    if kit.backend == "async":
        with pytest.raises(TypeError, match="needs a coroutine function"):
            q.submit(s_returns_coroutine, 21, **kit.opts)
        return
    handle = q.submit(s_returns_coroutine, 21, **kit.opts)
    with anyio.fail_after(BOUND):
        await q.run()
    assert handle.value() == 42
    await q.shutdown()
