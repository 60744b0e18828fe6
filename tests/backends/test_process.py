"""Process backend behaviour seen through the queue (the unit tests drive the backend alone)."""

from __future__ import annotations

import time

import pytest

from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> object:
    """Pool behaviour does not depend on the loop: asyncio only keeps these fast."""
    return ("asyncio", {"use_uvloop": False})


def busy(seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return seconds


async def test_timeout_counts_execution_not_the_wait_for_a_worker() -> None:
    """Tasks queued behind others on a busy pool are not timed out for the time they waited."""
    q = AsyncQueue(processes=1)
    q.submit(busy, 0.001, backend="process")  # teaches the pool that busy() is short
    await q.run(strict=True)
    handles = q.map(busy, [0.3] * 3, backend="process", timeout=1.0)
    summary = await q.run()
    assert summary.succeeded == 3, [h.result().message for h in handles]
    starts = sorted(h.result().started_at or 0 for h in handles)
    assert starts[2] - starts[0] >= 0.5  # each started when the worker was free, not when handed over
    assert all(h.result().duration < 0.9 for h in handles)
    await q.shutdown()


async def test_timeout_still_kills_a_task_that_runs_too_long() -> None:
    """A process task over its timeout is killed and the pool goes on with a fresh worker."""
    q = AsyncQueue(processes=1)
    slow = q.submit(busy, 30, backend="process", timeout=0.3)
    after = q.submit(busy, 0.01, backend="process")
    began = time.monotonic()
    await q.run()
    assert time.monotonic() - began < 15
    assert slow.status == "failed" and "0.3s" in slow.result().message
    assert after.value() == 0.01
    assert q.stats["process"]["processes_killed"] == 1
    await q.shutdown()
