"""W1 async no-op: 20,000 ``async def f(i): return i`` at concurrency 64.

Measures pure per-task overhead: osiiso (``AsyncQueue(workers=64)``, submit all, ``run()``)
on asyncio, uvloop and trio against ``asyncio.gather`` + ``Semaphore(64)``, 64 worker
coroutines over one iterator, an anyio task group + ``CapacityLimiter(64)`` and a trio
nursery + ``trio.CapacityLimiter(64)``. Target (issue 5): osiiso >= 1.0x gather + Semaphore.
The original osiiso is measured by ``original_osiiso.py`` (Python 3.13). The blocking
``osiiso.Queue`` runs the same tasks from synchronous code (``_blocking``); its cost against
``AsyncQueue`` on the same loop is reported as a metric (target, issue 11: <= 1.2x).
The row "osiiso progress=True" runs the same queue with its progress display (drawn on this
process's stderr: a live table on a terminal, one line per round in a pipe); its cost against
the plain row is a metric (target, issue 12: <= 1.05x).
Two rows run osiiso with the ``"osiiso"`` logger at WARNING and at DEBUG (issue 12: the events
cost nothing at WARNING).
The rows "osiiso seed form" run the seed page's shape on asyncio and uvloop: ``async with
AsyncQueue(...) as q:``, a bound task ``q.task(noop)`` called per item (every call submits to
the running queue), ``await q.run()``, timed to the end of the ``async with``. Target (issue 14):
``asyncio.gather`` + ``Semaphore`` >= 1.5x osiiso on asyncio and uvloop, in the bare and the seed
form (the metrics "gather / ...").
"""

from __future__ import annotations

import time
from functools import partial

from . import _async_peers as peers
from ._blocking import queue_contenders, queue_metrics
from ._fanout import fanout_contenders
from ._logging import logging_contenders, logging_metrics
from ._runner import Config, Contender, Metric, Report, Row, installed, interleave, run_on

TITLE = "async no-op: 20,000 tasks, concurrency 64"
N, LIMIT = 20_000, 64
PROGRESS_ROW, PROGRESS_TARGET = "osiiso progress=True", 1.05
SEED_ROW, SPEED_TARGET = "osiiso seed form (async with + bound task)", 1.5
GATHER = "asyncio.gather + Semaphore"


async def noop(i: int) -> int:
    return i


async def _with_progress() -> float:
    return await peers.osiiso_queue(noop, N, LIMIT, progress=True)


def progress_metric(rows: list[Row]) -> Metric:
    """The progress row's median / the plain osiiso row's, on asyncio (target <= 1.05x)."""
    name = f"{PROGRESS_ROW} / osiiso, asyncio"
    with_progress = next((r for r in rows if r.name == PROGRESS_ROW and r.times), None)
    plain = next((r for r in rows if r.name == "osiiso" and r.loop == "asyncio" and r.times), None)
    if with_progress is None or plain is None:
        return Metric(name, "no data", f"<= {PROGRESS_TARGET}x", False)
    ratio = with_progress.median / plain.median
    return Metric(name, f"{ratio:.3f}x", f"<= {PROGRESS_TARGET}x", ratio <= PROGRESS_TARGET)


def seed_contenders(loops: list[str]) -> list[Contender]:
    """The seed form's rows, one per loop (counted as osiiso: peers' ratios stay against the bare form)."""
    async def once() -> float:
        return await peers.osiiso_seed(noop, N, LIMIT)

    return [Contender(SEED_ROW, partial(run_on, loop, once), loop, True) for loop in loops]


def speed_metrics(rows: list[Row]) -> list[Metric]:
    """gather + Semaphore's median / osiiso's, bare and seed form, on asyncio and uvloop (target >= 1.5x)."""
    metrics = []
    for loop in ("asyncio", "uvloop"):
        gather = next((r for r in rows if r.name == GATHER and r.loop == loop and r.times), None)
        for form in ("osiiso", SEED_ROW):
            ours = next((r for r in rows if r.name == form and r.loop == loop and r.times), None)
            name = f"{GATHER} / {form}, {loop}"
            if gather is None or ours is None:
                metrics.append(Metric(name, "no data", f">= {SPEED_TARGET}x", False))
                continue
            ratio = gather.median / ours.median
            metrics.append(Metric(name, f"{ratio:.2f}x", f">= {SPEED_TARGET}x", ratio >= SPEED_TARGET))
    return metrics


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W1", TITLE)
    contenders = fanout_contenders(lambda loop: noop, N, LIMIT, report.notes)
    contenders += seed_contenders(["asyncio", "uvloop"] if installed("uvloop") else ["asyncio"])
    loops = ["asyncio", "trio"] if installed("trio") else ["asyncio"]
    contenders += queue_contenders(noop, N, {"workers": LIMIT}, loops, shutdown_timed=False)
    contenders.append(Contender(PROGRESS_ROW, partial(run_on, "asyncio", _with_progress), "asyncio", True))
    contenders += logging_contenders(noop, N, LIMIT)
    report.rows = interleave(contenders, N, config.pick(full=9, quick=3))
    report.metrics = [*speed_metrics(report.rows), *queue_metrics(report.rows), progress_metric(report.rows),
                      *logging_metrics(report.rows)]
    report.notes.append("ratio = peer median / osiiso median on the same loop (>1: osiiso faster); "
                        "target >= 1.5x asyncio.gather + Semaphore (issue 14), bare and seed form")
    report.seconds = time.perf_counter() - start
    return report
