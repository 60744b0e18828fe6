"""Checkpoint: resuming a fan-out whose 100,000 inputs are all stored (issue 11: under a second).

``python -m benchmarks.checkpoint_resume [--n 100000] [--rounds 5] [--json out.json]``

A real fan-out first stores N values in a fresh file: ``fetch(url)`` is an async no-op
returning a small dict, the inputs are N distinct URL-like strings. Each round then opens
the file anew with a new `Checkpoint` and a new queue and times
``q.map(fetch, urls, checkpoint=ck)`` (keys, one look-up, restored handles) until the N
values are in hand, in wall time and in CPU time of this process (the machine is shared:
CPU time is the steadier figure). For scale, the same fan-out is also timed running every
task with no checkpoint, and with a checkpoint into a fresh file (the cost of storing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import osiiso


async def fetch(url: str) -> dict[str, Any]:
    return {"url": url, "status": 200, "size": len(url)}


def urls(n: int) -> list[str]:
    return [f"https://example.org/items/{i}?page={i % 97}" for i in range(n)]


async def resume(path: str, inputs: list[str]) -> tuple[float, float]:
    """One round: open the file, map over every (stored) input, take the values."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    with osiiso.Checkpoint(path) as ck:
        async with osiiso.AsyncQueue() as q:
            handles = q.map(fetch, inputs, checkpoint=ck)
            values = [h.value() for h in handles]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(values) == len(inputs) and values[-1]["url"] == inputs[-1]
    assert all(h.result().restored for h in handles)
    return wall, cpu


async def run_all(path: str | None, inputs: list[str]) -> float:
    """Every task runs: with no checkpoint (``path`` None), or storing into a fresh file."""
    gc.collect()
    wall = time.perf_counter()
    if path is None:
        async with osiiso.AsyncQueue(workers=64) as q:
            handles = q.map(fetch, inputs)
    else:
        with osiiso.Checkpoint(path) as ck:
            async with osiiso.AsyncQueue(workers=64) as q:
                handles = q.map(fetch, inputs, checkpoint=ck)
    wall = time.perf_counter() - wall
    assert handles[-1].value()["url"] == inputs[-1]
    return wall


def stats(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


async def main(n: int, rounds: int) -> dict[str, Any]:
    inputs = urls(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resume.sqlite")
        store = [await run_all(os.path.join(tmp, f"store-{i}.sqlite"), inputs) for i in range(rounds)]
        plain = [await run_all(None, inputs) for _ in range(rounds)]
        await run_all(path, inputs)
        size = os.path.getsize(path)
        measured = [await resume(path, inputs) for _ in range(rounds + 1)][1:]  # the first warms the page cache
    return {
        "n": n, "rounds": rounds, "file_bytes": size,
        "resume_wall": stats([w for w, _ in measured]), "resume_cpu": stats([c for _, c in measured]),
        "run_without_checkpoint": stats(plain), "run_storing_every_value": stats(store),
        "python": sys.version.split()[0], "sqlite": __import__("sqlite3").sqlite_version,
        "load_average": os.getloadavg(),
    }


def report(result: dict[str, Any]) -> None:
    n = result["n"]

    def row(label: str, figures: dict[str, float]) -> str:
        return (f"| {label} | {figures['median']:.3f} s | {figures['min']:.3f} s | {figures['max']:.3f} s "
                f"| {n / figures['median']:,.0f}/s |")

    print(f"checkpoint resume: {n:,} inputs, {result['rounds']} rounds, Python {result['python']}, "
          f"SQLite {result['sqlite']}, file {result['file_bytes'] / 1e6:.1f} MB, "
          f"load average {', '.join(f'{x:.2f}' for x in result['load_average'])}")
    print("| what | median | min | max | inputs/s |")
    print("|---|---|---|---|---|")
    print(row("resume, all restored (wall)", result["resume_wall"]))
    print(row("resume, all restored (CPU)", result["resume_cpu"]))
    print(row("run every task, no checkpoint", result["run_without_checkpoint"]))
    print(row("run every task, storing each value", result["run_storing_every_value"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkpoint_resume", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="stored inputs (default 100,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (default 5)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = osiiso.run(main, args.n, args.rounds, use_uvloop=False)
    report(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
