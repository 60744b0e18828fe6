"""Batching on the process backend: tasks of a short function travel in batches, each keeping its own outcome.

Every test first teaches the pool that ``step`` is short (a few calls), so that what follows
is batched, and checks that it was (``processes_batched``). They synchronise on files the
tasks write, never on sleeps.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import ASYNCIO, aeventually, most_at_once_mixed, queue_on, stamp

from osiiso import AsyncQueue, Queue, TaskTimeoutError, WorkerCrashedError
from osiiso.backends.process.placing import COOL_CALLS, DEPTH
from osiiso.backends.process.pool import Pool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def anyio_backend() -> object:
    """Pool behaviour does not depend on the loop: asyncio only keeps these fast."""
    return ASYNCIO


def step(i: int, log: str | None = None, gate: str | None = None, hang_at: int = -1, crash_at: int = -1) -> int:
    """A short task; it logs its number, waits for ``gate`` to exist, hangs or crashes when asked."""
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{i}\n")
    if gate is not None:
        Path(gate + ".started").touch()
        while not os.path.exists(gate):
            time.sleep(0.005)
    if i == hang_at:
        time.sleep(600)
    if i == crash_at:
        os._exit(3)
    return i


def unmeasured(i: int, log: str) -> int:
    """A task of a function the pool has never timed: it is never batched."""
    with open(log, "a") as f:
        f.write(f"{i}\n")
    return i


def spin(i: int, gate: str | None = None) -> int:
    """A task of about 0.2 ms (a few of them make a batch), or one that waits for ``gate`` to exist."""
    if gate is not None:
        Path(gate + ".started").touch()
        while not os.path.exists(gate):
            time.sleep(0.005)
    else:
        end = time.perf_counter() + 0.0002
        while time.perf_counter() < end:
            pass
    return i


class Peak:
    """Records the most tasks the pool held in batches at once, and the most jobs its first worker
    held, each time a job ends (a spy on ``Pool.release``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batched = self.depth = 0
        original = Pool.release

        def release(pool: Pool, job: Any) -> None:
            self.batched = max(self.batched, pool.held)
            self.depth = max(self.depth, len(pool._slots[0].inflight))
            original(pool, job)

        monkeypatch.setattr(Pool, "release", release)


async def short_queue(path: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> tuple[AsyncQueue, Peak]:
    """A one-process queue that has timed ``step`` as short, on ``path``."""
    q = queue_on(path, processes=1, **kwargs)
    q.map(step, range(8), backend="process")
    await q.run(strict=True)
    assert q._engine.lanes["process"].direct == (path == "direct")
    return q, Peak(monkeypatch)


def sent_behind(q: AsyncQueue) -> list[int]:
    """The submission numbers of the tasks the pool has sent to its one worker behind the first."""
    pool = q._engine.lanes["process"].backend._pool  # type: ignore[attr-defined]
    return [job.attempt.seq for job in list(pool._slots[0].inflight)[1:]]


def logged(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


async def test_a_timeout_inside_a_batch_fails_that_task_alone(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task over its timeout is killed and times out; the rest of its batch runs again, uncharged."""
    q, peak = await short_queue(path, monkeypatch)
    handles = q.map(step, [(i, None, None, 50) for i in range(200)], backend="process", timeout=3)
    await q.run()
    assert peak.batched > 1, "the tasks were not batched"
    hung = handles[50].result()
    assert hung.status == "failed" and isinstance(hung.exception, TaskTimeoutError) and hung.attempts == 1
    others = [h.result() for i, h in enumerate(handles) if i != 50]
    assert all(r.status == "succeeded" and r.attempts == 1 for r in others), [r.message for r in others
                                                                               if r.status != "succeeded"]
    assert [r.value for r in others] == [i for i in range(200) if i != 50]
    assert q.stats["process"]["processes_killed"] == 1
    await q.shutdown()


async def test_a_crash_inside_a_batch_fails_only_the_task_that_ran(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies in a batch fails the task it was running; the others of the batch run again."""
    q, peak = await short_queue(path, monkeypatch)
    handles = q.map(step, [(i, None, None, -1, 50) for i in range(200)], backend="process")
    await q.run()
    assert peak.batched > 1, "the tasks were not batched"
    crashed = handles[50].result()
    assert crashed.status == "failed" and isinstance(crashed.exception, WorkerCrashedError)
    assert crashed.attempts == 1
    others = [h.result() for i, h in enumerate(handles) if i != 50]
    assert all(r.status == "succeeded" and r.attempts == 1 for r in others), [r.message for r in others
                                                                               if r.status != "succeeded"]
    await q.shutdown()


async def test_a_function_whose_call_died_is_batched_again_only_after_many_calls(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a worker died running one of its calls, a function goes one task at a time until
    COOL_CALLS of its calls have ended, then it is batched again."""
    q, peak = await short_queue(path, monkeypatch)
    q.map(step, [(i, None, None, -1, 5) for i in range(20)], backend="process")  # step(5) crashes
    await q.run()
    peak.batched = 0
    handles = q.map(step, range(COOL_CALLS - 40), backend="process")
    await q.run(strict=True)
    assert peak.batched == 0, "batched again too soon"
    handles = q.map(step, range(400), backend="process")
    await q.run(strict=True)
    assert peak.batched > 1, "never batched again"
    assert [h.value() for h in handles] == list(range(400))
    await q.shutdown()


async def test_events_and_timings_are_per_task_inside_a_batch(caplog: pytest.LogCaptureFixture, path: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """In a batch with a crash, every task has one start and one finish event, one timing on a process
    slot that began no earlier than it was queued, and the one crash event names the task that ran."""
    q, peak = await short_queue(path, monkeypatch)
    caplog.set_level(logging.DEBUG, logger="osiiso")
    handles = q.map(step, [(i, None, None, -1, 50) for i in range(200)], backend="process")
    await q.run()
    assert peak.batched > 1, "the tasks were not batched"
    ids = {h.task_id for h in handles}
    events = Counter((r.event, r.task_id) for r in caplog.records  # type: ignore[attr-defined]
                     if getattr(r, "task_id", None) in ids)
    assert all(events["start", i] == 1 and events["finish", i] == 1 for i in ids), events
    assert [i for (kind, i), n in events.items() if kind == "crash"] == [handles[50].task_id]
    for handle in handles:
        result = handle.result()
        (timing,) = result.timings
        assert timing.worker.startswith("process/") and timing.started_at is not None
        assert timing.queued_at <= timing.started_at <= timing.finished_at
        assert result.started_at is not None and result.started_at <= timing.started_at
    assert handles[50].result().timings[0].outcome == "crashed"
    await q.shutdown()


async def test_a_task_cancelled_in_a_batch_before_it_starts_never_runs(tmp_path: Path, path: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling a batched task that has not started skips it; the others start only when they really do."""
    log, gate = tmp_path / "log", str(tmp_path / "gate")
    q, _ = await short_queue(path, monkeypatch)
    async with q:
        blocker = q.submit(step, 0, None, gate, backend="process")
        handles = q.map(step, [(i, str(log)) for i in range(1, 21)], backend="process")
        await aeventually(lambda: os.path.exists(gate + ".started"), "the first task to start")
        await aeventually(lambda: q.stats["process"]["processes_batched"] >= 20, "the tasks to be batched")
        queued = sent_behind(q)  # the tasks the worker holds behind the first: cancel the last of them
        assert queued, "no task was sent behind the first one"
        victim = next(h for h in handles if h._seq == queued[-1])
        assert victim.cancel()
        opened = time.time()
        Path(gate).touch()
        await q.join()
    assert blocker.value() == 0
    assert victim.status == "cancelled"
    assert handles.index(victim) + 1 not in logged(log)  # step(i) logs i
    ran = [h.result() for h in handles if h is not victim]
    assert all(r.status == "succeeded" for r in ran)
    assert sorted(logged(log)) == [r.value for r in ran]
    # batched tasks waited behind the first one: they count as started when they really began
    assert all(r.started_at is not None and r.started_at >= opened for r in ran)
    assert all(r.timings[0].started_at is not None and r.timings[0].started_at >= opened for r in ran)


async def map_behind_a_blocked_worker(q: AsyncQueue, gate: str, before: Callable[[], object]) -> list[Any]:
    """On a started one-process queue that timed ``spin`` as short: block its worker on a ``spin``
    that waits for ``gate``, call ``before``, map 400 ``spin`` tasks, and return their handles once
    settled (the pool holding all the batches it takes, `Backend.batch_limit`, and every task handed
    over in the pool: the engine hands over no more until one ends)."""
    lane = q._engine.lanes["process"]
    q.submit(spin, 0, gate, backend="process")
    await aeventually(lambda: os.path.exists(gate + ".started"), "the blocking task to start")
    before()
    handles = q.map(spin, range(400), backend="process")
    pool = lane.backend._pool  # type: ignore[attr-defined]
    await aeventually(lambda: lane.batches_full() and pool.outstanding() == lane.running + lane.held,
                      "the pool's batches to fill")
    return handles


async def test_a_pool_full_of_batches_is_handed_no_more_tasks_and_other_backends_run(tmp_path: Path) -> None:
    """While the pool holds all the batches it takes, the engine hands its lane no task (one could
    only wait unbatched behind them, holding a slot); a thread task still gets a slot and runs."""
    gate = str(tmp_path / "gate")
    q = AsyncQueue(processes=1, workers=4)
    q.map(spin, range(40), backend="process")
    await q.run(strict=True)
    async with q:
        lane = q._engine.lanes["process"]
        handles = await map_behind_a_blocked_worker(q, gate, lambda: None)
        assert lane.running == 0 and lane.size > 300, (lane.running, lane.size)
        with anyio.fail_after(20):
            assert (await q.submit(lambda: 42, backend="thread")).value == 42
        assert lane.running == 0 and lane.size > 300, (lane.running, lane.size)
        Path(gate).touch()
        await q.join()
    assert [h.value() for h in handles] == list(range(400))


async def test_on_start_fires_when_a_batched_task_really_begins(tmp_path: Path) -> None:
    """Tasks batched behind a busy worker fire a plain on_start only as each begins, once, after its
    started_at and before its on_complete; at most two batches of their function wait meanwhile."""
    gate = str(tmp_path / "gate")
    starts: dict[int, list[float]] = {}
    order: list[tuple[str, int]] = []

    def on_start(handle: Any) -> None:
        starts.setdefault(handle._seq, []).append(time.time())
        order.append(("start", handle.task_id))

    q = AsyncQueue(processes=1, on_start=on_start, on_complete=lambda r: order.append(("complete", r.task_id)))
    q.map(spin, range(40), backend="process")
    await q.run(strict=True)  # spin is timed: about 0.2 ms, a batch of a few
    async with q:
        handles = await map_behind_a_blocked_worker(q, gate, lambda: (starts.clear(), order.clear()))
        batched = q.stats["process"]["processes_batched"]
        assert 0 < batched <= 2 * 8, "more batched tasks wait than two batches of a 0.2 ms function"
        assert starts == {}, "on_start fired for tasks that wait behind the blocking one"
        Path(gate).touch()
        await q.join()
    assert [h.value() for h in handles] == list(range(400))
    for handle in handles:
        result = handle.result()
        (fired,) = starts[handle._seq]
        assert result.started_at is not None and result.started_at <= fired <= result.finished_at
        assert order.index(("start", handle.task_id)) < order.index(("complete", handle.task_id))
    assert q.stats["process"]["processes_batched"] == 0


@pytest.mark.parametrize("hooked", [False, True], ids=["direct", "with-on_start"])
async def test_the_start_event_is_logged_when_a_batched_task_really_begins(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, hooked: bool) -> None:
    """The DEBUG ``start`` event of a task batched behind a busy worker is logged once, as it begins
    (not as it is handed over), between its started_at and its finished_at, before its finish."""
    caplog.set_level(logging.DEBUG, logger="osiiso")
    gate = str(tmp_path / "gate")
    q = AsyncQueue(processes=1, on_start=(lambda handle: None) if hooked else None)
    q.map(spin, range(40), backend="process")
    await q.run(strict=True)  # spin is timed: about 0.2 ms, a batch of a few
    async with q:
        handles = await map_behind_a_blocked_worker(q, gate, caplog.clear)
        assert q.stats["process"]["processes_batched"] > 0
        assert [r for r in caplog.records if getattr(r, "event", None) == "start"] == [], \
            "a start event was logged for tasks that wait behind the blocking one"
        Path(gate).touch()
        await q.join()
    events: dict[str, list[logging.LogRecord]] = {}
    for record in caplog.records:
        events.setdefault(getattr(record, "task_id", None) or "", []).append(record)
    for handle in handles:
        result = handle.result()
        kinds = [r.event for r in events[handle.task_id]]  # type: ignore[attr-defined]
        assert kinds == ["start", "finish"], kinds
        logged_at = events[handle.task_id][0].created
        assert result.started_at is not None and result.started_at <= logged_at <= result.finished_at


async def test_an_attempt_reported_begun_twice_logs_one_start_and_fires_on_start_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An attempt the pool reports begun a second time (cut short as the job before it ended, and sent
    again: `Slot.settle`) logs one DEBUG ``start`` event and fires ``on_start`` once."""
    from osiiso.backends.base import Attempt

    real = Attempt.began

    def twice(self: Attempt) -> None:
        real(self)
        real(self)

    monkeypatch.setattr(Attempt, "began", twice)
    fired: Counter[str] = Counter()
    caplog.set_level(logging.DEBUG, logger="osiiso")
    q = AsyncQueue(processes=1, on_start=lambda handle: fired.update([handle.task_id]))
    handles = q.map(spin, range(60), backend="process")
    await q.run(strict=True)
    starts = Counter(getattr(r, "task_id", None) for r in caplog.records if getattr(r, "event", None) == "start")
    assert starts == Counter({h.task_id: 1 for h in handles})
    assert fired == Counter({h.task_id: 1 for h in handles})
    await q.shutdown()


async def test_an_async_on_start_turns_batching_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """An async on_start is awaited before its task is handed over, so no task is batched behind
    others (it would start later than its hook said)."""
    fired: list[int] = []

    async def on_start(handle: Any) -> None:
        fired.append(handle._seq)

    q = AsyncQueue(processes=1, on_start=on_start)
    peak = Peak(monkeypatch)
    q.map(step, range(8), backend="process")
    await q.run(strict=True)
    handles = q.map(step, range(300), backend="process")
    await q.run(strict=True)
    assert peak.batched == 0
    assert [h.value() for h in handles] == list(range(300))
    assert len(fired) == 308
    await q.shutdown()


async def test_batched_tasks_never_let_more_tasks_run_than_workers(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a queue that also runs async tasks, batched process tasks do not free slots those could take:
    no more tasks execute at once than ``workers``, and the process tasks are still batched."""
    q = queue_on(path, workers=2, processes=2)
    q.map(stamp, range(8), backend="process")
    await q.run(strict=True)
    peak = Peak(monkeypatch)
    assert await most_at_once_mixed(q, "process") <= 2
    assert peak.batched > 1, "the tasks were not batched"
    await q.shutdown()


async def test_priority_order_holds_across_batched_and_unbatched_tasks(tmp_path: Path, path: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks ready together run in priority order, whether batched or not; an unmeasured task is never batched."""
    log, gate = tmp_path / "log", str(tmp_path / "gate")
    q, _ = await short_queue(path, monkeypatch)
    async with q:
        q.submit(step, 0, None, gate, backend="process")
        await aeventually(lambda: os.path.exists(gate + ".started"), "the first task to start")
        low = q.map(step, [(i, str(log)) for i in range(100, 110)], backend="process", priority=5)
        long = q.submit(unmeasured, 200, str(log), backend="process", priority=1)
        high = q.map(step, [(i, str(log)) for i in range(300, 305)], backend="process", priority=1)
        Path(gate).touch()
        await q.join()
    assert all(h.status == "succeeded" for h in [*low, long, *high])
    assert logged(log) == [200, *range(300, 305), *range(100, 110)]


@pytest.mark.parametrize("how", ["keyword", "environment", "environment over the keyword"])
async def test_batching_can_be_turned_off(how: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``process_batching=False``, or OSIISO_PROCESS_BATCHING=0 whatever the keyword says, batches no
    task: a worker holds at most DEPTH jobs, as without batching; the results are the same."""
    if how != "keyword":
        monkeypatch.setenv("OSIISO_PROCESS_BATCHING", "0")
    q, peak = await short_queue(path, monkeypatch, **({"process_batching": False} if how == "keyword" else
                                   {"process_batching": True} if how != "environment" else {}))
    handles = q.map(step, range(200), backend="process")
    await q.run(strict=True)
    assert peak.batched == 0 and peak.depth <= DEPTH
    assert [h.value() for h in handles] == list(range(200))
    await q.shutdown()


async def test_batching_is_on_by_default_and_a_worker_then_holds_more_than_depth(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same map with the default queue batches: its worker holds more than DEPTH jobs at once."""
    q, peak = await short_queue(path, monkeypatch)
    handles = q.map(step, range(200), backend="process")
    await q.run(strict=True)
    assert peak.batched > 1 and peak.depth > DEPTH
    assert [h.value() for h in handles] == list(range(200))
    await q.shutdown()


async def test_no_batching_when_workers_are_fewer_than_processes(tmp_path: Path, path: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``workers=1`` with two processes runs one task at a time, in priority order: a batched task
    would give its slot back while another runs on the second process, so nothing is batched."""
    peak = Peak(monkeypatch)
    q = queue_on(path, workers=1, processes=2)
    q.map(step, range(8), backend="process")
    await q.run(strict=True)
    log = tmp_path / "log"
    for i in range(40):
        q.submit(step, i, str(log), backend="process", priority=-i)
    await q.run(strict=True)
    assert peak.batched == 0
    assert logged(log) == list(range(39, -1, -1))
    await q.shutdown()


async def test_nothing_is_batched_under_a_rate_limit(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue with ``rate`` batches nothing: batched tasks handed over while their worker is busy
    would start back to back once it frees, past the limit."""
    q, peak = await short_queue(path, monkeypatch, rate=2000, burst=1)
    handles = q.map(step, range(200), backend="process")
    await q.run(strict=True)
    assert peak.batched == 0
    assert [h.value() for h in handles] == list(range(200))
    await q.shutdown()


async def test_under_a_rate_limit_no_task_waits_in_a_busy_worker(tmp_path: Path, path: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``rate``, short tasks handed over while the one worker is busy are not queued behind it
    (up to 4 deep otherwise): when it frees, they start spaced by the limit, not back to back."""
    gate = str(tmp_path / "gate")
    q, _ = await short_queue(path, monkeypatch, rate=20, burst=1)
    q.map(stamp, range(8), backend="process")  # timed as short too: it could be queued behind ``step``
    await q.run(strict=True)
    async with q:
        q.submit(step, 0, None, gate, backend="process")
        await aeventually(lambda: os.path.exists(gate + ".started"), "the first task to start")
        handles = q.map(stamp, range(4), backend="process")
        await anyio.sleep(0.2)  # four rate intervals: hand-overs to a worker queue would have happened
        pool = q._engine.lanes["process"].backend._pool  # type: ignore[attr-defined]
        assert len(pool._slots[0].inflight) == 1 and q.pending_count == 4
        Path(gate).touch()
        await q.join()
    starts = sorted(h.value()[0] for h in handles)
    assert all(later - earlier >= 0.04 for earlier, later in zip(starts, starts[1:])), starts


@pytest.mark.parametrize("value", [None, 0, 1, "no", "False"])
def test_a_bad_process_batching_value_is_a_type_error(value: object) -> None:
    """Anything but True or False for ``process_batching`` is a TypeError naming the keyword, from both queues."""
    with pytest.raises(TypeError, match=r"process_batching must be True or False, got .*process_batching=False"):
        AsyncQueue(process_batching=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="process_batching must be True or False"):
        Queue(process_batching=value)  # type: ignore[arg-type]


def test_a_job_sent_back_in_line_is_as_one_never_sent() -> None:
    """A job that began just as the pool killed its worker to stop another goes back in line with
    nothing of its first hand-over left: not started, not announced, no bytes counted unread.

    A stale ``started`` made a crash of the worker it later waited in blame it (WorkerCrashedError
    for a task that never ran), and a cancel while it waited kill that worker."""
    from osiiso.backends.base import Attempt
    from osiiso.backends.process.jobs import FunctionEntry, ProcessJob, Slot

    slot = Slot(0)
    stopped, cut_short, waiting = (ProcessJob(seq, Attempt(spin, (seq,), {}, 1, None), FunctionEntry(1, b""), b"")
                                   for seq in range(3))
    stopped.cancelled = stopped.done = True  # the job the pool killed the worker to stop
    cut_short.started = cut_short.announce = True  # reported STARTED before the worker died
    cut_short.size = 0
    waiting.announce, waiting.size = True, 120  # sent behind them, unread in the pipe
    slot.inflight.extend([stopped, cut_short, waiting])
    slot.killed = True
    lost, again = slot.settle(4321, -9)
    assert not lost and again == [cut_short, waiting]
    for job in again:
        assert (job.started, job.announce, job.size, job.done) == (False, False, 0, False)


def test_jobs_sent_back_in_line_keep_the_priority_order() -> None:
    """Jobs a dead worker held go back among the waiting ones in priority order: ahead of those of
    their own priority (handed over after them), behind more urgent ones, in their own order."""
    from collections import deque

    from osiiso.backends.base import Attempt
    from osiiso.backends.process.jobs import FunctionEntry, ProcessJob, requeue_in_order

    def job(seq: int, priority: int) -> ProcessJob:
        return ProcessJob(seq, Attempt(spin, (seq,), {}, 1, None, priority=priority), FunctionEntry(1, b""), b"")

    pending = deque([job(10, 0), job(11, 3), job(12, 3), job(13, 5)])
    requeue_in_order(pending, [job(1, 3), job(2, 5), job(3, 3), job(4, 0), job(5, 9)])
    assert [(j.seq, j.attempt.priority) for j in pending] == [
        (4, 0), (10, 0), (1, 3), (3, 3), (11, 3), (12, 3), (2, 5), (13, 5), (5, 9)]
