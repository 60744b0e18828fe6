"""Leaving a queue leaves nothing behind: no worker process, no pool thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from support import ASYNCIO, aeventually

from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

_MP_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@pytest.fixture
def anyio_backend() -> object:
    """Exit behaviour is the pools': asyncio is enough, trio runs in the conformance suite."""
    return ASYNCIO


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _our_workers() -> set[int]:
    """Live descendants of this process, multiprocessing's own helpers excepted."""
    alive: set[int] = set()
    todo = list(_children(os.getpid()))
    while todo:
        pid = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        todo.extend(_children(pid))
        if state != "Z" and not any(helper in cmdline for helper in _MP_HELPERS):
            alive.add(pid)
    return alive


def _pool_threads(ignore: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("osiiso") and t not in ignore]


def _sleeper(seconds: float, mark: str | None = None) -> float:
    import osiiso

    if mark is not None:
        Path(mark).touch()  # the task runs now
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not osiiso.cancelled():  # an abandoned thread stops early
        time.sleep(0.005)
    return seconds


async def _use_both(q: AsyncQueue) -> None:
    q.submit(_sleeper, 0.01, backend="process")
    q.submit(_sleeper, 0.01, backend="thread")


@pytest.mark.parametrize("how", ["clean", "force", "error"])
async def test_no_process_or_thread_survives_the_queue(how: str, tmp_path: Path) -> None:
    """After `async with` (clean or on error) and after shutdown(force=True), no worker or pool thread is left."""
    before = _our_workers()
    old_threads = set(threading.enumerate())  # an earlier test's abandoned sleeper may still run
    if how == "clean":
        async with AsyncQueue(processes=2, threads=2) as q:
            await _use_both(q)
    elif how == "force":
        q = AsyncQueue(processes=2, threads=2)
        await q.start()
        marks = [tmp_path / "process-runs", tmp_path / "thread-runs"]
        stuck_process = q.submit(_sleeper, 30, str(marks[0]), backend="process")
        stuck_thread = q.submit(_sleeper, 30, str(marks[1]), backend="thread")
        await _use_both(q)
        await aeventually(lambda: all(mark.exists() for mark in marks), "both long tasks to run", 10.0)
        await q.shutdown(force=True)
        assert stuck_process.cancelled() and stuck_thread.cancelled()
    else:
        with pytest.raises(RuntimeError, match="body"):
            async with AsyncQueue(processes=2, threads=2) as q:
                await _use_both(q)
                q.submit(_sleeper, 30, backend="process")
                raise RuntimeError("body")
    await aeventually(lambda: _our_workers() <= before,
                      lambda: f"the worker processes to exit (left: {_our_workers() - before})", 10.0)
    # force abandons the thread running _sleeper(30): shutdown does not wait for it, but it sees
    # osiiso.cancelled() and returns, so it is gone soon after
    await aeventually(lambda: not _pool_threads(old_threads),
                      lambda: f"the pool threads to exit (left: {_pool_threads(old_threads)})", 10.0)
