"""A long-lived service with ``keep_results=False`` stays flat: 10,000 tasks of 1 MB results, RSS bounded."""

from __future__ import annotations

import sys

import anyio
import pytest

from osiiso import AsyncQueue, RunSummary, TaskResult

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")]

TASKS, BATCH, MB = 10_000, 100, 1_000_000
#: RSS growth allowed over the whole run; keeping every result would grow it by 10 GB (the test
#: fails after the first couple of batches, at about this much, so it never exhausts the machine)
BOUND = 150 * MB


@pytest.fixture
def anyio_backend() -> str:
    """The bound is the engine's: one loop is enough."""
    return "asyncio"


def rss() -> int:
    """This process's resident set size, in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def megabyte(i: int) -> bytes:
    return b"%d" % (i % 10) * MB  # every page written: a real megabyte of RSS


async def test_an_infinite_service_without_kept_results_stays_flat() -> None:
    """10,000 tasks returning 1 MB each: handles and on_complete get every result, RSS grows < 150 MB."""
    completed: list[int] = []

    def on_complete(result: TaskResult) -> None:
        completed.append(len(result.value))

    q = AsyncQueue(mode="infinite", keep_results=False, on_complete=on_complete)
    box: list[RunSummary] = []

    async def serve() -> None:
        box.append(await q.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await q.start()
        baseline = peak = 0
        for batch in range(TASKS // BATCH):
            handles = [q.submit(megabyte, batch * BATCH + i) for i in range(BATCH)]
            for handle in handles:
                assert len((await handle).value) == MB  # the handle still gets its result
            del handles, handle
            if batch == 1:
                baseline = rss()  # after the first batches have warmed the allocator
            elif batch > 1:
                peak = max(peak, rss())
                assert peak - baseline < BOUND, f"RSS grew by {(peak - baseline) / MB:.0f} MB after {batch + 1} batches"
        await q.shutdown()
    summary = box[0]
    assert (summary.total_submitted, summary.succeeded, summary.dropped, summary.results) == (TASKS, TASKS, TASKS, ())
    assert completed == [MB] * TASKS and q.results == ()
    print(f"RSS after warm-up {baseline / MB:.0f} MB, peak {peak / MB:.0f} MB over {TASKS} tasks of 1 MB")
