"""W2 async sleep fan-out: 5,000 tasks of ``await sleep(0.01)`` at concurrency 500 (ideal 0.1 s).

Measures how close each contender gets to the ideal wall time when tasks wait on timers:
5,000 / 500 waves x 10 ms. Each loop uses its own sleep (``asyncio.sleep`` on
asyncio and uvloop, the anyio peer included; ``trio.sleep`` on trio). Same contenders as
W1. Target (issue 5): osiiso within 1.1x of the best peer.
"""

from __future__ import annotations

import asyncio
import time

from ._async_peers import Task
from ._fanout import fanout_contenders
from ._runner import Config, Report, interleave

TITLE = "async sleep fan-out: 5,000 x sleep(0.01), concurrency 500 (ideal 0.1 s)"
N, LIMIT, DELAY = 5_000, 500, 0.01


async def asyncio_nap(i: int) -> int:
    await asyncio.sleep(DELAY)
    return i


async def trio_nap(i: int) -> int:
    import trio

    await trio.sleep(DELAY)
    return i


def task_for(loop: str) -> Task:
    return trio_nap if loop == "trio" else asyncio_nap


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W2", TITLE)
    contenders = fanout_contenders(task_for, N, LIMIT, report.notes)
    report.rows = interleave(contenders, N, config.pick(full=7, quick=3))
    timed = [r for r in report.rows if r.times and not r.osiiso]
    if timed:
        best = min(timed, key=lambda r: r.median)
        ideal = N // LIMIT * DELAY
        report.notes.append(f"best peer: {best.name} ({best.loop}) {best.median:.4f}s; ideal {ideal:.2f}s; "
                            "target: osiiso within 1.1x of the best peer")
    report.seconds = time.perf_counter() - start
    return report
