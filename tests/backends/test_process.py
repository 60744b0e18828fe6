"""Process backend behaviour seen through the queue (the unit tests drive the backend alone)."""

from __future__ import annotations

import sys
import threading
import time

import anyio
import cloudpickle
import pytest
from support import ASYNCIO

import osiiso
from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> object:
    """Pool behaviour does not depend on the loop: asyncio only keeps these fast."""
    return ASYNCIO


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
    q.submit(busy, 0.01, backend="process")
    await q.run()  # the worker is up: a timeout also bounds a worker's start, which is not what this tests
    slow = q.submit(busy, 30, backend="process", timeout=0.3)
    after = q.submit(busy, 0.01, backend="process")
    began = time.monotonic()
    await q.run()
    assert time.monotonic() - began < 15
    assert slow.status == "failed" and "0.3s" in slow.result().message
    assert after.value() == 0.01
    assert q.stats["process"]["processes_killed"] == 1
    await q.shutdown()


_LOCK = threading.Lock()


def _init_with_lock() -> None:
    with _LOCK:
        pass


async def test_an_unpicklable_initializer_fails_the_tasks_instead_of_hanging() -> None:
    """An initializer that cannot be pickled fails each process task with SerializationError."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # ship _init_with_lock with its globals
    try:
        q = AsyncQueue(processes=1, initializer=_init_with_lock)
        handle = q.submit(busy, 0.0, backend="process")
        with anyio.fail_after(30):
            await q.run()
        assert isinstance(handle.exception(), osiiso.SerializationError)
        assert "initializer" in str(handle.exception())
        await q.shutdown()
    finally:
        cloudpickle.unregister_pickle_by_value(module)
