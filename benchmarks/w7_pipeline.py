"""W7 mixed pipeline: 2,000 items through async fetch -> process parse -> thread write.

Per item: ``fetch(i)`` waits 5 ms (simulated network latency) and returns a 4 KB page;
``parse(page)`` does a little CPU work in a worker process (a byte sum and a SHA-256 of
the page); ``write(row)`` appends the row to a list under a lock in a thread.

* osiiso, handles as arguments: ``page = q.submit(fetch, i)``,
  ``parsed = q.submit(parse, page, backend="process")``,
  ``q.submit(write, parsed, backend="thread")`` for every item, then one ``run()``, on
  ``AsyncQueue(workers=64, processes=2, threads=4)``. A second osiiso row does the same
  with bound tasks (``parse_task = q.task(parse, backend="process")``, then
  ``write_task(parse_task(fetch_task(i)))``), whose options are merged once, not per call.
* hand-written: 2,000 coroutines gathered, each ``async with sem: page = await fetch(i)``
  (``asyncio.Semaphore(64)``), ``await loop.run_in_executor(ppe, parse, page)``,
  ``await loop.run_in_executor(tpe, write, row)``, with ``ProcessPoolExecutor(2)`` and
  ``ThreadPoolExecutor(4)``.

Warm pools for both, as in W4: each run creates its queue or executors, sends one item
through the whole pipeline outside the timing, times the 2,000 items from the first
submission to the last write, then closes. Start method forkserver for both (osiiso's
default). The floor is the fetch stage: 2,000 / 64 x 5 ms = 0.16 s.
Target (issue 5): osiiso >= 1.0x the hand-written pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from time import perf_counter

from ._runner import Config, Contender, Metric, Report, interleave, run_on

TITLE = "mixed pipeline: 2,000 x async fetch (5 ms) -> process parse -> thread write"
N, FETCH_LIMIT, DELAY, PAGE = 2_000, 64, 0.005, 4096
PROCESSES, THREADS = 2, 4

SINK: list[tuple[int, int, str]] = []
LOCK = threading.Lock()


def page_of(i: int) -> bytes:
    return i.to_bytes(4, "little") * (PAGE // 4)


async def fetch(i: int) -> bytes:
    import anyio

    await anyio.sleep(DELAY)
    return page_of(i)


async def fetch_asyncio(i: int) -> bytes:
    await asyncio.sleep(DELAY)
    return page_of(i)


def parse(page: bytes) -> tuple[int, int, str]:
    return int.from_bytes(page[:4], "little"), sum(page), hashlib.sha256(page).hexdigest()[:16]


def write(row: tuple[int, int, str]) -> int:
    with LOCK:
        SINK.append(row)
        return len(SINK)


def _check() -> None:
    keys = sorted(row[0] for row in SINK)
    if keys != list(range(N)):
        raise AssertionError(f"wrong rows written: {len(keys)} of {N}")
    expected = parse(page_of(7))
    if next(row for row in SINK if row[0] == 7) != expected:
        raise AssertionError("wrong parse result for item 7")


async def osiiso_pipeline(workers: int, bound: bool = False) -> float:
    from osiiso import AsyncQueue

    queue = AsyncQueue(workers=workers, processes=PROCESSES, threads=THREADS)
    try:
        if bound:  # options merged once per function, not once per call
            fetch_task, parse_task = queue.task(fetch), queue.task(parse, backend="process")
            write_task = queue.task(write, backend="thread")

            def item(i: int) -> None:
                write_task(parse_task(fetch_task(i)))  # type: ignore[arg-type]
        else:

            def item(i: int) -> None:
                page = queue.submit(fetch, i)
                parsed = queue.submit(parse, page, backend="process")
                queue.submit(write, parsed, backend="thread")

        item(0)
        await queue.run(strict=True)
        SINK.clear()
        start = perf_counter()
        for i in range(N):
            item(i)
        summary = await queue.run()
        elapsed = perf_counter() - start
        if summary.succeeded != 3 * N:
            raise AssertionError(f"osiiso: {summary.succeeded} of {3 * N} tasks succeeded: {summary}")
    finally:
        await queue.shutdown()
    _check()
    return elapsed


async def hand_written() -> float:
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as ppe, ThreadPoolExecutor(THREADS) as tpe:
        sem = asyncio.Semaphore(FETCH_LIMIT)

        async def item(i: int) -> int:
            async with sem:
                page = await fetch_asyncio(i)
            row = await loop.run_in_executor(ppe, parse, page)
            return await loop.run_in_executor(tpe, write, row)

        await asyncio.gather(*[loop.run_in_executor(ppe, parse, page_of(0)) for _ in range(2 * PROCESSES)])
        await item(0)
        SINK.clear()
        start = perf_counter()
        await asyncio.gather(*[item(i) for i in range(N)])
        elapsed = perf_counter() - start
    _check()
    return elapsed


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W7", TITLE)
    load = os.getloadavg()[0]
    contenders = [
        Contender("osiiso, handles as arguments", partial(run_on, "asyncio", partial(osiiso_pipeline, FETCH_LIMIT)),
                  "asyncio", True),
        Contender("asyncio + ProcessPoolExecutor + ThreadPoolExecutor", partial(run_on, "asyncio", hand_written)),
        Contender("osiiso, bound tasks (q.task)",
                  partial(run_on, "asyncio", partial(osiiso_pipeline, FETCH_LIMIT, True)), "asyncio", True),
    ]
    report.rows = interleave(contenders, N, config.pick(full=7, quick=3), warmup=0 if config.quick else 1)
    ours, peer, bound = report.rows
    for row in (ours, bound):
        if row.times and peer.times:
            ratio = peer.median / row.median
            report.metrics.append(Metric(f"{row.name} vs hand-written", f"{ratio:.2f}x", ">= 1.00x", ratio >= 1.0))
    report.notes += [
        "warm pools (one item through the whole pipeline before the clock); tasks/s counts items",
        "osiiso's workers=64 caps every stage together (fetch, parse, write); the hand-written "
        "semaphore caps only the fetch stage",
        "ratio = hand-written median / osiiso (submit form) median (>1: osiiso faster); fetch floor 0.16 s",
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores, shared)",
    ]
    report.seconds = time.perf_counter() - start
    return report
