"""W4 process tiny tasks: 5,000 calls of ``def h(i): return i * i`` on 2 processes.

Measures the per-task cost of a round trip to a worker process, on **warm pools**: each
contender creates its pool, warms it outside the timing (4 tasks at once, at least one per worker, see
``_process_peers``), times the 5,000 tasks from the first submission to the last result,
then closes the pool. Contenders: osiiso ``q.map`` and ``q.submit`` per task
(``AsyncQueue(processes=2)``, ``backend="process"``), ``ProcessPoolExecutor(2)`` one call at a
time through ``run_in_executor`` (gathered) and through ``map`` with chunksize 1 and 100,
``multiprocessing.Pool.map`` (its default chunks: 625 tasks each here), loky and pebble one
future per task, mpire ``WorkerPool.map`` (its default chunks), anyio ``to_process.run_sync``
with a ``CapacityLimiter(2)``. osiiso batches these tasks (they take microseconds); the row
``osiiso q.map, batching off`` runs the same map with ``AsyncQueue(process_batching=False)``.
Targets (issue 5): osiiso ``map`` >= 2x ``ProcessPoolExecutor`` one at a time, and >= 1.0x
pebble; (issue 14) ``map`` >= 1.0x mpire ``WorkerPool.map`` with its default chunks, and
>= 4x pebble.
"""

from __future__ import annotations

import os
import time

from . import _process_peers as pp
from ._runner import Config, Metric, Report, Row, interleave

TITLE = "process tiny tasks: 5,000 x i*i on 2 processes, warm pools"
N = 5_000


def h(i: int) -> int:
    return i * i


def ratio_metric(rows: list[Row], ours: str, peer: str, target: float) -> Metric:
    """``peer median / ours median`` as a metric with its target."""
    mine = next((r for r in rows if r.name == ours and r.times), None)
    other = next((r for r in rows if r.name == peer and r.times), None)
    name = f"{ours} vs {peer}"
    if mine is None or other is None:
        return Metric(name, "no data", f">= {target:.1f}x", False)
    ratio = other.median / mine.median
    return Metric(name, f"{ratio:.2f}x", f">= {target:.1f}x", ratio >= target)


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W4", TITLE)
    items = list(range(N))
    load = os.getloadavg()[0]
    contenders = pp.contenders(h, items, 1, [h(i) for i in items], True, report.notes)
    report.rows = interleave(contenders, N, config.pick(full=5, quick=2), warmup=0 if config.quick else 1)
    report.metrics = [
        ratio_metric(report.rows, "osiiso q.map", "ProcessPoolExecutor run_in_executor per task", 2.0),
        ratio_metric(report.rows, "osiiso q.map", "pebble ProcessPool.schedule per task", 1.0),
        ratio_metric(report.rows, "osiiso submit per task", "ProcessPoolExecutor run_in_executor per task", 2.0),
        ratio_metric(report.rows, "osiiso q.map", "mpire WorkerPool.map default chunks", 1.0),
        ratio_metric(report.rows, "osiiso q.map", "pebble ProcessPool.schedule per task", 4.0),
        ratio_metric(report.rows, "osiiso q.map", "osiiso q.map, batching off", 1.0),
    ]
    report.notes += [
        "warm pools: each pool is created and warmed (4 tasks submitted together, at least one per "
        "worker) outside the timing, and closed after it; cold start is W6",
        "ratio = peer median / osiiso q.map median (>1: osiiso faster)",
        "uneven by design: Pool.map, mpire and PPE.map chunksize 100 send tasks in chunks, so a task "
        "has no timeout, retry or result of its own and one failure fails the whole map",
        "anyio's workers re-run the parent's __main__ file by path, which `python -m benchmarks` cannot "
        "survive (relative imports), so the harness hides __main__ from anyio while its workers start",
        f"start method forkserver where the library takes one (loky and anyio start workers their own way); "
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores, shared)",
    ]
    report.seconds = time.perf_counter() - start
    return report
