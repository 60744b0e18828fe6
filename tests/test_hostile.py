"""Hostile input to the engine: what must still end with one result per task, and never hang (issue 15).

Backend-neutral behaviour lives in ``tests/conformance/test_reliability.py``; these are the
cases that need one backend only, or the engine's insides: very long dependency chains,
handles of other queues, cancels racing results from other threads, an early exit from
``as_completed``, numbers at the edge of a float, and a failure of the engine's own code.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio
import pytest

import osiiso
from osiiso import AsyncQueue, DependencyError, TaskHandle, TaskOptions

pytestmark = [pytest.mark.anyio]

CHAIN = 100_000


async def ok(x: Any) -> Any:
    return x


async def fail(message: str) -> None:
    raise ValueError(message)


def build_chain(q: AsyncQueue, head: TaskHandle[Any], length: int) -> list[TaskHandle[Any]]:
    links = [head]
    for _ in range(length):
        links.append(q.submit(ok, links[-1]))
    return links


@pytest.mark.timeout(120)
async def test_a_100000_link_chain_whose_head_fails_ends_every_link() -> None:
    """Every dependent of a failing head ends failed with DependencyError, without recursion."""
    q = AsyncQueue()
    links = build_chain(q, q.submit(fail, "head"), CHAIN)
    with anyio.fail_after(90):
        summary = await q.run()
    assert summary.failed == CHAIN + 1
    assert all(isinstance(h.exception(), DependencyError) for h in links[1:])
    assert links[-1].attempts == 0
    await q.shutdown()


@pytest.mark.timeout(120)
async def test_cancelling_the_head_of_a_100000_link_chain_returns_normally() -> None:
    """handle.cancel() on the head of a long chain returns True; every dependent ends with DependencyError."""
    q = AsyncQueue()
    head = q.submit(anyio.sleep, 60)
    links = build_chain(q, head, CHAIN)
    async with q:
        assert head.cancel() is True
        with anyio.fail_after(90):
            await q.join()
    assert head.status == "cancelled"
    assert all(h.status == "failed" and isinstance(h.exception(), DependencyError) for h in links[1:])


@pytest.mark.timeout(30)
async def test_a_handle_of_another_queue_is_refused_at_submit() -> None:
    """A handle of another queue (running, never run, or on another thread's loop) as an argument is a ValueError."""
    other = AsyncQueue()
    never_run = other.submit(ok, 1)
    q = AsyncQueue()
    with pytest.raises(ValueError, match="a handle of another queue"):
        q.submit(ok, never_run)
    with pytest.raises(ValueError, match="a handle of another queue"):
        q.map(ok, [never_run])

    box: list[TaskHandle[Any]] = []
    ready, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        async def main() -> None:
            async with AsyncQueue() as elsewhere:
                box.append(elsewhere.submit(ok, "there"))
                ready.set()
                await anyio.to_thread.run_sync(release.wait)

        anyio.run(main)

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        await anyio.to_thread.run_sync(ready.wait)
        with pytest.raises(ValueError, match="a handle of another queue"):
            q.submit(ok, box[0])
        assert q.pending_count == 0
    finally:
        release.set()
        await anyio.to_thread.run_sync(thread.join)
    summary = await q.run()
    assert summary.total_submitted == 0
    await q.shutdown()


@pytest.mark.timeout(60)
async def test_cancel_from_another_thread_returning_true_means_cancelled() -> None:
    """handle.cancel() from another thread, racing the task's end, returns True only if it ends cancelled."""
    async def quick(i: int) -> int:
        await anyio.sleep(0)
        return i

    answers: dict[int, bool] = {}
    for round_ in range(6):
        async with AsyncQueue(workers=8) as q:
            handles = [q.submit(quick, i) for i in range(400)]

            def cancel_all() -> None:
                for h in handles:
                    answers[id(h)] = h.cancel()

            await anyio.to_thread.run_sync(cancel_all)
            await q.join()
        for h in handles:
            if answers[id(h)]:
                assert h.status == "cancelled", f"cancel() said True, but {h!r} ended {h.status} (round {round_})"
            else:
                assert h.done()


@pytest.mark.timeout(30)
async def test_leaving_as_completed_early_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Breaking out of ``async for h in as_completed(...)`` (first result wins) is normal: no error records."""
    async def after(seconds: float) -> float:
        await anyio.sleep(seconds)
        return seconds

    with caplog.at_level(logging.DEBUG, logger="osiiso"):
        async with AsyncQueue() as q:
            handles = [q.submit(after, s) for s in (0.0, 0.05, 0.1, 0.15)]
            async for first in osiiso.as_completed(handles):
                break
            assert first.done()
            await q.join()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("option", ["timeout", "delay", "retry_delay", "backoff", "run_at"])
def test_numbers_too_big_for_a_float_are_refused_naming_the_option(option: str) -> None:
    """An int too big for a float (10**400) is a ValueError naming the option, not an OverflowError."""
    with pytest.raises(ValueError, match=option):
        TaskOptions(**{option: 10**400})


@pytest.mark.timeout(30)
@pytest.mark.parametrize("arguments", [
    {"timeout": 10**400}, {"timeout": float("inf")}, {"timeout": float("nan")},
    {"rate": 1e-320}, {"rate": float("inf")}, {"rate": 10**400}, {"rate": 0.5, "burst": 10**400},
    {"fail_policy": ""}, {"mode": ""}, {"on_timeout": ""},
])
def test_queue_arguments_at_the_edges_are_refused_naming_the_argument(arguments: dict[str, Any]) -> None:
    """Every numeric queue argument is finite and in range, and no enum accepts a falsy value."""
    name = "burst" if "burst" in arguments else next(iter(arguments))
    with pytest.raises(ValueError, match=name):
        AsyncQueue(**arguments)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("arguments", [{"fail_policy": ""}, {"timeout": 10**400}, {"timeout": float("inf")}])
async def test_run_arguments_at_the_edges_are_refused(arguments: dict[str, Any]) -> None:
    """run(fail_policy="") and run(timeout=10**400) are a ValueError naming the argument."""
    q = AsyncQueue()
    with pytest.raises(ValueError, match=next(iter(arguments))):
        await q.run(**arguments)


@pytest.mark.timeout(30)
async def test_a_huge_backoff_waits_the_capped_delay_and_breaks_nothing() -> None:
    """retry_delay * backoff**k past a float's range waits the capped delay; the queue goes on."""
    from osiiso._engine.worker import MAX_RETRY_DELAY, retry_delay

    assert retry_delay(1e300, 1e300, 3) == MAX_RETRY_DELAY
    assert retry_delay(1.0, 10**300, 10**6) == MAX_RETRY_DELAY  # an int backoff is not raised to a huge int
    q = AsyncQueue()
    flaky = q.submit(fail, "again", retries=5, retry_delay=1e-3, backoff=1e308)
    beside = q.submit(ok, "beside")
    with anyio.fail_after(10):
        summary = await q.run(timeout=0.5)
    assert beside.value() == "beside"
    assert flaky.status == "cancelled" and flaky.attempts == 2  # waiting out the capped delay when the run ended
    assert summary.cancelled == 1


@pytest.mark.timeout(30)
async def test_a_failure_in_the_engine_itself_still_ends_every_task_and_the_run() -> None:
    """If the engine's own code raises, every task it held ends failed with that error attached and run() returns."""
    q = AsyncQueue(workers=2)
    engine = q._engine
    real = engine.next_task
    calls = [0]

    def broken_next_task(worker: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("a bug in the engine's bookkeeping")
        real(worker)

    engine.next_task = broken_next_task  # type: ignore[method-assign]
    handles = [q.submit(ok, i) for i in range(10)]
    slow = q.submit(anyio.sleep, 60)
    later = q.submit(ok, "later", delay=30)
    with anyio.fail_after(10):
        summary = await q.run()
    assert all(h.done() for h in (*handles, slow, later))
    assert summary.total_submitted == 12 and summary.failed >= 2
    for result in (r for r in summary.results if r.status == "failed"):
        assert "osiiso's engine failed" in result.message
        assert isinstance(result.exception.__cause__, RuntimeError)
        assert "bookkeeping" in str(result.exception.__cause__)
    engine.next_task = real  # type: ignore[method-assign]
    again = q.submit(ok, "again")
    with anyio.fail_after(10):
        assert (await q.run()).ok
    assert again.value() == "again"
    await q.shutdown()


@pytest.mark.timeout(30)
async def test_keyboard_interrupt_from_a_hook_is_logged_and_the_run_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A hook raising KeyboardInterrupt is logged like any hook error, on asyncio and trio alike."""
    def on_complete(result: Any) -> None:
        if result.name == "boom":
            raise KeyboardInterrupt

    q = AsyncQueue(on_complete=on_complete)
    boom = q.submit(ok, 1, name="boom")
    slow = q.submit(anyio.sleep, 0.1)
    with caplog.at_level(logging.ERROR, logger="osiiso"), anyio.fail_after(10):
        summary = await q.run()
    assert summary.ok and boom.value() == 1 and slow.status == "succeeded"
    assert any("KeyboardInterrupt" in r.getMessage() for r in caplog.records)
    await q.shutdown()


@pytest.mark.timeout(30)
async def test_an_engine_failure_with_async_hooks_still_lets_the_run_return() -> None:
    """After an engine failure the async on_complete hooks of the rescued tasks are dropped and run() returns."""
    seen: list[str] = []

    async def on_complete(result: Any) -> None:
        seen.append(result.status)

    q = AsyncQueue(workers=1, on_complete=on_complete)
    engine = q._engine
    real = engine.dispatch

    def broken_dispatch() -> None:
        real()
        if engine.running:
            raise RuntimeError("a bug in the engine's hand-out of slots")

    engine.dispatch = broken_dispatch  # type: ignore[method-assign]
    handles = [q.submit(anyio.sleep, 60) for _ in range(3)]
    with anyio.fail_after(10):
        summary = await q.run()
    assert all(h.status == "failed" for h in handles) and summary.failed == 3
    assert engine.hooks_running == 0 and engine.outstanding == 0
    await q.shutdown()
