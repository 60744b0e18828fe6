"""A queue that is never run: each way of forgetting to run it gets a hint, never silence or a hang.

Awaiting a handle of a queue that is not running warns after a short grace (and still ends once
the queue runs); a queue garbage-collected with unfinished tasks says how many it dropped; and
the blocking ``pmap``/``tmap`` called from async code point at ``amap``.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from typing import Any

import anyio
import pytest
from support import aeventually

import osiiso
from osiiso import AsyncQueue, _handle

pytestmark = [pytest.mark.timeout(60)]


async def _double(x: int) -> int:
    return 2 * x


def _triple(x: int) -> int:
    return 3 * x


@pytest.mark.anyio
async def test_awaiting_a_handle_of_a_queue_never_run_warns_and_still_ends_once_it_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """await handle on a queue nobody runs gives a RuntimeWarning with the hint after the grace; the
    await goes on and ends when the queue is run after all."""
    monkeypatch.setattr(_handle, "NOT_RUNNING_GRACE", 0.05)
    q = AsyncQueue()
    handle = q.submit(_double, 21)
    got: list[Any] = []

    async def waiter() -> None:
        got.append((await handle).value)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await aeventually(lambda: caught, "the warning of a handle awaited on a queue that is not running")
            assert not got
            await q.run(strict=True)
    assert got == [42]
    assert [w.category for w in caught] == [RuntimeWarning]
    message = str(caught[0].message)
    assert "not running" in message and "await q.run()" in message and "async with" in message
    await q.shutdown()


@pytest.mark.anyio
async def test_valid_programs_get_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """No warning when the awaiting happens in a started queue (a task awaiting another task of its
    queue, however long), or when the queue starts within the grace after the await began."""
    monkeypatch.setattr(_handle, "NOT_RUNNING_GRACE", 0.0)  # a running queue never even looks at it
    async with AsyncQueue() as q:
        gate = anyio.Event()
        slow = q.submit(gate.wait)

        async def parent() -> str:
            await slow
            return "after the child"

        outer = q.submit(parent)
        await aeventually(lambda: outer.status == "running", "the parent task to be awaiting its child")
        gate.set()
        assert (await outer).value == "after the child"
    monkeypatch.setattr(_handle, "NOT_RUNNING_GRACE", 30.0)  # generous: the run starts in milliseconds
    later = AsyncQueue()
    handle = later.submit(_double, 1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(handle.wait)  # awaited before the run: the run starts it, within the grace
        await later.run(strict=True)
    assert handle.value() == 2
    await later.shutdown()


def test_a_queue_collected_with_unfinished_tasks_says_how_many_it_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    """A queue garbage-collected with tasks that never ran gives a ResourceWarning and a log line on the
    "osiiso" logger naming how many were dropped; an emptied queue says nothing."""
    def submit_and_drop(count: int) -> None:
        q = AsyncQueue()
        for i in range(count):
            q.submit(_triple, i, backend="thread")

    with caplog.at_level(logging.WARNING, logger="osiiso"):
        with pytest.warns(ResourceWarning, match="garbage-collected with 3 unfinished tasks") as caught:
            submit_and_drop(3)
            gc.collect()
        assert "await q.run()" in str(caught[0].message)
        assert [r.name for r in caplog.records] == ["osiiso"]
        assert "3 unfinished tasks" in caplog.records[0].getMessage()
        caplog.clear()

        async def run_then_drop() -> None:
            q = AsyncQueue()
            q.submit(_triple, 1, backend="thread")
            await q.run(strict=True)

        with warnings.catch_warnings(record=True) as quiet:
            warnings.simplefilter("always")
            anyio.run(run_then_drop)
            gc.collect()
        assert not [w for w in quiet if issubclass(w.category, ResourceWarning)]
        assert not caplog.records


def test_a_blocking_queue_collected_with_unfinished_tasks_says_how_many_it_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    """A blocking Queue dropped with tasks it never ran (a script that submits and exits) warns and logs
    how many it dropped, and says how to run them; they end cancelled."""
    q = osiiso.Queue()
    handles = [q.submit(_triple, i) for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="osiiso"):
        with pytest.warns(ResourceWarning, match="osiiso.Queue was garbage-collected with 2 unfinished tasks"):
            del q
            gc.collect()
    assert "q.run()" in caplog.records[0].getMessage() and "with osiiso.Queue() as q:" in caplog.text
    assert [h.status for h in handles] == ["cancelled", "cancelled"]


def _until_cancelled(i: int) -> int:
    deadline = time.monotonic() + 20  # only a broken build waits this long
    while not osiiso.cancelled() and time.monotonic() < deadline:
        time.sleep(0.005)
    return i


def test_a_started_queue_dropped_right_after_submitting_counts_the_tasks_not_yet_handed_over(
        caplog: pytest.LogCaptureFixture) -> None:
    """A started Queue dropped just after a map() from this thread counts the tasks still on their way
    to its loop (not admitted yet) among those it dropped; they end cancelled."""
    q = osiiso.Queue()
    q.start()
    with caplog.at_level(logging.WARNING, logger="osiiso"):
        with pytest.warns(ResourceWarning, match="osiiso.Queue was garbage-collected with 3 unfinished tasks"):
            handles = q.map(_until_cancelled, range(3))
            del q
            gc.collect()
    assert "3 unfinished tasks" in caplog.records[0].getMessage()
    assert [h.status for h in handles] == ["cancelled"] * 3


@pytest.mark.anyio
@pytest.mark.parametrize("helper", [osiiso.pmap, osiiso.tmap], ids=["pmap", "tmap"])
async def test_pmap_and_tmap_in_async_code_point_at_amap(helper: Any) -> None:
    """pmap/tmap called inside a running event loop raise RuntimeError naming `await osiiso.amap(...)`,
    not anyio's "Already running asyncio in this thread", before running anything."""
    consumed: list[int] = []

    def items() -> Any:
        consumed.append(1)
        yield 1

    with pytest.raises(RuntimeError, match=r"await osiiso\.amap\(") as info:
        helper(_triple, items())
    assert "Already running" not in str(info.value) and "event loop" in str(info.value)
    assert not consumed
    assert await osiiso.amap(_triple, [1, 2], backend="thread") == (3, 6)


_EXIT_SCRIPT = '''
import atexit, os, sys, time
import osiiso

handles = []


@atexit.register  # registered first: runs last, after osiiso's exit hooks
def report() -> None:
    print("STATUSES", [h.status.value for h in handles], flush=True)


def slow(x, path):
    open(f"{path}.{x}", "w").close()
    time.sleep(30)
    return x


q = osiiso.Queue(workers=3, processes=3)
q.start()
handles.extend(q.map(slow, [(i, sys.argv[1]) for i in range(3)], backend="process"))
deadline = time.monotonic() + 60
while not all(os.path.exists(f"{sys.argv[1]}.{i}") for i in range(3)) and time.monotonic() < deadline:
    time.sleep(0.01)
print("RUNNING", q.active_count, flush=True)
# the script ends without run() or shutdown(): the queue is dropped at interpreter exit
'''


def test_a_queue_dropped_at_exit_cancels_its_running_process_tasks_and_counts_them(tmp_path: Any) -> None:
    """A started Queue left unfinished when the script ends: at exit its running process tasks end
    cancelled, not crashed (the pools are killed only after the queue has cancelled them), and the
    warning counts all of them."""
    import subprocess
    import sys

    script = tmp_path / "dropped_at_exit.py"
    script.write_text(_EXIT_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "began")], capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert "RUNNING 3" in done.stdout, done.stdout + done.stderr
    assert "STATUSES ['cancelled', 'cancelled', 'cancelled']" in done.stdout, done.stdout + done.stderr
    assert "garbage-collected with 3 unfinished tasks" in done.stderr, done.stderr
    assert "WorkerCrashedError" not in done.stdout + done.stderr


_HANDED_OVER_SCRIPT = '''
import asyncio, threading
import osiiso


def triple(x):
    return 3 * x


loop = asyncio.new_event_loop()
q = osiiso.AsyncQueue()
loop.run_until_complete(q.start())
# another thread submits while the loop is not running: the tasks wait in the hand-over, never admitted
producer = threading.Thread(target=lambda: [q.submit(triple, i, backend="thread") for i in range(3)])
producer.start()
producer.join()
print("UNFINISHED", q.pending_count + q.active_count, flush=True)
# the script ends with the loop never run again: the queue is dropped at interpreter exit
'''


def test_an_async_queue_dropped_with_tasks_still_in_the_hand_over_counts_them(tmp_path: Any) -> None:
    """Tasks another thread handed over to an AsyncQueue whose loop never ran again (so never
    admitted) count among those the dropped queue's warning names."""
    import subprocess
    import sys

    script = tmp_path / "handed_over.py"
    script.write_text(_HANDED_OVER_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "UNFINISHED 3" in done.stdout, done.stdout + done.stderr
    assert "AsyncQueue was garbage-collected with 3 unfinished tasks" in done.stderr, done.stdout + done.stderr
