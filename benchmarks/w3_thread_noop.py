"""W3 thread no-op: 10,000 calls of a sync ``f(i): return i`` on 8 threads.

Measures the per-task cost of handing sync work to a thread pool and getting the result
back on the loop. osiiso: ``AsyncQueue(workers=8, threads=8)``, submit all, ``run()``, then
``shutdown()`` (the pool's threads outlive ``run()`` until then). Peers:
``loop.run_in_executor(ThreadPoolExecutor(8))`` gathered, anyio ``to_thread.run_sync`` in a
task group with a ``CapacityLimiter(8)``, and plain sync ``ThreadPoolExecutor(8).map``.
Executors are created and shut down inside the timed part, like osiiso's pool.
Target (issue 5): osiiso >= 1.0x ``run_in_executor``. The blocking ``osiiso.Queue`` does the
same from synchronous code, ``shutdown()`` included (``_blocking``); its cost against
``AsyncQueue`` is reported as a metric (target, issue 11: <= 1.2x).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from time import perf_counter
from typing import Any

from ._blocking import queue_contenders, queue_metrics
from ._runner import Config, Contender, Report, installed, interleave, run_on

TITLE = "thread no-op: 10,000 sync calls on 8 threads"
N, THREADS = 10_000, 8


def f(i: int) -> int:
    return i


def _check(results: Any) -> None:
    results = sorted(results)
    if len(results) != N or results[0] != 0 or results[-1] != N - 1:
        raise AssertionError(f"wrong results: {len(results)} of {N}")


async def osiiso_threads() -> float:
    from osiiso import AsyncQueue

    start = perf_counter()
    queue = AsyncQueue(workers=THREADS, threads=THREADS)
    for i in range(N):
        queue.submit(f, i)
    summary = await queue.run()
    await queue.shutdown()
    elapsed = perf_counter() - start
    if summary.succeeded != N:
        raise AssertionError(f"osiiso: {summary.succeeded} of {N} succeeded")
    _check(summary.values)
    return elapsed


async def run_in_executor() -> float:
    start = perf_counter()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(THREADS) as pool:
        results = await asyncio.gather(*[loop.run_in_executor(pool, f, i) for i in range(N)])
    elapsed = perf_counter() - start
    _check(results)
    return elapsed


async def anyio_to_thread() -> float:
    import anyio
    import anyio.to_thread

    start = perf_counter()
    limiter = anyio.CapacityLimiter(THREADS)
    results: list[Any] = [None] * N

    async def one(i: int) -> None:
        results[i] = await anyio.to_thread.run_sync(f, i, limiter=limiter)

    async with anyio.create_task_group() as tg:
        for i in range(N):
            tg.start_soon(one, i)
    elapsed = perf_counter() - start
    _check(results)
    return elapsed


def executor_map() -> float:
    start = perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(f, range(N)))
    elapsed = perf_counter() - start
    _check(results)
    return elapsed


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W3", TITLE)
    contenders = [
        Contender("osiiso", partial(run_on, "asyncio", osiiso_threads), "asyncio", True),
        Contender("run_in_executor(ThreadPoolExecutor) gathered", partial(run_on, "asyncio", run_in_executor)),
        Contender("ThreadPoolExecutor.map (sync)", executor_map, "none"),
    ]
    if installed("anyio"):
        contenders.insert(2, Contender("anyio to_thread.run_sync + CapacityLimiter",
                                       partial(run_on, "asyncio", anyio_to_thread)))
    if installed("trio"):
        contenders.append(Contender("osiiso", partial(run_on, "trio", osiiso_threads), "trio", True))
    loops = ["asyncio", "trio"] if installed("trio") else ["asyncio"]
    contenders += queue_contenders(f, N, {"workers": THREADS, "threads": THREADS}, loops, shutdown_timed=True)
    report.rows = interleave(contenders, N, config.pick(full=7, quick=3))
    report.metrics = queue_metrics(report.rows)
    report.notes.append("ratio = peer median / osiiso-on-asyncio median (>1: osiiso faster); "
                        "target >= 1.0x run_in_executor")
    report.seconds = time.perf_counter() - start
    return report
