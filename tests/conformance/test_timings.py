"""Conformance: every attempt of a task leaves one `AttemptTiming`, on every backend and loop."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from osiiso import AsyncQueue, AttemptTiming, TaskResult

from .kit import Kit, warm_worker

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

#: how each backend names the worker an attempt ran on
WORKER = {"async": r"async", "thread": r"thread/\d+", "process": r"process/\d+", "dask": r"dask(/\S+)?"}


def _ordered(timing: AttemptTiming) -> None:
    assert timing.started_at is not None
    assert timing.queued_at <= timing.started_at <= timing.finished_at


def _check_worker(kit: Kit, timing: AttemptTiming) -> None:
    assert re.fullmatch(WORKER[kit.backend], timing.worker), timing.worker


async def test_a_task_that_succeeds_at_once_has_one_ok_timing(kit: Kit) -> None:
    """A task that succeeds on its first attempt has one "ok" timing, ordered, naming its worker."""
    q = AsyncQueue()
    handle = q.submit(kit.square, 4, **kit.opts)
    await q.run(strict=True)
    result: TaskResult = await handle
    (timing,) = result.timings
    assert (timing.number, timing.outcome, timing.message) == (1, "ok", "succeeded")
    _ordered(timing)
    _check_worker(kit, timing)
    assert timing.queued_at == pytest.approx(result.created_at, abs=1.0)
    # a backend that queues the attempt (a process starting) says when it really began
    assert result.started_at is not None and timing.started_at >= result.started_at  # type: ignore[operator]
    assert timing.finished_at == result.finished_at
    await q.shutdown()


async def test_each_retry_is_one_timing_and_the_retry_delay_shows_between_them(kit: Kit, tmp_path: Path) -> None:
    """Fails twice, then succeeds: error, error, ok; the retry delay is the gap before each retry is ready."""
    q = AsyncQueue()
    handle = q.submit(kit.flaky, str(tmp_path / "count"), 2, retries=2, retry_delay=0.2, **kit.opts)
    await q.run(strict=True)
    result = await handle
    assert result.attempts == 3
    assert [t.number for t in result.timings] == [1, 2, 3]
    assert [t.outcome for t in result.timings] == ["error", "error", "ok"]
    assert "attempt 1 fails" in result.timings[0].message and "Boom" in result.timings[0].message
    for timing in result.timings:
        _ordered(timing)
        _check_worker(kit, timing)
    for before, after in zip(result.timings, result.timings[1:]):
        assert after.queued_at - before.finished_at >= 0.15  # waiting out the retry delay
    await q.shutdown()


async def test_a_timed_out_attempt_has_outcome_timeout(kit: Kit) -> None:
    """An attempt past its timeout has one "timeout" timing that ran about as long as the limit."""
    q = AsyncQueue(processes=1)
    await warm_worker(q, kit)
    handle = q.submit(kit.slow, 20, timeout=0.3, **kit.opts)
    await q.run()
    result = await handle
    assert result.status == "failed"
    (timing,) = result.timings
    assert timing.outcome == "timeout" and "timed out" in timing.message
    _ordered(timing)
    assert timing.ran >= 0.2
    await q.shutdown()


async def test_a_task_cancelled_while_queued_has_one_timing_that_never_started(kit: Kit) -> None:
    """A task cancelled while ready has one "cancelled" timing with started_at None and no worker."""
    q = AsyncQueue()
    handle = q.submit(kit.echo, 1, **kit.opts)
    assert handle.cancel()
    await q.run()
    result = await handle
    (timing,) = result.timings
    assert (timing.number, timing.outcome, timing.started_at, timing.worker) == (1, "cancelled", None, "")
    assert timing.ran == 0.0 and timing.queued_at <= timing.finished_at
    await q.shutdown()


async def test_a_task_cancelled_while_running_has_a_started_cancelled_timing(kit: Kit) -> None:
    """A task cancelled while it runs has one "cancelled" timing that had started."""
    started = anyio.Event()
    q = AsyncQueue(on_start=lambda h: started.set())
    async with q:
        handle = q.submit(kit.slow, 20, **kit.opts)
        await started.wait()
        handle.cancel()
        result = await handle
    (timing,) = result.timings
    assert timing.outcome == "cancelled" and timing.message.startswith("cancelled")
    _ordered(timing)


async def test_a_dependent_that_never_ran_has_no_timing(kit: Kit) -> None:
    """A dependent whose dependency failed never became ready: it has no timing; the failed one has "error"."""
    q = AsyncQueue()
    failed = q.submit(kit.fail, "no", **kit.opts)
    dependent = q.submit(kit.echo, failed, **kit.opts)
    await q.run()
    assert (await dependent).timings == ()
    assert [t.outcome for t in (await failed).timings] == ["error"]
    await q.shutdown()
