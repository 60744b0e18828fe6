"""W4b process, many tiny tasks: 100,000 calls of ``i*i`` on 2 processes, and tiny tasks of which 1% time out.

The first table is W4 at twenty times the size, on warm pools (see ``_process_peers``):
osiiso ``q.map`` (batched), ``q.map`` with batching off, ``submit`` per task, against
mpire ``WorkerPool.map`` and ``multiprocessing.Pool.map`` with their default chunks, and
pebble one future per task. The second is the row the issue asks for: 2,000 tiny tasks with a
0.5 s timeout each, of which every hundredth sleeps 10 s and so times out (20 timeouts, each
killing a worker). The timeout is not shorter because a task handed to a worker that is still
starting has its clock running (so that a hanging initializer cannot hold it), and a
forkserver start takes a good part of 0.1 s on a loaded machine: innocent tasks would time
out. osiiso (batched, and batching off) against pebble, the per-task pool that also kills a
worker on a timeout; the chunked pools have no per-task timeout to compare.
Targets (issue 14): ``q.map`` >= 1.0x mpire, >= 4x pebble; with 1% timeouts, batching still
faster than without, and than pebble.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

from . import _process_peers as pp
from ._runner import Config, Contender, Report, installed, interleave
from .w4_process_tiny import h, ratio_metric

TITLE = "process, many tiny tasks: 100,000 x i*i on 2 processes; 2,000 with 1% timing out"
N = 100_000
N_TIMEOUT = 2_000
TIMEOUT = 0.5


def sometimes_stuck(i: int) -> int:
    """``i*i``, except that every hundredth call sleeps far past the timeout."""
    if i % 100 == 99:
        time.sleep(10)
    return i * i


def expected_timeouts(items: list[int]) -> list[int | None]:
    return [None if i % 100 == 99 else i * i for i in items]


def osiiso_timeouts(items: list[int], warm: Any, *, batching: bool) -> float:
    """osiiso ``q.map(..., timeout=0.1)``; the stuck tasks fail with ``TaskTimeoutError``."""
    import osiiso

    def body(fn: Any, items: list[int], warm: Any) -> tuple[float, list[Any]]:
        async def main() -> tuple[float, list[Any]]:
            queue = osiiso.AsyncQueue(processes=pp.PROCESSES, process_batching=batching)
            try:
                queue.map(h, [warm] * pp.WARM, backend="process")
                queue.map(sometimes_stuck, [0] * pp.WARM, backend="process")
                await queue.run(strict=True)
                start = time.perf_counter()
                handles = queue.map(sometimes_stuck, items, backend="process", timeout=TIMEOUT)
                await queue.run()
                elapsed = time.perf_counter() - start
                return elapsed, [hd.result().value if hd.status == "succeeded" else None for hd in handles]
            finally:
                await queue.shutdown()

        return pp.run_on("asyncio", main)  # type: ignore[arg-type,return-value]

    elapsed, out = body(sometimes_stuck, items, warm)
    if out != expected_timeouts(items):
        raise AssertionError("osiiso: wrong results with timeouts")
    return elapsed


def pebble_timeouts(items: list[int], warm: Any) -> float:
    """``pebble.ProcessPool(2).schedule(fn, (x,), timeout=0.1)`` per item."""
    import pebble

    with pebble.ProcessPool(max_workers=pp.PROCESSES, context=pp._ctx()) as pool:
        [f.result() for f in [pool.schedule(sometimes_stuck, (0,)) for _ in range(pp.WARM)]]
        start = time.perf_counter()
        futures = [pool.schedule(sometimes_stuck, (x,), timeout=TIMEOUT) for x in items]
        out: list[int | None] = []
        for future in futures:
            try:
                out.append(future.result())
            except TimeoutError:
                out.append(None)
        elapsed = time.perf_counter() - start
    if out != expected_timeouts(items):
        raise AssertionError("pebble: wrong results with timeouts")
    return elapsed


def many_contenders(items: list[int], notes: list[str]) -> list[Contender]:
    plan = [
        ("osiiso q.map", partial(pp.osiiso_run, "map", "asyncio"), "asyncio", True, None),
        ("osiiso q.map, batching off", partial(pp.osiiso_run, "map", "asyncio", batching=False), "asyncio",
         True, None),
        ("osiiso submit per task", partial(pp.osiiso_run, "submit", "asyncio"), "asyncio", True, None),
        ("multiprocessing.Pool.map default chunks", partial(pp.mp_pool_map, None), "none", False, None),
        ("pebble ProcessPool.schedule per task", pp.pebble_schedule, "none", False, "pebble"),
        ("mpire WorkerPool.map default chunks", partial(pp.mpire_map, None), "none", False, "mpire"),
    ]
    expected = [h(i) for i in items]
    out = []
    for name, driver, loop, ours, needs in plan:
        if needs and not installed(needs):
            notes.append(f"skipped {name}: {needs} is not installed (pip install osiiso[bench])")
            continue
        out.append(Contender(name, partial(pp._checked, name, driver, h, items, 1, expected), loop, ours))
    return out


def timeout_contenders(items: list[int], notes: list[str]) -> list[Contender]:
    out = [
        Contender("osiiso q.map, 1% time out", partial(osiiso_timeouts, items, 1, batching=True), "asyncio", True),
        Contender("osiiso q.map, 1% time out, batching off", partial(osiiso_timeouts, items, 1, batching=False),
                  "asyncio", True),
    ]
    if installed("pebble"):
        out.append(Contender("pebble schedule per task, 1% time out", partial(pebble_timeouts, items, 1),
                             "none", False))
    else:
        notes.append("skipped pebble with timeouts: pebble is not installed (pip install osiiso[bench])")
    return out


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W4b", TITLE)
    load = os.getloadavg()[0]
    rounds = config.pick(full=3, quick=1)
    report.rows = interleave(many_contenders(list(range(N)), report.notes), N, rounds, warmup=0)
    timed = interleave(timeout_contenders(list(range(N_TIMEOUT)), report.notes), N_TIMEOUT, rounds, warmup=0)
    report.rows += timed
    report.metrics = [
        ratio_metric(report.rows, "osiiso q.map", "mpire WorkerPool.map default chunks", 1.0),
        ratio_metric(report.rows, "osiiso q.map", "pebble ProcessPool.schedule per task", 4.0),
        ratio_metric(report.rows, "osiiso q.map", "osiiso q.map, batching off", 1.0),
        ratio_metric(timed, "osiiso q.map, 1% time out", "osiiso q.map, 1% time out, batching off", 1.0),
        ratio_metric(timed, "osiiso q.map, 1% time out", "pebble schedule per task, 1% time out", 1.0),
    ]
    report.notes += [
        "warm pools, as in W4; no warm-up round (each round is long): the first round pays for nothing "
        "the others do not",
        f"the timeout rows: {N_TIMEOUT:,} tasks, timeout {TIMEOUT}s each, every hundredth sleeps 10 s and "
        "times out, which kills its worker (osiiso and pebble alike); ratios in the second table's "
        "metrics compare those rows only",
        "ratio = peer median / osiiso median (>1: osiiso faster)",
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores, shared)",
    ]
    report.seconds = time.perf_counter() - start
    return report
