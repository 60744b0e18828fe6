"""A/B: osiiso from two source trees on the same workloads, interleaved round by round.

For a change that must not cost speed: check out the old commit somewhere
(``git worktree add /tmp/osiiso-old <commit>``), then, from the repository root::

    python -m benchmarks.ab /tmp/osiiso-old . [--rounds 7] [--only W1,W3]

Each measurement runs in a fresh subprocess that imports osiiso from one tree (and the
workloads from this repository's ``benchmarks``), alternating old and new every round, so
drift of the machine moves both. Prints each workload's median per tree and new/old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

N_MIXED = 10_000


def _workloads() -> dict[str, object]:
    from benchmarks import _async_peers as peers
    from benchmarks import _process_peers, w2_async_sleep, w3_thread_noop, w4_process_tiny, w5_process_cpu, w7_pipeline
    from benchmarks._runner import run_on
    from benchmarks.w1_async_noop import LIMIT, N, noop

    async def mixed() -> float:
        from time import perf_counter

        from osiiso import AsyncQueue

        start = perf_counter()
        q = AsyncQueue(workers=16, threads=4)
        for i in range(N_MIXED):
            q.submit(noop, i)
            q.submit(w3_thread_noop.f, i, backend="thread")
        summary = await q.run()
        await q.shutdown()
        assert summary.succeeded == 2 * N_MIXED
        return perf_counter() - start

    async def w5() -> float:
        from time import perf_counter

        from osiiso import AsyncQueue

        n = w5_process_cpu.calibrate(0.05)
        async with AsyncQueue(processes=2) as q:
            await q.group(w5_process_cpu.burn, [n] * 2).values()  # warm pool
            start = perf_counter()
            await q.group(w5_process_cpu.burn, [n] * 16).values()
            return perf_counter() - start

    def w4(how: str) -> float:
        items = list(range(w4_process_tiny.N))
        return _process_peers.osiiso_run(how, "asyncio", w4_process_tiny.h, items, 1)[0]

    def w1(loop: str) -> float:
        return run_on(loop, lambda: peers.osiiso_queue(noop, N, LIMIT))

    return {
        "W1 asyncio": lambda: w1("asyncio"),
        "W1 uvloop": lambda: w1("uvloop"),
        "W1 trio": lambda: w1("trio"),
        "W1 seed form": lambda: run_on("asyncio", lambda: peers.osiiso_seed(noop, N, LIMIT)),
        "W2": lambda: run_on("asyncio", lambda: peers.osiiso_queue(w2_async_sleep.asyncio_nap, w2_async_sleep.N,
                                                              w2_async_sleep.LIMIT)),
        "W2 trio": lambda: run_on("trio", lambda: peers.osiiso_queue(w2_async_sleep.trio_nap, w2_async_sleep.N,
                                                                w2_async_sleep.LIMIT)),
        "W3": lambda: run_on("asyncio", w3_thread_noop.osiiso_threads),
        "W4 map": lambda: w4("map"),
        "W4 submit": lambda: w4("submit"),
        "W5": lambda: run_on("asyncio", w5),
        "W7": lambda: run_on("asyncio", lambda: w7_pipeline.osiiso_pipeline(64)),
        "mixed async+thread": lambda: run_on("asyncio", mixed),
    }


def _child(tree: str, repo: str, names: list[str]) -> None:
    sys.path.insert(0, tree)
    import osiiso

    if not Path(osiiso.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"osiiso came from {osiiso.__file__}, not {tree}")
    sys.path.insert(0, repo)
    workloads = _workloads()
    times = {}
    for name in names:
        workloads[name]()  # type: ignore[operator]  # warm-up (imports, pools)
        times[name] = workloads[name]()  # type: ignore[operator]
    print(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    repo = str(Path(__file__).resolve().parent.parent)
    names = [n for n in ("W1 asyncio", "W1 uvloop", "W1 trio", "W1 seed form", "W2", "W2 trio", "W3", "W4 map",
                         "W4 submit", "W5", "W7", "mixed async+thread")
             if not args.only or any(n.startswith(o.strip()) for o in args.only.split(","))]
    trees = {"old": str(Path(args.old).resolve()), "new": str(Path(args.new).resolve())}
    times: dict[str, dict[str, list[float]]] = {t: {n: [] for n in names} for t in trees}
    env = {**os.environ, "PYTHONPATH": ""}
    for rnd in range(args.rounds):
        for label in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
            code = f"from benchmarks.ab import _child; _child({trees[label]!r}, {repo!r}, {names!r})"
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                 env=env, cwd=repo).stdout
            for name, value in json.loads(out.strip().splitlines()[-1]).items():
                times[label][name].append(value)
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'workload':<22}{'old median':>12}{'new median':>12}{'new/old':>9}")
    for name in names:
        old, new = statistics.median(times["old"][name]), statistics.median(times["new"][name])
        print(f"{name:<22}{old * 1e3:>10.1f}ms{new * 1e3:>10.1f}ms{new / old:>9.2f}")


if __name__ == "__main__":
    main()
