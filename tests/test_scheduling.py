"""How the ``workers`` cap is shared between backends: no slot stays empty while a task waits.

The engine gives a free slot to the most urgent ready task of any backend (see
docs/internals.md, "Sharing the workers cap between lanes"). These tests hold tasks on
gates instead of timing them: each waits until every slot that should be busy is busy,
under a deadline that only a stuck scheduler reaches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from support import aeventually

from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]
DEADLINE = 10.0  # seconds; a working scheduler needs milliseconds


class Gate:
    """Holds thread tasks and coroutine tasks until opened; counts who is inside."""

    def __init__(self) -> None:
        self.inside = 0
        self._lock = threading.Lock()
        self._open = threading.Event()

    def thread_task(self) -> None:
        with self._lock:
            self.inside += 1
        self._open.wait(DEADLINE * 2)

    async def async_task(self) -> None:
        with self._lock:
            self.inside += 1
        while not self._open.is_set():
            await anyio.sleep(0.005)

    def open(self) -> None:
        self._open.set()


async def noop() -> None:
    pass


def thread_noop() -> None:
    pass


async def test_free_slots_go_to_a_backend_whose_lane_opens_with_a_small_cap() -> None:
    """Twenty thread tasks on one thread leave three of four slots to the coroutines after them."""
    threads, coroutines = Gate(), Gate()
    async with AsyncQueue(workers=4, threads=1) as q:
        await q.submit(noop)  # the async lane is open and its worker parked
        for _ in range(20):
            q.submit(threads.thread_task, backend="thread")  # submitted first: more urgent
        for _ in range(3):
            q.submit(coroutines.async_task)
        await aeventually(lambda: threads.inside == 1 and coroutines.inside == 3,
                          "one thread task and all three coroutines to run", DEADLINE)
        threads.open()
        coroutines.open()


async def test_slots_freed_by_one_backend_all_go_to_the_next() -> None:
    """When two thread tasks end together, both slots go to waiting coroutines, not one."""
    threads, coroutines = Gate(), Gate()
    async with AsyncQueue(workers=2, threads=2) as q:
        await q.submit(noop)
        await q.submit(thread_noop, backend="thread")  # both lanes open, their workers parked
        held = [q.submit(threads.thread_task, backend="thread") for _ in range(2)]
        for _ in range(6):
            q.submit(coroutines.async_task)
        await aeventually(lambda: threads.inside == 2, "both thread tasks to run", DEADLINE)
        assert coroutines.inside == 0  # the cap is full
        threads.open()
        for handle in held:
            await handle
        await aeventually(lambda: coroutines.inside == 2, "two coroutines to run in the two freed slots", DEADLINE)
        coroutines.open()


async def test_the_async_hook_of_a_task_the_run_timeout_cancelled_begins_once_and_is_cut() -> None:
    """on_complete runs once per task: a task the run's timeout cancels gets its hook, cut at its first await.

    Its code up to that await runs before run() returns; what follows never runs, on every
    backend alike (how soon a backend reports the cancelled attempt does not matter).
    """
    began: list[object] = []
    ended: list[object] = []

    async def hook(result: object) -> None:
        began.append(result)
        await anyio.sleep(0.05)
        ended.append(result)

    q = AsyncQueue(on_complete=hook)
    q.submit(noop, delay=30)  # on the timer heap: cancelled by the run's timeout
    with anyio.fail_after(DEADLINE):
        summary = await q.run(timeout=0.2)
    assert summary.cancelled == 1
    assert len(began) == 1 and not ended
    await q.shutdown()


async def test_lanes_made_by_another_thread_while_the_loop_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread sending the first task of many backends while two lanes are busy loses nothing."""
    import logging
    import sys

    from osiiso.backends import _REGISTRY
    from osiiso.backends.coroutine import AsyncBackend

    names = [f"lane-race-{i}" for i in range(200)]
    for name in names:
        monkeypatch.setitem(_REGISTRY, name, type(name, (AsyncBackend,), {"name": name}))
    errors: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record)

    keep = Keep(level=logging.ERROR)
    logging.getLogger("osiiso").addHandler(keep)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # let the other thread cut in as often as possible
    try:
        async with AsyncQueue(workers=2, mode="infinite") as q:
            handles: list[object] = []
            stop = threading.Event()

            def other_thread() -> None:
                for name in names:
                    handles.append(q.submit(noop, backend=name))
                    time.sleep(0.0005)
                stop.set()

            thread = threading.Thread(target=other_thread)
            thread.start()
            while not stop.is_set():  # both lanes stay busy, so the loop compares lanes all along
                if len(handles) < 20_000:  # bounded: a thread slowed by load must not make the rest unending
                    for _ in range(50):
                        handles.append(q.submit(noop))
                        handles.append(q.submit(thread_noop, backend="thread"))
                await anyio.sleep(0)
            await anyio.to_thread.run_sync(thread.join)
            with anyio.fail_after(DEADLINE):
                for handle in handles:
                    await handle  # type: ignore[misc]
    finally:
        sys.setswitchinterval(interval)
        logging.getLogger("osiiso").removeHandler(keep)
    assert not errors, [r.getMessage() for r in errors]


def gated(i: int, gate: str | None) -> bool:
    """In a worker process: at once without a gate (it is timed as short), else wait for the gate file."""
    import os

    deadline = time.monotonic() + DEADLINE / 2
    while gate is not None and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.002)
    return gate is None or os.path.exists(gate)


def open_gate(gate: str) -> None:
    with open(gate, "w"):
        pass


@pytest.mark.parametrize("batching", [False, True], ids=["queued-ahead", "batched"])
async def test_tasks_waiting_in_a_busy_process_pool_leave_their_slots_to_other_backends(
        tmp_path: Any, batching: bool) -> None:
    """Short process tasks waiting in the pool behind its two busy workers (queued ahead in them, or
    batched) take no slot of ``workers``: a thread task submitted after them starts at once (it opens
    the gate they wait for), with no head-of-line blocking across backends."""
    gate = str(tmp_path / "gate")
    q = AsyncQueue(workers=8, processes=2, process_batching=batching)
    q.map(gated, [(i, None) for i in range(64)], backend="process")
    await q.run(strict=True)  # the workers up, and `gated` timed as short
    await q.start()
    waiting = q.map(gated, [(i, gate) for i in range(40)], backend="process")
    lane = q._engine.lanes["process"]
    await aeventually(lambda: lane.running + lane.held >= 8, "the process lane to fill the pool")
    opener = q.submit(open_gate, gate, backend="thread")
    await q.run(strict=True)
    assert opener.done() and all(h.value() for h in waiting), "a process task waited out its deadline"
    await q.shutdown()
