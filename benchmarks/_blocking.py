"""The blocking ``osiiso.Queue`` as a contender of W1 and W3, and its cost against ``AsyncQueue``.

A Queue row runs the workload from plain synchronous code, as a script would: the timed part
starts with creating the queue, so it includes starting the queue's event loop thread, and
ends when ``run()`` returns (W1) or after ``shutdown()`` (W3, which times AsyncQueue's
shutdown too, for its thread pool). Two shapes: submit everything, then ``run()`` (the
AsyncQueue rows' shape), and ``with``-style, where the queue is started first, so every
``submit()`` from the main thread hands its task to the running loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import Any

from ._runner import Contender, Metric, Row

TARGET = 1.2  # issue 11: Queue costs at most 1.2x AsyncQueue on W1 and W3


def queue_run(fn: Callable[[int], Any], n: int, queue_args: dict[str, Any], loop: str, started: bool,
              shutdown_timed: bool) -> float:
    """``Queue(**queue_args)``, submit ``fn(i)`` for ``i < n`` (after ``start()`` if ``started``), ``run()``."""
    from osiiso import Queue

    start = perf_counter()
    queue = Queue(loop=loop, **queue_args)
    if started:
        queue.start()
    submit = queue.submit
    for i in range(n):
        submit(fn, i)
    summary = queue.run()
    if shutdown_timed:
        queue.shutdown()
    elapsed = perf_counter() - start
    if not shutdown_timed:
        queue.shutdown()
    done = len(queue.results)
    if done != n or summary.failed or summary.cancelled:
        raise AssertionError(f"osiiso Queue: {done} of {n} tasks recorded, {summary.failed} failed")
    values = sorted(r.value for r in queue.results)
    if values[0] != 0 or values[-1] != n - 1:
        raise AssertionError("osiiso Queue: wrong results")
    return elapsed


def queue_contenders(fn: Callable[[int], Any], n: int, queue_args: dict[str, Any], loops: list[str],
                     shutdown_timed: bool) -> list[Contender]:
    """Queue rows: each loop with the submit-then-run shape, and asyncio in the started shape."""
    rows = [Contender("osiiso Queue (blocking): submit all, run()",
                      partial(queue_run, fn, n, queue_args, loop, False, shutdown_timed), loop, True)
            for loop in loops]
    rows.append(Contender("osiiso Queue (blocking), started: submit to the running loop, run()",
                          partial(queue_run, fn, n, queue_args, "asyncio", True, shutdown_timed), "asyncio", True))
    return rows


def queue_metrics(rows: list[Row]) -> list[Metric]:
    """Queue median / AsyncQueue median on the same loop, for every Queue row (target <= 1.2x)."""
    metrics = []
    for row in rows:
        if not row.name.startswith("osiiso Queue"):
            continue
        base = next((r for r in rows if r.name == "osiiso" and r.loop == row.loop and r.times), None)
        name = f"{row.name} / AsyncQueue, {row.loop}"
        if base is None or not row.times:
            metrics.append(Metric(name, "no data", f"<= {TARGET}x", False))
            continue
        ratio = row.median / base.median
        metrics.append(Metric(name, f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET))
    return metrics
