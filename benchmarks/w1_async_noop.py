"""W1 async no-op: 20,000 ``async def f(i): return i`` at concurrency 64.

Measures pure per-task overhead: osiiso (``AsyncQueue(workers=64)``, submit all, ``run()``)
on asyncio, uvloop and trio against ``asyncio.gather`` + ``Semaphore(64)``, 64 worker
coroutines over one iterator, an anyio task group + ``CapacityLimiter(64)`` and a trio
nursery + ``trio.CapacityLimiter(64)``. Target (issue 5): osiiso >= 1.0x gather + Semaphore.
The original osiiso is measured by ``original_osiiso.py`` (Python 3.13). The blocking
``osiiso.Queue`` runs the same tasks from synchronous code (``_blocking``); its cost against
``AsyncQueue`` on the same loop is reported as a metric (target, issue 11: <= 1.2x). Two rows
run osiiso with the ``"osiiso"`` logger at WARNING and at DEBUG (issue 12: the events cost
nothing at WARNING).
"""

from __future__ import annotations

import time

from ._blocking import queue_contenders, queue_metrics
from ._fanout import fanout_contenders
from ._logging import logging_contenders, logging_metrics
from ._runner import Config, Report, installed, interleave

TITLE = "async no-op: 20,000 tasks, concurrency 64"
N, LIMIT = 20_000, 64


async def noop(i: int) -> int:
    return i


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W1", TITLE)
    contenders = fanout_contenders(lambda loop: noop, N, LIMIT, report.notes)
    loops = ["asyncio", "trio"] if installed("trio") else ["asyncio"]
    contenders += queue_contenders(noop, N, {"workers": LIMIT}, loops, shutdown_timed=False)
    contenders += logging_contenders(noop, N, LIMIT)
    report.rows = interleave(contenders, N, config.pick(full=9, quick=3))
    report.metrics = queue_metrics(report.rows) + logging_metrics(report.rows)
    report.notes.append("ratio = peer median / osiiso median on the same loop (>1: osiiso faster); "
                        "target >= 1.0x asyncio.gather + Semaphore")
    report.seconds = time.perf_counter() - start
    return report
