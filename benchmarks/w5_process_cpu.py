"""W5 process CPU-bound: 16 pure-Python tasks of about 0.25 s each on 2 processes (limit 2.0x).

Measures scaling, not overhead: the speedup of each contender over running the same 16
calls one after another in this process. ``burn(n)`` is a pure-Python loop; ``n`` is
calibrated at the start so that one call takes about 0.25 s; the serial run (the 16 calls
one after another in this process) is a contender of its own. The others are W4's, on
warm pools (created and warmed outside the timing), with one task per message everywhere
(chunksize 1: with 16 long tasks, chunks only unbalance the two workers). Interleaved
round by round. The 2-core machine is shared with other jobs (the test harness), so the
load average is reported at the start and the end.
Targets (issue 5): osiiso speedup >= 1.85 and >= every peer.
"""

from __future__ import annotations

import os
import time

from . import _process_peers as pp
from ._runner import Config, Contender, Metric, Report, interleave

TITLE = "process CPU-bound: 16 x ~0.25 s on 2 processes, speedup over serial (limit 2.0x)"
TASKS, SECONDS = 16, 0.25


def burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def calibrate(seconds: float = SECONDS) -> int:
    """The ``n`` for which ``burn(n)`` takes about ``seconds`` here (best of three probes)."""
    n = 1 << 14
    while True:
        took = min(_timed(n) for _ in range(3))
        if took > 0.05:
            return int(n * seconds / took)
        n *= 2


def _timed(n: int) -> float:
    start = time.perf_counter()
    burn(n)
    return time.perf_counter() - start


SERIAL = f"serial, {TASKS} calls in this process"


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W5", TITLE)
    load = os.getloadavg()
    n = calibrate()
    items = [n] * TASKS
    expected = [burn(x) for x in items[:1]] * TASKS

    def serial() -> float:
        t0 = time.perf_counter()
        if [burn(x) for x in items] != expected:
            raise AssertionError("serial: wrong results")
        return time.perf_counter() - t0

    contenders = [Contender(SERIAL, serial, "none"), *pp.contenders(burn, items, 1, expected, False, report.notes)]
    report.rows = interleave(contenders, TASKS, config.pick(full=5, quick=1), warmup=0)
    by_name = {r.name: r for r in report.rows if r.times}
    base = by_name.get(SERIAL)
    speedups = {name: base.median / r.median for name, r in by_name.items() if base and name != SERIAL}
    ours = speedups.get("osiiso q.map")
    best_peer = max(((v, k) for k, v in speedups.items() if not k.startswith("osiiso")), default=None)
    if base is not None:
        report.metrics.append(Metric(SERIAL, f"{base.median:.3f} s ({base.median / TASKS:.3f} s each)"))
    for name, value in speedups.items():
        if name == "osiiso q.map":
            report.metrics.append(Metric(f"speedup {name}", f"{value:.2f}x", ">= 1.85x", value >= 1.85))
        else:
            report.metrics.append(Metric(f"speedup {name}", f"{value:.2f}x"))
    if ours is not None and best_peer is not None:
        report.metrics.append(Metric(f"osiiso q.map vs best peer ({best_peer[1]})",
                                     f"{ours:.2f}x vs {best_peer[0]:.2f}x", ">= best peer", ours >= best_peer[0]))
    end = os.getloadavg()
    report.notes += [
        "speedup = median of the serial row / median of the contender; the serial run is a contender "
        "of its own, interleaved with the others round by round, so a change in the machine's speed "
        "during the run moves both",
        "warm pools, chunksize 1 everywhere; start method forkserver where the library takes one",
        f"load average (1, 5, 15 min) at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
        f"{end[0]:.2f} {end[1]:.2f} {end[2]:.2f}: the 2 cores are shared, so a busy neighbour lowers every row",
        "ratio = peer median / osiiso q.map median (>1: osiiso faster); for the serial row it is osiiso's speedup",
    ]
    report.seconds = time.perf_counter() - start
    return report
