"""Process-pool contenders shared by W4 (tiny tasks) and W5 (CPU-bound): osiiso and its peers.

Every driver runs ``fn(x)`` for each ``x`` in ``items`` on ``PROCESSES`` worker processes,
on a **warm pool**: it creates the pool, warms it with ``WARM`` calls of ``fn(warm)``
submitted together (at least one per worker, so that pools that start workers on demand,
like ``ProcessPoolExecutor`` with forkserver, have both running), then times only the work
on ``items``, from the first submission to the last result, and closes the pool after.
Cold start is W6's subject. Results are checked outside the timed part.

Start method: ``forkserver`` wherever the library takes one (``ProcessPoolExecutor``,
``multiprocessing.Pool``, pebble, mpire, osiiso, whose default it is). loky and anyio
start their workers their own way (loky's ``loky`` context, anyio a ``python -c`` child).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any

from ._runner import Contender, installed, run_on

PROCESSES = 2
WARM = 2 * PROCESSES
METHOD = "forkserver"
Fn = Callable[[Any], Any]
Driver = Callable[[Fn, list[Any], Any], tuple[float, list[Any]]]


def _ctx() -> Any:
    return multiprocessing.get_context(METHOD)


# -- concurrent.futures and multiprocessing --------------------------------------------
def ppe_one_at_a_time(fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``loop.run_in_executor(ProcessPoolExecutor(2), fn, x)`` per item, gathered."""

    async def main() -> tuple[float, list[Any]]:
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(PROCESSES, mp_context=_ctx()) as pool:
            await asyncio.gather(*[loop.run_in_executor(pool, fn, warm) for _ in range(WARM)])
            start = perf_counter()
            out = await asyncio.gather(*[loop.run_in_executor(pool, fn, x) for x in items])
            return perf_counter() - start, list(out)

    return asyncio.run(main())


def ppe_map(chunksize: int, fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``ProcessPoolExecutor(2).map(fn, items, chunksize=...)``, synchronous."""
    with ProcessPoolExecutor(PROCESSES, mp_context=_ctx()) as pool:
        list(pool.map(fn, [warm] * WARM))
        start = perf_counter()
        out = list(pool.map(fn, items, chunksize=chunksize))
        return perf_counter() - start, out


def mp_pool_map(chunksize: int | None, fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``multiprocessing.Pool(2).map(fn, items[, chunksize])`` (default: len / (4 x 2) per chunk)."""
    with _ctx().Pool(PROCESSES) as pool:
        pool.map(fn, [warm] * WARM, chunksize=1)
        start = perf_counter()
        out = pool.map(fn, items, chunksize)
        elapsed = perf_counter() - start
    return elapsed, out


# -- third-party pools ----------------------------------------------------------------
def loky_submit(fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``loky.ProcessPoolExecutor(2).submit(fn, x)`` per item, then every ``result()``."""
    import loky  # type: ignore[import-untyped]

    pool = loky.ProcessPoolExecutor(max_workers=PROCESSES)
    try:
        [f.result() for f in [pool.submit(fn, warm) for _ in range(WARM)]]
        start = perf_counter()
        futures = [pool.submit(fn, x) for x in items]
        out = [f.result() for f in futures]
        return perf_counter() - start, out
    finally:
        pool.shutdown(wait=True)


def pebble_schedule(fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``pebble.ProcessPool(2).schedule(fn, (x,))`` per item (each could take a timeout)."""
    import pebble

    with pebble.ProcessPool(max_workers=PROCESSES, context=_ctx()) as pool:
        [f.result() for f in [pool.schedule(fn, (warm,)) for _ in range(WARM)]]
        start = perf_counter()
        futures = [pool.schedule(fn, (x,)) for x in items]
        out = [f.result() for f in futures]
        return perf_counter() - start, out


def mpire_map(chunk_size: int | None, fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``mpire.WorkerPool(2, keep_alive=True).map(fn, items[, chunk_size])`` (default: automatic chunks)."""
    from mpire import WorkerPool  # type: ignore[attr-defined]

    with WorkerPool(n_jobs=PROCESSES, start_method=METHOD, keep_alive=True) as pool:
        pool.map(fn, [warm] * WARM, chunk_size=1)
        start = perf_counter()
        out = pool.map(fn, items, chunk_size=chunk_size)
        return perf_counter() - start, out


def anyio_to_process(fn: Fn, items: list[Any], warm: Any) -> tuple[float, list[Any]]:
    """``anyio.to_process.run_sync(fn, x, limiter=CapacityLimiter(2))`` per item, in a task group."""
    import anyio
    import anyio.to_process

    async def main() -> tuple[float, list[Any]]:
        limiter = anyio.CapacityLimiter(PROCESSES)
        out: list[Any] = [None] * len(items)

        async def one(i: int, x: Any) -> None:
            out[i] = await anyio.to_process.run_sync(fn, x, limiter=limiter)

        async with anyio.create_task_group() as tg:
            for _ in range(WARM):
                tg.start_soon(partial(anyio.to_process.run_sync, fn, warm, limiter=limiter))
        start = perf_counter()
        async with anyio.create_task_group() as tg:
            for i, x in enumerate(items):
                tg.start_soon(one, i, x)
        return perf_counter() - start, out

    # anyio's workers re-run the parent's ``__main__`` file by path; ``benchmarks/__main__.py``
    # uses relative imports and cannot run that way, so hide its path while they start
    main_module = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        return run_on("asyncio", main)  # type: ignore[arg-type,return-value]
    finally:
        sys.modules["__main__"] = main_module


# -- osiiso ---------------------------------------------------------------------------
def osiiso_run(how: str, loop: str, fn: Fn, items: list[Any], warm: Any, *,
               batching: bool = True) -> tuple[float, list[Any]]:
    """``AsyncQueue(processes=2)``: ``q.submit(fn, x, backend="process")`` per item or one ``q.map``.

    ``batching=False`` runs it with ``process_batching=False`` (each task on its own).
    """

    async def main() -> tuple[float, list[Any]]:
        from osiiso import AsyncQueue

        queue = AsyncQueue(processes=PROCESSES, process_batching=batching)
        try:
            queue.map(fn, [warm] * WARM, backend="process")
            await queue.run(strict=True)
            start = perf_counter()
            if how == "map":
                handles = queue.map(fn, items, backend="process")
            else:
                handles = [queue.submit(fn, x, backend="process") for x in items]
            summary = await queue.run()
            elapsed = perf_counter() - start
            if summary.succeeded != len(items):
                raise AssertionError(f"osiiso: {summary.succeeded} of {len(items)} succeeded: {summary}")
            return elapsed, [h.result().value for h in handles]
        finally:
            await queue.shutdown()

    return run_on(loop, main)  # type: ignore[arg-type,return-value]


# -- the contender list -------------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    name: str
    driver: Driver
    loop: str = "asyncio"
    osiiso: bool = False
    needs: str | None = None


def peers(chunked: bool) -> list[Peer]:
    """osiiso first (``map`` is the row the ratios use), then the peers.

    ``chunked``: W4 adds ``ProcessPoolExecutor.map`` with chunksize 100 and lets
    ``multiprocessing.Pool`` and mpire pick their own (big) chunks; W5 sends one task
    per message everywhere (chunksize 1), which is what balances 16 long tasks.
    """
    chunk = None if chunked else 1
    default = "default chunks" if chunked else "chunksize 1"
    plan = [
        Peer("osiiso q.map", partial(osiiso_run, "map", "asyncio"), osiiso=True),
        Peer("osiiso submit per task", partial(osiiso_run, "submit", "asyncio"), osiiso=True),
    ]
    if chunked:
        plan.append(Peer("osiiso q.map, batching off", partial(osiiso_run, "map", "asyncio", batching=False),
                         osiiso=True))
    plan += [
        Peer("ProcessPoolExecutor run_in_executor per task", ppe_one_at_a_time),
        Peer("ProcessPoolExecutor.map chunksize 1", partial(ppe_map, 1), "none"),
    ]
    if chunked:
        plan.append(Peer("ProcessPoolExecutor.map chunksize 100", partial(ppe_map, 100), "none"))
    plan += [
        Peer(f"multiprocessing.Pool.map {default}", partial(mp_pool_map, chunk), "none"),
        Peer("loky ProcessPoolExecutor submit per task", loky_submit, "none", needs="loky"),
        Peer("pebble ProcessPool.schedule per task", pebble_schedule, "none", needs="pebble"),
        Peer(f"mpire WorkerPool.map {default}", partial(mpire_map, chunk), "none", needs="mpire"),
        Peer("anyio to_process.run_sync, limiter 2", anyio_to_process, needs="anyio"),
    ]
    return plan


def contenders(fn: Fn, items: list[Any], warm: Any, expected: list[Any], chunked: bool,
               notes: list[str]) -> list[Contender]:
    out = []
    for peer in peers(chunked):
        if peer.needs and not installed(peer.needs):
            notes.append(f"skipped {peer.name}: {peer.needs} is not installed (pip install osiiso[bench])")
            continue
        out.append(Contender(peer.name, partial(_checked, peer.name, peer.driver, fn, items, warm, expected),
                             peer.loop, peer.osiiso))
    return out


def _checked(name: str, driver: Driver, fn: Fn, items: list[Any], warm: Any, expected: list[Any]) -> float:
    elapsed, out = driver(fn, items, warm)
    if list(out) != expected:
        raise AssertionError(f"{name}: wrong results ({len(out)} of {len(expected)})")
    return elapsed
