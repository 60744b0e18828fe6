"""W9 dask: osiiso's dask backend against dask's own client on one local 2-worker cluster.

One cluster is started before the timing the way an operator starts one (``dask scheduler``
and two ``dask worker --nthreads 1`` processes, on loopback, no dashboard) and shared by every
contender; each contender connects its own client (osiiso's queue its own, in the dask thread)
and warms it, then times only the work. The scheduler runs in its own process, as on a real
cluster, so neither contender shares its interpreter with it.
Three parts, each interleaved round by round:

* **CPU** (W5's work): 16 ``burn`` calls of about 0.25 s; osiiso ``q.map(backend="dask")``
  against dask's ``client.map`` + ``gather`` on the same cluster and osiiso's process
  backend (2 processes), as the speedup over the serial run.
* **Round trip**: 100 (``--quick``: 40) tiny tasks one after another, each awaited before the
  next is sent: ``await q.submit(...)`` on asyncio and on trio against ``await
  client.submit(..., pure=False)``. osiiso's overhead is the difference per task (target:
  at most 10 % on top of dask's own cost); the same for 200 tiny tasks at once (``q.map`` against
  ``client.map``).
* **Chained tasks**: ``size(make(4 MB))``: a dask future passed from the first task to the
  second (osiiso's default, and dask's own) against the value through the client (osiiso with
  passing turned off, and dask with an ``await`` between the two).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from ._runner import Config, Contender, Metric, Report, installed, interleave, run_on
from .w5_process_cpu import burn, calibrate

TITLE = "dask backend: W5 CPU work, round trips and chained tasks on a local 2-worker cluster"
TASKS, WARM, TINY, BLOB = 16, 4, 200, 4 << 20


def noop(x: int) -> int:
    return x


def make(n: int) -> bytes:
    return b"x" * n


def size(blob: bytes) -> int:
    return len(blob)


# -- osiiso ------------------------------------------------------------------------------------
def osiiso_map(address: str, backend: str, fn: Any, items: list[Any], warm: Any, workers: int | None = None) -> float:
    async def main() -> float:
        from osiiso import AsyncQueue

        async with AsyncQueue(dask=address, processes=2, workers=workers) as q:
            for h in q.map(fn, [warm] * WARM, backend=backend):
                await h
            start = time.perf_counter()
            handles = q.map(fn, items, backend=backend)
            for h in handles:
                (await h).value  # noqa: B018 - raises on failure
            return time.perf_counter() - start

    return run_on("asyncio", main)


def osiiso_round_trips(address: str, loop: str, n: int) -> float:
    async def main() -> float:
        from osiiso import AsyncQueue

        async with AsyncQueue(dask=address) as q:
            for i in range(WARM):
                await q.submit(noop, i, backend="dask")
            start = time.perf_counter()
            for i in range(n):
                if (await q.submit(noop, i, backend="dask")).value != i:
                    raise AssertionError("osiiso: wrong value")
            return time.perf_counter() - start

    return run_on(loop, main)


def osiiso_chain(address: str, futures: bool) -> float:
    """``size(make(4 MB))``: the dask future passed on (the default), or (``futures=False``, by lifting
    `osiiso.backends.dask.chains.MIN_BYTES` out of reach) the value through the client."""
    from osiiso.backends.dask import chains

    async def main() -> float:
        from osiiso import AsyncQueue

        async with AsyncQueue(dask=address) as q:
            await q.submit(size, q.submit(make, 10, backend="dask"), backend="dask")
            start = time.perf_counter()
            if (await q.submit(size, q.submit(make, BLOB, backend="dask"), backend="dask")).value != BLOB:
                raise AssertionError("osiiso chain: wrong size")
            elapsed = time.perf_counter() - start
            if (q.stats["dask"]["dask_futures_passed"] > 0) != futures:
                raise AssertionError("osiiso chain: the future was not passed as configured")
            return elapsed

    saved = chains.MIN_BYTES
    chains.MIN_BYTES = saved if futures else 1 << 62
    try:
        return run_on("asyncio", main)
    finally:
        chains.MIN_BYTES = saved


# -- dask's own client -------------------------------------------------------------------------
async def _client(address: str) -> Any:
    from distributed import Client

    return await Client(address, asynchronous=True, set_as_default=False)


def dask_map(address: str, fn: Any, items: list[Any], warm: Any) -> float:
    async def main() -> float:
        client = await _client(address)
        try:
            await client.gather(client.map(fn, [warm] * WARM, pure=False))
            start = time.perf_counter()
            await client.gather(client.map(fn, items, pure=False))
            return time.perf_counter() - start
        finally:
            await client.close()

    return run_on("asyncio", main)


def dask_round_trips(address: str, n: int) -> float:
    async def main() -> float:
        client = await _client(address)
        try:
            for i in range(WARM):
                await client.submit(noop, i, pure=False)
            start = time.perf_counter()
            for i in range(n):
                if await client.submit(noop, i, pure=False) != i:
                    raise AssertionError("dask: wrong value")
            return time.perf_counter() - start
        finally:
            await client.close()

    return run_on("asyncio", main)


def dask_chain(address: str, through_client: bool) -> float:
    async def main() -> float:
        client = await _client(address)
        try:
            await client.submit(size, client.submit(make, 10, pure=False), pure=False)
            start = time.perf_counter()
            first = client.submit(make, BLOB, pure=False)
            arg = await first if through_client else first
            if await client.submit(size, arg, pure=False) != BLOB:
                raise AssertionError("dask chain: wrong size")
            return time.perf_counter() - start
        finally:
            await client.close()

    return run_on("asyncio", main)


# -- the cluster ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _cluster(tmp: Path, timeout: float = 90.0) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker --nthreads 1`` on loopback; stopped by PID after."""
    dask = [str(Path(sys.executable).with_name("dask"))]
    if not Path(dask[0]).exists():
        dask = [sys.executable, "-m", "dask"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    quiet = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*dask, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        file = tmp / "scheduler.json"
        scheduler = spawn("scheduler", "--host", "127.0.0.1", "--port", "0", *quiet, "--scheduler-file", str(file))
        deadline = time.monotonic() + timeout
        while not file.exists() or not file.read_text().strip():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for i in range(2):
            spawn("worker", address, "--nthreads", "1", "--host", "127.0.0.1", *quiet, "--name", f"w{i}")
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
        yield address
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


# -- the workload --------------------------------------------------------------------------------
def _serial(items: list[int]) -> float:
    start = time.perf_counter()
    for x in items:
        burn(x)
    return time.perf_counter() - start


def run(config: Config) -> Report:
    start = time.perf_counter()
    report = Report("W9", TITLE)
    if not installed("distributed"):
        report.notes.append('skipped: distributed is not installed (pip install "osiiso[dask]")')
        return report
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, _cluster(Path(tmp)) as address:
        _cpu(report, config, address)
        _round_trips(report, config, address)
        _chains(report, config, address)
    end = os.getloadavg()
    report.notes.append(f"load average (1, 5, 15 min) at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
                        f"{end[0]:.2f} {end[1]:.2f} {end[2]:.2f}: the 2 cores are shared, every figure moves with it")
    report.seconds = time.perf_counter() - start
    return report


def _cpu(report: Report, config: Config, address: str) -> None:
    n = calibrate()
    items = [n] * TASKS
    serial = "serial, 16 calls in this process"
    rows = interleave([
        Contender(serial, partial(_serial, items), "none"),
        Contender("osiiso q.map backend=dask", partial(osiiso_map, address, "dask", burn, items, 1), osiiso=True),
        Contender("dask client.map + gather", partial(dask_map, address, burn, items, 1)),
        Contender("osiiso q.map backend=process", partial(osiiso_map, address, "process", burn, items, 1),
                  osiiso=True),
    ], TASKS, config.pick(full=3, quick=1), warmup=0)
    report.rows += rows
    by = {r.name: r for r in rows if r.times}
    if serial in by:
        for name, row in by.items():
            if name != serial:
                report.metrics.append(Metric(f"speedup {name}", f"{by[serial].median / row.median:.2f}x"))


def _round_trips(report: Report, config: Config, address: str) -> None:
    n = config.pick(full=100, quick=40)
    rows = interleave([
        Contender("osiiso await submit, one at a time", partial(osiiso_round_trips, address, "asyncio", n),
                  osiiso=True),
        Contender("osiiso await submit, one at a time", partial(osiiso_round_trips, address, "trio", n), "trio",
                  osiiso=True),
        Contender("dask await client.submit, one at a time", partial(dask_round_trips, address, n)),
    ], n, config.pick(full=7, quick=3))
    report.rows += rows
    ours = {r.loop: r for r in rows if r.osiiso and r.times}
    raw = next((r for r in rows if not r.osiiso and r.times), None)
    if raw is not None:
        report.metrics.append(Metric("dask round trip per task", f"{raw.median / n * 1e3:.2f} ms"))
        for loop, row in ours.items():
            extra = row.median / raw.median - 1
            report.metrics.append(Metric(f"osiiso overhead per round trip ({loop})",
                                         f"{(row.median - raw.median) / n * 1e3:+.2f} ms ({extra:+.1%})",
                                         "<= +10%", extra <= 0.10))
    tiny = list(range(TINY))
    rows = interleave([
        Contender(f"osiiso q.map {TINY} tiny tasks, default workers", partial(osiiso_map, address, "dask", noop,
                                                                              tiny, 0), osiiso=True),
        Contender(f"osiiso q.map {TINY} tiny tasks, workers=8", partial(osiiso_map, address, "dask", noop, tiny, 0,
                                                                        8), osiiso=True),
        Contender(f"dask client.map {TINY} tiny tasks", partial(dask_map, address, noop, tiny, 0)),
    ], TINY, config.pick(full=5, quick=2))
    report.rows += rows
    if all(r.times for r in rows):
        for row in rows[:2]:
            extra = row.median / rows[2].median - 1
            report.metrics.append(Metric(f"{row.name}: time over client.map", f"{extra:+.1%}"))
    report.notes.append("tiny tasks at once: osiiso keeps up to the dask backend's capacity (64 here) on the cluster; "
                        "with workers left automatic that comes on top of the queue's own cap "
                        f"({min(32, max(4, 4 * (os.cpu_count() or 1)))} on this machine), workers=8 caps it at 8; "
                        "client.map sends all of them in one message")


def _chains(report: Report, config: Config, address: str) -> None:
    rows = interleave([
        Contender("osiiso size(make(4 MB)), future passed on", partial(osiiso_chain, address, True), osiiso=True),
        Contender("osiiso size(make(4 MB)), value via the client", partial(osiiso_chain, address, False),
                  osiiso=True),
        Contender("dask size(make(4 MB)), value via the client", partial(dask_chain, address, True)),
        Contender("dask size(make(4 MB)), future passed on", partial(dask_chain, address, False)),
    ], 2, config.pick(full=7, quick=3))
    report.rows += rows
    report.notes.append("chained: osiiso passes the upstream's dask future to a dask dependent (results of 64 KiB "
                        "and more), so the 4 MB stay on the cluster; 'value via the client' is the same run with "
                        "that turned off (chains.MIN_BYTES out of reach): the 4 MB go to the client and back")
