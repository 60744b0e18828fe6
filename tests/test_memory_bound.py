"""A long-lived ``mode="infinite"`` service with ``keep_results`` stays flat in memory."""

from __future__ import annotations

import resource
import sys

import anyio
import pytest

from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120),
              pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX-only")]

MB = 1 << 20


def _peak_rss() -> int:
    """The process's peak resident set so far, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


async def _megabyte(i: int) -> bytearray:
    return bytearray(MB)  # a fresh, touched megabyte per task


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_ten_thousand_megabyte_results_leave_the_peak_flat(anyio_backend: str) -> None:
    """10,000 tasks of 1 MB results: after the first 1,000 the peak RSS grows by < 64 MB.

    Kept results would grow it by ~9 GB; the test stops early (and fails) once it has grown
    by 256 MB, so a regression cannot eat the machine.
    """
    q = AsyncQueue(mode="infinite", keep_results=8, workers=8)
    baseline = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.run)
        for batch in range(10):
            for i in range(1000):
                await q.put(_megabyte, i)  # handles are dropped: nothing else holds the values
            await q.join()
            if batch == 0:
                baseline = _peak_rss()
            grown = _peak_rss() - baseline
            assert grown < 256 * MB, f"peak RSS grew by {grown / MB:.0f} MB after {batch + 1},000 tasks"
        await q.shutdown()
    assert len(q.results) == 8
    assert _peak_rss() - baseline < 64 * MB
