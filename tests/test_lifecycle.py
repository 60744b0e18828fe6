"""A queue outlives one event loop: runs on successive loops reuse it safely."""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio
import pytest
from support import ASYNCIO, LOOP_NAMES, UVLOOP, aeventually, eventually, loop_params

from osiiso import AsyncQueue, TaskHandle, TaskStatus

pytestmark = [pytest.mark.timeout(30)]


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("backend", LOOP_NAMES)
def test_queue_runs_again_on_a_new_event_loop(backend: str) -> None:
    """Thread tasks run on a second event loop after the first has closed; no pool thread leaks."""
    q = AsyncQueue(threads=2)
    before = {t.ident for t in threading.enumerate()}

    async def one_run(x: int) -> int:
        handle = q.submit(_square, x, backend="thread")
        await q.run(strict=True)
        return handle.value()

    assert anyio.run(one_run, 3, backend=backend) == 9
    assert anyio.run(one_run, 4, backend=backend) == 16

    async def close() -> None:
        await q.shutdown()

    anyio.run(close, backend=backend)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("osiiso")]
    assert leftover == []


def test_a_dropped_queue_releases_its_pool_threads() -> None:
    """A queue garbage-collected without shutdown() lets its pool threads exit."""
    import gc

    async def one_run() -> None:
        q = AsyncQueue(threads=3)
        q.submit(_square, 2, backend="thread")
        await q.run(strict=True)

    anyio.run(one_run)
    gc.collect()

    def pool_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("osiiso-thread")]

    eventually(lambda: not pool_threads(), lambda: f"the pool threads to exit (left: {pool_threads()})", 10.0)


def test_done_callbacks_can_be_added_from_another_thread() -> None:
    """add_done_callback from a producer thread never loses the callback, even for a finished task."""
    seen: list[int] = []

    async def main() -> None:
        async with AsyncQueue(threads=2) as q:
            def producer() -> None:
                for i in range(50):
                    handle = q.submit(_square, i, backend="thread")
                    handle.add_done_callback(lambda h: seen.append(h.value()))

            await anyio.to_thread.run_sync(producer)

    anyio.run(main)
    assert sorted(seen) == sorted(i * i for i in range(50))


_gate = threading.Event()


def _wait_for_gate() -> str:
    _gate.wait(30)
    return "released"


@pytest.mark.parametrize("loop", loop_params())
def test_a_loop_that_ends_under_a_started_queue_cancels_only_what_ran(
        loop: tuple[str, dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    """The main coroutine returns with a started queue (no shutdown): the tasks running end
    cancelled, those not started stay queued and run on the next loop; the engine does not fail."""
    q = AsyncQueue(workers=2)
    _gate.clear()

    async def main() -> list[TaskHandle[Any]]:
        await q.start()
        handles = [q.submit(anyio.sleep, 30, name="coroutine"),
                   q.submit(_wait_for_gate, name="thread", backend="thread"),
                   q.submit(_square, 3, name="queued", backend="thread")]
        await aeventually(lambda: q.active_count == 2, "both slots taken")
        return handles

    try:
        with caplog.at_level(logging.ERROR, logger="osiiso"):
            running_coro, running_thread, queued = anyio.run(main, backend=loop[0], backend_options=loop[1])
        for handle in (running_coro, running_thread):
            assert handle.status is TaskStatus.CANCELLED
            assert handle.result().message == "cancelled: the queue stopped while it ran"
        assert not queued.done()
        assert "engine failed" not in caplog.text
    finally:
        _gate.set()

    async def next_run() -> int:
        await q.run(strict=True)
        value = queued.value()
        await q.shutdown()
        return value

    assert anyio.run(next_run, backend=loop[0], backend_options=loop[1]) == 9


async def _cancels_its_own_task() -> None:
    import asyncio

    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(0)


async def _returns(i: int) -> int:
    await anyio.sleep(0)
    return i


@pytest.mark.parametrize("loop", loop_params(ASYNCIO, UVLOOP))
def test_a_task_that_cancels_its_own_asyncio_task_ends_cancelled_and_the_run_goes_on(
        loop: tuple[str, dict[str, Any]]) -> None:
    """``asyncio.current_task().cancel()`` inside a task is that task's outcome (cancelled, "raised
    CancelledError itself"), not the loop stopping the queue: its worker runs the next tasks."""
    async def main() -> list[Any]:
        q = AsyncQueue(workers=1)
        handles = [q.submit(_returns, 0), q.submit(_cancels_its_own_task), q.submit(_cancels_its_own_task),
                   *(q.submit(_returns, i) for i in range(1, 4))]
        with anyio.fail_after(10):
            summary = await q.run()
        await q.shutdown()
        assert (summary.succeeded, summary.cancelled, summary.failed) == (4, 2, 0)
        return [h.result().message for h in handles]

    messages = anyio.run(main, backend=loop[0], backend_options=loop[1])
    assert messages[1] == messages[2] == "cancelled: the task raised CancelledError itself"
