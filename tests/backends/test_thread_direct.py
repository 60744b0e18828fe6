"""Thread tasks on both engine paths: direct attempts (a queue without hooks) and a coroutine per task.

The thread backend is direct (`ThreadBackend.begin`): the pool's drain calls the engine back
for each finished job. These tests check, on asyncio, uvloop and trio and on both paths, that
a timeout, a cancel and a forced shutdown abandon the attempt's thread as they did before, and
drive `begin`, `outcome` and `abort` directly for the contract the engine relies on. They
synchronise on thread events, never on sleeps.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import anyio
import pytest
from support import aeventually, most_at_once_mixed, queue_on, stamp

from osiiso import AsyncQueue, TaskTimeoutError, cancelled
from osiiso.backends.base import Attempt, BackendConfig
from osiiso.backends.thread import ThreadBackend

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
WAIT = 20.0


def check_path(q: AsyncQueue, path: str) -> None:
    assert q._engine.lanes["thread"].direct == (path == "direct")


class Blocker:
    """A task that says it started, then waits for its cooperative cancel signal (or ``release``)."""

    def __init__(self) -> None:
        self.started, self.saw_cancel, self.release = threading.Event(), threading.Event(), threading.Event()

    def __call__(self) -> str:
        self.started.set()
        deadline = time.monotonic() + WAIT
        while not cancelled() and not self.release.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)
        if cancelled():
            self.saw_cancel.set()
        return "late"


async def until(event: threading.Event, what: str) -> None:
    await aeventually(event.is_set, what)


def ident(i: int) -> int:
    return i


async def test_many_tiny_tasks_each_get_their_own_result(path: str) -> None:
    """Thousands of no-op tasks on 4 threads: every one succeeds once with its own value and timing."""
    async with queue_on(path, workers=4, threads=4) as q:
        handles = q.map(ident, range(3000), backend="thread")
        summary = await q.run()
        check_path(q, path)
    assert summary.succeeded == 3000
    assert [h.value() for h in handles] == list(range(3000))
    assert all(h.result().attempts == 1 and h.result().timings[0].worker.startswith("thread/") for h in handles)


async def test_a_timeout_abandons_the_thread_and_retries(path: str) -> None:
    """A task past its timeout is abandoned (it sees ``cancelled()``), fails with TaskTimeoutError, and is
    retried when asked; a fresh thread takes the abandoned one's place."""
    first = Blocker()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            return first()
        return "second"

    async with queue_on(path, workers=1, threads=1) as q:
        handle = q.submit(flaky, backend="thread", timeout=0.2, retries=1, retry_on=(TaskTimeoutError,), retry_delay=0)
        stuck = q.submit(Blocker(), backend="thread", timeout=0.05)
        await q.run()
        check_path(q, path)
        await until(first.saw_cancel, "the first attempt to see its cancel signal")
        assert handle.value() == "second" and handle.result().attempts == 2
        assert [t.outcome for t in handle.result().timings] == ["timeout", "ok"]
        assert isinstance(stuck.result().exception, TaskTimeoutError)
        assert q.stats["thread"]["threads_abandoned"] == 2
        assert q.stats["thread"]["threads_live"] == 1


async def test_cancelling_a_running_task_abandons_its_thread(path: str) -> None:
    blocker = Blocker()
    async with queue_on(path, workers=2, threads=2) as q:
        handle = q.submit(blocker, backend="thread")
        other = q.submit(ident, 7, backend="thread")
        await until(blocker.started, "the task to start")
        assert handle.cancel()
        await q.join()
        check_path(q, path)
        await until(blocker.saw_cancel, "the task to see its cancel signal")
        assert handle.status == "cancelled" and other.value() == 7
        assert q.stats["thread"]["threads_abandoned"] == 1


async def test_a_task_cancelled_while_it_waits_for_a_thread_never_runs(path: str) -> None:
    blocker = Blocker()
    ran: list[int] = []
    async with queue_on(path, workers=1, threads=1) as q:
        first = q.submit(blocker, backend="thread")
        waiting = q.submit(ran.append, 1, backend="thread")
        await until(blocker.started, "the first task to start")
        assert waiting.cancel()
        blocker.release.set()
        await q.join()
        check_path(q, path)
    assert first.value() == "late" and waiting.status == "cancelled" and ran == []


async def test_a_forced_shutdown_ends_a_running_task_cancelled(path: str) -> None:
    blocker = Blocker()
    q = queue_on(path, workers=1, threads=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.run)
        handle = q.submit(blocker, backend="thread")
        await until(blocker.started, "the task to start")
        check_path(q, path)
        with anyio.fail_after(WAIT):
            await q.shutdown(force=True)
    await until(blocker.saw_cancel, "the task to see its cancel signal")
    assert handle.status == "cancelled"


# -- the backend's direct contract, without a queue ------------------------------------------------
class Ended:
    """Records the tickets ``ended`` is called with, and whether a call came from inside ``begin``."""

    def __init__(self) -> None:
        self.tickets: list[Any] = []
        self.inside_begin = False
        self.called_inside = False
        self.event = anyio.Event()

    def __call__(self, ticket: Any) -> None:
        self.called_inside |= self.inside_begin
        self.tickets.append(ticket)
        self.event.set()


def direct_attempt(fn: Any, *args: Any) -> Attempt:
    return Attempt(fn, args, {}, number=1, timeout=None)


async def test_begin_calls_ended_once_on_the_loop_thread_with_the_outcome() -> None:
    backend = ThreadBackend(BackendConfig(workers=2, threads=2, processes=1))
    loop_thread = threading.get_ident()
    seen: list[int] = []
    try:
        ended = Ended()
        original = ended.__call__

        def on_loop(ticket: Any) -> None:
            seen.append(threading.get_ident())
            original(ticket)

        ended.inside_begin = True
        job = backend.begin(direct_attempt(ident, 5), on_loop)
        ended.inside_begin = False
        with anyio.fail_after(WAIT):
            await ended.event.wait()
        assert ended.tickets == [job] and not ended.called_inside and seen == [loop_thread]
        assert backend.outcome(job) == 5

        failing = Ended()
        job = backend.begin(direct_attempt(int, "x"), failing)
        with anyio.fail_after(WAIT):
            await failing.event.wait()
        with pytest.raises(ValueError, match="invalid literal"):
            backend.outcome(job)
    finally:
        await backend.aclose()


async def test_abort_means_ended_is_never_called() -> None:
    """An aborted running attempt abandons its thread and its late outcome is dropped; an aborted
    queued one never runs."""
    backend = ThreadBackend(BackendConfig(workers=1, threads=1, processes=1))
    blocker = Blocker()
    ran: list[int] = []
    try:
        running, queued, after = Ended(), Ended(), Ended()
        job = backend.begin(direct_attempt(blocker), running)
        waiting = backend.begin(direct_attempt(ran.append, 1), queued)
        await until(blocker.started, "the first attempt to start")
        backend.abort(waiting)
        backend.abort(job)
        await until(blocker.saw_cancel, "the aborted attempt to see its cancel signal")
        last = backend.begin(direct_attempt(ident, 3), after)  # on the thread that replaced the abandoned one
        with anyio.fail_after(WAIT):
            await after.event.wait()
        assert backend.outcome(last) == 3
        assert running.tickets == [] and queued.tickets == [] and ran == []
        assert backend.stats() == {"threads_live": 1, "threads_abandoned": 1, "threads_batched": 0}
    finally:
        await backend.aclose(force=True)


# -- short tasks queued ahead for the threads ------------------------------------------------------
class Gate:
    """The events of a `gate` task: it says it started, then holds its thread until released."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()


def gate(started: threading.Event, release: threading.Event) -> float:
    """Hold the thread until ``release`` is set; return when it let go (a short function, once taught)."""
    started.set()
    release.wait(WAIT)
    return time.time()


def log_to(log: list[int], i: int) -> int:
    log.append(i)
    return i


def slow(i: int) -> int:
    time.sleep(0.003)
    return i


async def short_queue(path: str, **kwargs: Any) -> AsyncQueue:
    """A one-thread queue on ``path`` that has timed `gate`, ``log_to`` and ``ident`` as short."""
    kwargs.setdefault("threads", 1)
    kwargs.setdefault("workers", 1)
    q = queue_on(path, **kwargs)
    scratch: list[int] = []
    opened = threading.Event()
    opened.set()
    q.map(gate, [(opened, opened)] * 8, backend="thread")
    q.map(log_to, [(scratch, i) for i in range(8)], backend="thread")
    q.map(ident, range(8), backend="thread")
    await q.run(strict=True)
    check_path(q, path)
    return q


async def held_ahead(q: AsyncQueue, events: Gate, fill: Any, expect: int) -> tuple[int, float]:
    """Run ``fill()`` (it submits tasks) while a `gate` task holds the only thread; once ``expect`` tasks
    are queued ahead besides the gate, the most that were and when the gate let go."""
    async with q:
        held = q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        fill()
        await aeventually(lambda: q.stats["thread"]["threads_batched"] >= 1 + expect, "the tasks to be queued ahead")
        most = q.stats["thread"]["threads_batched"] - 1
        events.release.set()
        await q.join()
    return int(most), held.value()


async def test_short_tasks_are_queued_ahead_and_start_when_a_thread_takes_them(path: str) -> None:
    """With the one thread busy, tasks of a short function are queued ahead (up to 32 per thread), and
    each one's started_at is when the thread took it, after the busy task let go."""
    q = await short_queue(path)
    log: list[int] = []
    handles: list[Any] = []

    def fill() -> None:
        handles.extend(q.map(log_to, [(log, i) for i in range(100)], backend="thread"))

    most, opened = await held_ahead(q, Gate(), fill, 31)  # 32 with the gate
    assert most == 31, most
    assert log == list(range(100))
    assert all(h.value() == i and h.result().attempts == 1 for i, h in enumerate(handles))
    ahead = [h.result() for h in handles[:most]]
    assert all(r.started_at is not None and r.started_at >= opened for r in ahead)
    assert all(r.timings[0].started_at is not None and r.timings[0].started_at >= opened
               for r in ahead)
    assert q.stats["thread"]["threads_batched"] == 0
    await q.shutdown()


async def test_priority_order_holds_for_tasks_ready_together(path: str) -> None:
    q = await short_queue(path)
    log: list[int] = []

    def fill() -> None:
        q.map(log_to, [(log, i) for i in range(100, 110)], backend="thread", priority=5)
        q.map(log_to, [(log, i) for i in range(300, 305)], backend="thread", priority=1)

    await held_ahead(q, Gate(), fill, 15)
    assert log == [*range(300, 305), *range(100, 110)]
    await q.shutdown()


async def test_a_more_urgent_task_goes_before_those_queued_ahead_and_a_timed_one_waits_off_the_clock(
        path: str) -> None:
    """Once tasks wait queued ahead behind a busy thread (however long they turn out to take), a more
    urgent task handed over later goes first, after the running one; a timed task of their priority
    waits its turn in order, and its clock starts only when a thread takes it."""
    q = await short_queue(path)
    events, log = Gate(), []
    async with q:
        q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        q.map(log_to, [(log, i) for i in range(100, 110)], backend="thread", priority=5)
        await aeventually(lambda: q.stats["thread"]["threads_batched"] == 11, "the tasks to be queued ahead")
        urgent = q.submit(log_to, log, 0, backend="thread", priority=0)
        timed = q.submit(log_to, log, 1, backend="thread", priority=5, timeout=1.0)
        await aeventually(lambda: q.pending_count == 0, "both to be handed to the pool")
        await anyio.sleep(1.3)  # more than the timed task's timeout passes while it waits for the thread
        opened = time.time()
        events.release.set()
        await q.join()
    assert log == [0, *range(100, 110), 1]
    assert urgent.value() == 0 and timed.value() == 1
    started = timed.result().started_at
    assert started is not None and started >= opened
    assert q.stats["thread"]["threads_batched"] == 0


async def test_a_task_goes_before_the_tasks_queued_ahead_only_if_more_urgent_than_all(path: str) -> None:
    """Among tasks queued ahead, one handed over later that is more urgent than some of them but
    not all waits in line: it never runs before a more urgent task handed over first."""
    q = await short_queue(path)
    events, log = Gate(), []
    async with q:
        q.submit(gate, events.started, events.release, backend="thread", priority=0)
        await until(events.started, "the gate task to start")
        q.map(log_to, [(log, i) for i in range(100, 105)], backend="thread", priority=0)
        q.submit(log_to, log, 900, backend="thread", priority=10)
        await aeventually(lambda: q.stats["thread"]["threads_batched"] == 7, "the tasks to be queued ahead")
        q.submit(log_to, log, 500, backend="thread", priority=5)
        await aeventually(lambda: q.pending_count == 0, "it to be handed to the pool")
        events.release.set()
        await q.join()
    assert log[:5] == list(range(100, 105)), log
    assert sorted(log[5:]) == [500, 900]


async def slot_taken(q: AsyncQueue, events: Gate, fill: Any) -> list[Any]:
    """Submit a `gate` task and, once it holds the thread, what ``fill()`` returns; wait until the
    task handed over next holds the queue's one slot (the gate gave its slot back, if it was queued
    ahead) or the gate holds it; then check nothing more was handed over, and let the gate go."""
    async with q:
        q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        handles = fill()
        lane = q._engine.lanes["thread"]
        await aeventually(lambda: lane.running == 1, "a task to hold the slot")
        await anyio.sleep(0)  # a turn for a dispatch that should not happen
        queued_ahead = q.stats["thread"]["threads_batched"]
        assert q.pending_count == len(handles) - (1 if queued_ahead else 0)
        events.release.set()
        await q.join()
    assert queued_ahead <= 1  # the gate, at most
    return list(handles)


async def test_timed_slow_and_unmeasured_tasks_are_never_queued_ahead(path: str) -> None:
    """With the gate queued ahead, a timed task of a short function, a task of a function slower than
    1 ms and one never timed each hold the slot: none is queued ahead."""
    for kind in ("timed", "slow", "unmeasured"):
        q = await short_queue(path)
        q.map(slow, range(4), backend="thread")
        await q.run(strict=True)
        fill = {"timed": lambda: q.map(ident, range(5), backend="thread", timeout=30),
                "slow": lambda: q.map(slow, range(5), backend="thread"),
                "unmeasured": lambda: q.map(lambda i: i, range(5), backend="thread")}[kind]
        handles = await slot_taken(q, Gate(), fill)
        assert [h.value() for h in handles] == list(range(5)), kind
        assert q.stats["thread"]["threads_batched"] == 0


async def test_a_task_cancelled_while_queued_ahead_never_runs(path: str) -> None:
    q = await short_queue(path)
    events, log = Gate(), []
    async with q:
        q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        handles = q.map(log_to, [(log, i) for i in range(10)], backend="thread")
        await aeventually(lambda: q.stats["thread"]["threads_batched"] == 11, "the tasks to be queued ahead")
        assert handles[4].cancel()
        await aeventually(lambda: q.stats["thread"]["threads_batched"] == 10, "the cancelled task to be dropped")
        events.release.set()
        await q.join()
    assert log == [0, 1, 2, 3, 5, 6, 7, 8, 9] and handles[4].status == "cancelled"
    await q.shutdown()


@pytest.mark.parametrize("how", ["keyword", "environment", "fewer workers than threads"])
async def test_queueing_ahead_can_be_turned_off(how: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``thread_batching=False``, OSIISO_THREAD_BATCHING=0 (over the keyword), or fewer ``workers`` than
    ``threads``: no task is queued ahead; the results are the same."""
    kwargs: dict[str, Any] = {}
    if how == "keyword":
        kwargs["thread_batching"] = False
    elif how == "environment":
        monkeypatch.setenv("OSIISO_THREAD_BATCHING", "0")
        kwargs["thread_batching"] = True
    else:
        kwargs["threads"] = 2
    q = await short_queue(path, **kwargs)
    assert not q._engine.lanes["thread"].backend.batching  # type: ignore[attr-defined]
    handles = await slot_taken(q, Gate(), lambda: q.map(ident, range(50), backend="thread"))
    assert [h.value() for h in handles] == list(range(50))


@pytest.mark.parametrize("value", [None, 0, 1, "no"])
def test_a_bad_thread_batching_value_is_a_type_error(value: object) -> None:
    from osiiso import Queue

    with pytest.raises(TypeError, match=r"thread_batching must be True or False, got .*thread_batching=False"):
        AsyncQueue(thread_batching=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="thread_batching must be True or False"):
        Queue(thread_batching=value)  # type: ignore[arg-type]


async def test_nothing_is_queued_ahead_under_a_rate_limit(path: str) -> None:
    """Under ``rate``, tasks handed over while the thread is held are not queued ahead: when it frees,
    they start spaced by the limit, not back to back."""
    q = await short_queue(path, rate=20, burst=1)
    events = Gate()
    async with q:
        q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        handles = q.map(ident, range(5), backend="thread")
        await anyio.sleep(0.1)  # two rate intervals: a hand-over would have happened by now
        assert q.stats["thread"]["threads_batched"] == 0 and q.pending_count == 5  # the gate holds the slot
        events.release.set()
        await q.join()
    starts = sorted(h.result().started_at for h in handles)
    assert all(later - earlier >= 0.04 for earlier, later in zip(starts[1:], starts[2:])), starts



async def _async_note(fired: list[str], handle: Any) -> None:
    fired.append(handle.task_id)


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_nothing_is_queued_ahead_under_an_on_start_hook(kind: str) -> None:
    """A thread task's on_start fires before it is handed to the pool, so it must not then wait in the
    pool's queue: with a hook, nothing is queued ahead, and each task starts after its own hook."""
    fired: list[str] = []
    hook: Any = (lambda h: fired.append(h.task_id)) if kind == "plain" else partial(_async_note, fired)
    q = await short_queue("hooks", on_start=hook)
    events = Gate()
    async with q:
        held = q.submit(gate, events.started, events.release, backend="thread")
        await until(events.started, "the gate task to start")
        handles = q.map(ident, range(5), backend="thread")
        assert q.stats["thread"]["threads_batched"] == 0
        assert fired[-1] == held.task_id  # the others wait for the gate's slot, their hooks not fired
        events.release.set()
        await q.join()
    assert [h.value() for h in handles] == list(range(5))
    assert fired[-5:] == [h.task_id for h in handles]


async def test_tasks_queued_ahead_never_let_more_tasks_run_than_workers(path: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a queue that also runs async tasks, thread tasks queued ahead do not free slots those could
    take: no more tasks execute at once than ``workers``, and the thread tasks are still queued ahead."""
    q = queue_on(path, workers=2, threads=2)
    q.map(stamp, range(8), backend="thread")
    await q.run(strict=True)
    most = 0
    original = ThreadBackend._release

    def release(backend: ThreadBackend, job: Any) -> bool:
        nonlocal most
        most = max(most, backend._held)
        return original(backend, job)

    monkeypatch.setattr(ThreadBackend, "_release", release)
    assert await most_at_once_mixed(q, "thread") <= 2
    assert most > 1, "no task was queued ahead"
    await q.shutdown()


def broken_initializer() -> None:
    raise OSError("no connection")


async def test_calls_that_never_ran_teach_nothing(path: str) -> None:
    """Tasks failed by a broken initializer never called their function: it is not learnt as short,
    so nothing of it is queued ahead afterwards."""
    q = queue_on(path, workers=1, threads=1, initializer=broken_initializer)
    handles = q.map(ident, range(8), backend="thread")
    await q.run()
    assert all(h.status == "failed" for h in handles)
    backend = q._engine.lanes["thread"].backend
    assert id(ident) not in backend._times  # type: ignore[attr-defined]
    await q.shutdown()
