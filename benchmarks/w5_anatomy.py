"""Where W5's wall time goes: a per-worker timeline of osiiso ``q.map`` and ``Pool.map``.

W5's contenders all land within a few percent of the ideal (serial time / 2) and of each
other, and the order among them changes from run to run. This script shows what the
remaining time is made of, for osiiso and for ``multiprocessing.Pool.map(chunksize=1)``
(usually W5's best peer), in alternating rounds on warm pools of two workers::

    python -m benchmarks.w5_anatomy [--rounds 6]

Each task is W5's ``burn`` wrapped to return its worker's pid, its start and end times
(``time.perf_counter``, one clock for every process on Linux) and the CPU time of its
thread. Per contender the medians over the rounds of:

* ``wall``: first submission to last result;
* ``compute / 2``: the tasks' own run time summed over both workers, halved (the ideal);
* ``imbalance``: how much sooner the first worker ran out of tasks than the second;
* ``gaps``: time a worker sat idle between two of its tasks (the round trip to the parent);
* ``edges``: first submission to first task start, plus last task end to last result;
* ``wall/cpu``: run time over CPU time inside the tasks (above 1: the task waited for a CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import time
from typing import Any

from .w5_process_cpu import TASKS, burn, calibrate

Span = tuple[int, float, float, float]  # pid, start, end, cpu seconds


def timed_burn(n: int) -> Span:
    start, cpu = time.perf_counter(), time.thread_time()
    burn(n)
    return os.getpid(), start, time.perf_counter(), time.thread_time() - cpu


async def _osiiso(n: int) -> tuple[float, float, list[Span]]:
    from osiiso import AsyncQueue

    queue = AsyncQueue(processes=2)
    try:
        queue.map(timed_burn, [1] * 4, backend="process")
        await queue.run(strict=True)
        start = time.perf_counter()
        handles = queue.map(timed_burn, [n] * TASKS, backend="process")
        await queue.run(strict=True)
        end = time.perf_counter()
    finally:
        await queue.shutdown()
    return start, end, [h.value() for h in handles]


def osiiso_map(n: int) -> tuple[float, float, list[Span]]:
    return asyncio.run(_osiiso(n))


def pool_map(n: int) -> tuple[float, float, list[Span]]:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        pool.map(timed_burn, [1] * 4, chunksize=1)
        start = time.perf_counter()
        spans = pool.map(timed_burn, [n] * TASKS, chunksize=1)
        end = time.perf_counter()
    return start, end, spans


def anatomy(start: float, end: float, spans: list[Span]) -> dict[str, float]:
    """The figures of one round (seconds, except ``wall/cpu``)."""
    by_pid: dict[int, list[Span]] = {}
    for span in spans:
        by_pid.setdefault(span[0], []).append(span)
    gaps = 0.0
    finishes = []
    for own in by_pid.values():
        own.sort(key=lambda s: s[1])
        gaps += sum(b[1] - a[2] for a, b in itertools.pairwise(own))
        finishes.append(own[-1][2])
    compute = sum(s[2] - s[1] for s in spans)
    return {
        "wall": end - start,
        "compute / 2": compute / 2,
        "imbalance": max(finishes) - min(finishes) if len(finishes) == 2 else float("nan"),
        "gaps": gaps,
        "edges": (min(s[1] for s in spans) - start) + (end - max(s[2] for s in spans)),
        "wall/cpu": compute / sum(s[3] for s in spans),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w5_anatomy", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    n = calibrate()
    contenders: dict[str, Any] = {"osiiso q.map": osiiso_map, "multiprocessing.Pool.map chunksize 1": pool_map}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            figures[name].append(anatomy(*contenders[name](n)))
    keys = list(next(iter(figures.values()))[0])
    print(f"W5 anatomy: {TASKS} tasks of burn({n}) on 2 workers, medians of {args.rounds} rounds")
    print("contender".ljust(38) + "".join(k.rjust(13) for k in keys))
    for name, rows in figures.items():
        cells = []
        for key in keys:
            value = statistics.median(row[key] for row in rows)
            cells.append(f"{value:.4f}" if key == "wall/cpu" else f"{value * 1e3:.1f} ms")
        print(name.ljust(38) + "".join(c.rjust(13) for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
