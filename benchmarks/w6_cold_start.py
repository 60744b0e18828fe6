"""W6 process cold start: queue (or pool) creation to the first result, per start method.

osiiso ``AsyncQueue(processes=2, mp_context=METHOD)`` + one ``submit(h, 3, backend="process")``
+ ``run()`` against ``ProcessPoolExecutor(2, mp_context=get_context(METHOD))`` +
``run_in_executor(pool, h, 3)``, for ``forkserver``, ``spawn`` and ``fork``. Every
measurement runs in a fresh child (``python -m benchmarks.w6_cold_start KIND METHOD``), so no
forkserver or worker is left over from an earlier one; the children alternate (osiiso, PPE,
osiiso, ...) and the table gives the median of N per start method.

Import cost is **excluded** for both: the child imports ``osiiso``, its process backend and
anyio's asyncio backend (both loaded lazily on first use) and ``concurrent.futures.process``,
and starts its event loop, before the clock starts, and stops it at the first result (closing
the pool is not timed). What a first result costs beyond that differs by design: spawned or
forkserver ``ProcessPoolExecutor`` workers import the parent's ``__main__`` module (here this
small file), osiiso's workers never re-run ``__main__`` and load only their own code.
Target (issue 5): osiiso <= ``ProcessPoolExecutor`` with the same start method.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ._runner import Config, Metric, Report, Row, add_ratios

TITLE = "process cold start: creation to first result, per start method, fresh child each"
METHODS = ("forkserver", "spawn", "fork")
KINDS = ("osiiso", "ProcessPoolExecutor")
ROOT = Path(__file__).resolve().parent.parent


def h(i: int) -> int:
    return i * i


# -- child side ---------------------------------------------------------------------------------
async def _osiiso(method: str) -> float:
    from osiiso import AsyncQueue

    start = time.perf_counter()
    queue = AsyncQueue(processes=2, mp_context=method)
    handle = queue.submit(h, 3, backend="process")
    await queue.run(strict=True)
    elapsed = time.perf_counter() - start
    await queue.shutdown()
    assert handle.result().value == 9
    return elapsed


async def _ppe(method: str) -> float:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method))
    value = await loop.run_in_executor(pool, h, 3)
    elapsed = time.perf_counter() - start
    pool.shutdown(wait=True)
    assert value == 9
    return elapsed


def child(kind: str, method: str) -> None:
    # every module either contender loads, imported before the clock by both (import cost excluded):
    # osiiso loads its process backend and anyio its asyncio backend lazily, on first use
    import concurrent.futures.process  # noqa: F401

    import anyio._backends._asyncio  # noqa: F401

    import osiiso
    import osiiso.backends.process  # noqa: F401

    elapsed = asyncio.run(_osiiso(method) if kind == "osiiso" else _ppe(method))
    print(json.dumps({"seconds": elapsed}), flush=True)


# -- parent side --------------------------------------------------------------------------------
def measure(kind: str, method: str) -> float:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.w6_cold_start", kind, method], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} {method} failed:\n{proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W6", TITLE)
    rounds = config.pick(full=9, quick=5)
    load = os.getloadavg()[0]
    for method in METHODS:
        rows = [Row(kind if kind == "osiiso" else "ProcessPoolExecutor(2)", method, kind == "osiiso", 1)
                for kind in KINDS]
        for r in range(rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                try:
                    rows[i].times.append(measure(KINDS[i], method))
                except Exception as exc:  # one start method failing must not stop the others
                    rows[i].error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        add_ratios(rows)
        report.rows += rows
        if all(row.times for row in rows):
            ratio = rows[1].median / rows[0].median
            report.metrics.append(Metric(f"{method}: osiiso {rows[0].median * 1e3:.0f} ms, "
                                         f"ProcessPoolExecutor {rows[1].median * 1e3:.0f} ms",
                                         f"{ratio:.2f}x", ">= 1.00x", ratio >= 1.0))
    report.notes += [
        f"median of {rounds} fresh children per contender and start method, alternated; "
        "import cost excluded for both (imports done before the clock), pool shutdown not timed",
        "the 'loop' column is the start method; ratio = ProcessPoolExecutor median / osiiso median "
        "(>1: osiiso starts faster); tasks/s is 1 / median",
        f"load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores, shared)",
    ]
    report.seconds = time.perf_counter() - start
    return report


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
