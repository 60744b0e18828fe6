"""W4's osiiso ``q.map`` (batching on), repeated on one warm queue: a target for a profiler.

Not a workload of ``python -m benchmarks``. Run it under py-spy to see where the parent's loop
thread spends its time per task (docs/benchmarks.md, "The parent's cost per task")::

    py-spy record -r 250 -f raw -o /tmp/w4.raw -- python -m benchmarks.w4_profile 5000 20

It prints each map's wall time, the median per task, and the loop thread's CPU per task
(``time.thread_time``), which a loaded machine disturbs less than wall time.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from .w4_process_tiny import h


async def main(n: int, maps: int) -> None:
    from osiiso import AsyncQueue

    queue = AsyncQueue(processes=2)
    try:
        queue.map(h, [1] * 4, backend="process")  # warm: the workers up, ``h`` timed as short
        await queue.run(strict=True)
        walls, cpus = [], []
        for _ in range(maps):
            start, cpu = time.perf_counter(), time.thread_time()
            queue.map(h, range(n), backend="process")
            summary = await queue.run()
            cpus.append(time.thread_time() - cpu)
            walls.append(time.perf_counter() - start)
            if summary.succeeded != n:
                raise AssertionError(f"{summary.succeeded} of {n} succeeded: {summary}")
        print("maps (s):", " ".join(f"{w:.3f}" for w in walls))
        print(f"median per task: wall {statistics.median(walls) / n * 1e6:.1f} us, "
              f"loop-thread CPU {statistics.median(cpus) / n * 1e6:.1f} us")
    finally:
        await queue.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 20))
