"""W8 memory and scaling, each figure from a fresh subprocess.

1. Bytes per queued task: inside a running asyncio loop, the child's resident set
   (``/proc/self/statm``, after ``gc.collect()``) before and after submitting 100,000 no-op
   coroutine tasks that are not run; also the same delta by ``tracemalloc`` (exact Python
   allocations, separate child) and peak RSS (``VmHWM``, else ``resource.getrusage``). For context, the same
   delta for 100,000 ``asyncio.create_task`` (created, not yet run) and for 100,000 bare
   coroutine objects. Target (issues 2 and 5): <= 1.5 KB per queued task.
2. Scaling: time per task of submit + run with ``workers=64`` for 10,000 tasks and for
   1,000,000 (300,000 with ``--quick``), after a 1,000-task warm-up in the same child.
   Target: the large run within 1.3x of the small one per task.

The child is ``python -m benchmarks.w8_memory KIND N``; it prints one JSON line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ._runner import Config, Metric, Report, Row, run_guarded

TITLE = "memory per queued task, and time per task from 10k to 1M tasks"
QUEUED = 100_000
SMALL, LARGE, LARGE_QUICK = 10_000, 1_000_000, 300_000
ROOT = Path(__file__).resolve().parent.parent
KB = 1024


async def noop(i: int) -> int:
    return i


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """This process's peak RSS. ``VmHWM`` first: ``getrusage``'s ``ru_maxrss`` survives
    fork + exec on Linux, so a child would inherit the harness's own peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * KB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB  # kilobytes on Linux


# -- child side ---------------------------------------------------------------------------------
def _hold(kind: str, n: int) -> list[object]:
    """Queue ``n`` tasks the ``kind`` way without running them; return what keeps them alive."""
    if kind == "osiiso":
        from osiiso import AsyncQueue

        queue = AsyncQueue(workers=64)
        return [queue, [queue.submit(noop, i) for i in range(n)]]
    if kind == "asyncio-task":
        return [asyncio.create_task(noop(i)) for i in range(n)]
    return [noop(i) for i in range(n)]  # "coroutine"


async def child_queued(kind: str, n: int, traced: bool) -> dict[str, float]:
    import tracemalloc

    if kind == "osiiso":
        import osiiso  # noqa: F401  (import cost stays out of the delta)
    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else rss()
    kept = _hold(kind, n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else rss()
    assert kept
    return {"per_task": (after - before) / n, "before": before, "after": after, "peak_rss": peak_rss()}


async def child_scale(n: int) -> dict[str, float]:
    from osiiso import AsyncQueue

    for size in (1_000, n):
        gc.collect()
        start = time.perf_counter()
        queue = AsyncQueue(workers=64)
        for i in range(size):
            queue.submit(noop, i)
        summary = await queue.run()
        elapsed = time.perf_counter() - start
        assert summary.succeeded == size, summary
    return {"seconds": elapsed, "peak_rss": peak_rss()}


def child(kind: str, n: int) -> None:
    if kind == "scale":
        out = asyncio.run(child_scale(n))
    else:
        out = asyncio.run(child_queued(kind.removesuffix("+traced"), n, kind.endswith("+traced")))
    print(json.dumps(out), flush=True)
    os._exit(0)  # skip teardown: the queued tasks were never meant to run


# -- parent side --------------------------------------------------------------------------------
def measure(kind: str, n: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.w8_memory", kind, str(n)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} {n} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory_metrics(report: Report, rounds: int) -> None:
    kinds = ["osiiso", "osiiso+traced", "asyncio-task", "coroutine"]
    got: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            got[kind].append(measure(kind, QUEUED))
    per = {k: statistics.median(m["per_task"] for m in v) for k, v in got.items()}
    limit = 1.5 * KB
    report.metrics += [
        Metric("osiiso bytes per queued task (RSS)", f"{per['osiiso']:,.0f} B", "<= 1,536 B", per["osiiso"] <= limit),
        Metric("osiiso bytes per queued task (tracemalloc)", f"{per['osiiso+traced']:,.0f} B"),
        Metric(f"osiiso RSS before -> after {QUEUED:,} queued (peak)", _rss_line(got["osiiso"])),
        Metric("peer: asyncio.create_task, not run (RSS)", f"{per['asyncio-task']:,.0f} B"),
        Metric("peer: bare coroutine object (RSS)", f"{per['coroutine']:,.0f} B"),
    ]


def _rss_line(runs: list[dict[str, float]]) -> str:
    mib = KB * KB
    before, after = (statistics.median(m[k] for m in runs) / mib for k in ("before", "after"))
    return f"{before:,.1f} -> {after:,.1f} MiB ({max(m['peak_rss'] for m in runs) / mib:,.1f})"


def scaling(report: Report, large: int, rounds: int) -> None:
    rows = [Row(f"osiiso submit+run {n:,}", "asyncio", True, n) for n in (SMALL, large)]
    peaks = []
    for _ in range(rounds):
        for row in rows:
            out = measure("scale", row.tasks)
            row.times.append(out["seconds"])
            peaks.append(out["peak_rss"])
    report.rows += rows
    small, big = (row.median / row.tasks for row in rows)
    report.metrics += [
        Metric(f"time per task at {SMALL:,}", f"{small * 1e6:.2f} us"),
        Metric(f"time per task at {large:,}", f"{big * 1e6:.2f} us"),
        Metric(f"per-task ratio {large:,} / {SMALL:,}", f"{big / small:.2f}x", "<= 1.30x", big / small <= 1.3),
        Metric(f"peak RSS, submit+run {large:,}", f"{max(peaks) / KB**2:,.0f} MiB"),
    ]


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W8", TITLE)
    run_guarded(report, lambda: memory_metrics(report, config.pick(full=3, quick=1)))
    run_guarded(report, lambda: scaling(report, LARGE_QUICK if config.quick else LARGE, config.pick(full=3, quick=2)))
    report.notes.append("each figure comes from a fresh subprocess; medians over the rounds")
    report.seconds = time.perf_counter() - start
    return report


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]))
