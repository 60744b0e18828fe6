"""Async fan-out, done each way W1 and W2 compare: osiiso's queue and the peers a user would write.

Every function runs ``task(i)`` for ``i in range(n)`` with at most ``limit`` running at once,
returns the seconds from creating its queue or primitive to holding every result, and checks
the results outside the timed part. Only the standard library is imported at the top, so
``original_osiiso.py`` can load this file under another interpreter; anyio and trio are
imported where used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

Task = Callable[[int], Awaitable[int]]


def _check(results: Any, n: int) -> None:
    if len(results) != n or results[0] != 0 or results[-1] != n - 1:
        raise AssertionError(f"wrong results: {len(results)} of {n}")


async def osiiso_queue(task: Task, n: int, limit: int, queue_class: Any = None, progress: bool = False) -> float:
    """``AsyncQueue(workers=limit)``, submit everything, then ``await q.run(progress=progress)``."""
    if queue_class is None:
        from osiiso import AsyncQueue as queue_class
    start = perf_counter()
    queue = queue_class(workers=limit)
    submit = queue.submit
    for i in range(n):
        submit(task, i)
    # progress only when asked: the original osiiso's run() (benchmarks/original_osiiso.py) takes no argument
    summary = await (queue.run(progress=True) if progress else queue.run())
    elapsed = perf_counter() - start
    if summary.succeeded != n:
        raise AssertionError(f"osiiso: {summary.succeeded} of {n} succeeded")
    _check(sorted(summary.values), n)  # values may come in completion order
    return elapsed


async def osiiso_seed(task: Task, n: int, limit: int) -> float:
    """The seed page's form: ``async with AsyncQueue(workers=limit) as q:``, ``q.task(task)`` called
    per item (each call submits to the running queue), ``await q.run()``; timed to the end of the
    ``async with`` (its shutdown included)."""
    from osiiso import AsyncQueue

    start = perf_counter()
    async with AsyncQueue(workers=limit) as queue:
        bound = queue.task(task)
        for i in range(n):
            bound(i)
        summary = await queue.run()
    elapsed = perf_counter() - start
    if summary.succeeded != n:
        raise AssertionError(f"osiiso seed form: {summary.succeeded} of {n} succeeded")
    _check(sorted(summary.values), n)
    return elapsed


async def asyncio_gather(task: Task, n: int, limit: int) -> float:
    """``asyncio.gather`` over every coroutine, each guarded by one ``asyncio.Semaphore(limit)``."""
    start = perf_counter()
    sem = asyncio.Semaphore(limit)

    async def guarded(i: int) -> int:
        async with sem:
            return await task(i)

    results = await asyncio.gather(*[guarded(i) for i in range(n)])
    elapsed = perf_counter() - start
    _check(results, n)
    return elapsed


async def asyncio_workers(task: Task, n: int, limit: int) -> float:
    """``limit`` worker coroutines pulling from one shared iterator (the hand-written floor)."""
    start = perf_counter()
    results: list[Any] = [None] * n
    items = iter(range(n))

    async def worker() -> None:
        for i in items:
            results[i] = await task(i)

    await asyncio.gather(*[worker() for _ in range(limit)])
    elapsed = perf_counter() - start
    _check(results, n)
    return elapsed


async def anyio_task_group(task: Task, n: int, limit: int) -> float:
    """An anyio task group starting every task, each holding an ``anyio.CapacityLimiter(limit)``."""
    import anyio

    start = perf_counter()
    limiter = anyio.CapacityLimiter(limit)
    results: list[Any] = [None] * n

    async def one(i: int) -> None:
        async with limiter:
            results[i] = await task(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    elapsed = perf_counter() - start
    _check(results, n)
    return elapsed


async def trio_nursery(task: Task, n: int, limit: int) -> float:
    """A trio nursery starting every task, each holding a ``trio.CapacityLimiter(limit)``."""
    import trio

    start = perf_counter()
    limiter = trio.CapacityLimiter(limit)
    results: list[Any] = [None] * n

    async def one(i: int) -> None:
        async with limiter:
            results[i] = await task(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    elapsed = perf_counter() - start
    _check(results, n)
    return elapsed
