"""Conformance: the core task semantics, identical on every backend and event loop."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

import osiiso
from osiiso import AsyncQueue, TaskCancelledError, TaskTimeoutError

from .kit import Boom, Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_values_come_back_in_submission_order(kit: Kit) -> None:
    """A run returns every task's value, in submission order, and counts them."""
    q = AsyncQueue(workers=4)
    handles = [q.submit(kit.square, i, **kit.opts) for i in range(20)]
    summary = await q.run()
    assert summary.values == tuple(i * i for i in range(20))
    assert (summary.total_submitted, summary.succeeded, summary.failed) == (20, 20, 0)
    assert summary.ok
    assert [h.value() for h in handles] == [i * i for i in range(20)]
    assert {r.backend for r in summary.results} == {kit.backend}
    await q.shutdown()


async def test_priority_order_and_fifo_within_a_priority(kit: Kit, tmp_path: Path) -> None:
    """With one worker, lower priority numbers run first and equal priorities run in submission order."""
    log = str(tmp_path / "order")
    q = AsyncQueue(workers=1)
    for item, priority in [("a", 5), ("b", 1), ("c", 5), ("d", 0), ("e", 1)]:
        q.submit(kit.record, log, item, priority=priority, **kit.opts)
    await q.run(strict=True)
    assert Path(log).read_text().split() == ["d", "b", "e", "a", "c"]
    await q.shutdown()


async def test_failure_is_recorded_with_its_exception(kit: Kit) -> None:
    """A task that raises ends failed with that exception; value() re-raises it."""
    q = AsyncQueue()
    handle = q.submit(kit.fail, "no luck", **kit.opts)
    summary = await q.run()
    assert summary.failed == 1 and not summary.ok
    result = handle.result()
    assert result.status == "failed" and isinstance(result.exception, Boom)
    assert "no luck" in result.message
    with pytest.raises(Boom, match="no luck"):
        handle.value()
    with pytest.raises(osiiso.ExecutionError):
        summary.raise_for_errors()
    await q.shutdown()


async def test_retries_until_success(kit: Kit, tmp_path: Path) -> None:
    """A task that fails twice succeeds on its third attempt when retries=2; on_retry sees each retry."""
    retried: list[str] = []
    q = AsyncQueue(on_retry=lambda h, exc: retried.append(type(exc).__name__))
    handle = q.submit(kit.flaky, str(tmp_path / "n"), 2, retries=2, **kit.opts)
    await q.run(strict=True)
    assert handle.value() == 3
    assert handle.attempts == 3 and handle.result().attempts == 3
    assert retried == ["Boom", "Boom"]
    await q.shutdown()


async def test_retries_exhausted_fail_with_the_last_error(kit: Kit, tmp_path: Path) -> None:
    """When every attempt fails the task fails after retries + 1 attempts."""
    q = AsyncQueue()
    handle = q.submit(kit.flaky, str(tmp_path / "n"), 5, retries=1, **kit.opts)
    await q.run()
    assert handle.status == "failed" and handle.attempts == 2
    assert isinstance(handle.exception(), Boom)
    assert "after 2 attempts" in handle.result().message
    await q.shutdown()


async def test_retry_on_limits_what_is_retried(kit: Kit, tmp_path: Path) -> None:
    """An exception outside retry_on fails at once, without retrying."""
    q = AsyncQueue()
    handle = q.submit(kit.flaky, str(tmp_path / "n"), 5, retries=3, retry_on=KeyError, **kit.opts)
    await q.run()
    assert handle.status == "failed" and handle.attempts == 1
    await q.shutdown()


async def test_retry_delay_and_backoff(kit: Kit, tmp_path: Path) -> None:
    """Retries wait retry_delay * backoff**(k-1) before retry k."""
    q = AsyncQueue()
    handle = q.submit(kit.flaky, str(tmp_path / "n"), 2, retries=2, retry_delay=0.05, backoff=2.0, **kit.opts)
    began = time.monotonic()
    await q.run(strict=True)
    assert handle.attempts == 3
    assert time.monotonic() - began >= 0.05 + 0.1
    await q.shutdown()


async def test_timeout_fails_the_attempt_and_names_the_limit(kit: Kit) -> None:
    """An attempt over its timeout fails with TaskTimeoutError, whose message gives the limit."""
    q = AsyncQueue()
    handle = q.submit(kit.slow, 20, timeout=0.2, **kit.opts)
    began = time.monotonic()
    summary = await q.run()
    assert time.monotonic() - began < 10
    error = handle.exception()
    assert isinstance(error, TaskTimeoutError) and isinstance(error, TimeoutError)
    assert "0.2s" in str(error) and "0.2s" in handle.result().message
    assert summary.timeouts == 1 and summary.failed == 1 and summary.timed_out is False
    await q.shutdown()


async def test_timed_out_attempts_are_retried(kit: Kit) -> None:
    """A timeout counts as a failed attempt: retries apply to it."""
    q = AsyncQueue()
    handle = q.submit(kit.slow, 20, timeout=0.1, retries=2, **kit.opts)
    await q.run()
    assert handle.attempts == 3
    assert isinstance(handle.exception(), TaskTimeoutError)
    assert "attempt 3 of 3" in str(handle.exception())
    await q.shutdown()


async def test_a_timeout_outside_retry_on_says_why_it_was_not_retried(kit: Kit) -> None:
    """retry_on without TaskTimeoutError: the timed-out task is not retried and its message says so
    (not "attempt 1 of 4"); with TaskTimeoutError in retry_on it is retried."""
    q = AsyncQueue()
    plain = q.submit(kit.slow, 20, timeout=0.1, retries=3, retry_on=ConnectionError, **kit.opts)
    retried = q.submit(kit.slow, 20, timeout=0.1, retries=1, retry_on=(ConnectionError, TaskTimeoutError),
                       **kit.opts)
    await q.run()
    assert plain.attempts == 1
    message = str(plain.exception())
    assert "not retried: TaskTimeoutError is not in retry_on" in message and "attempt 1 of 4" not in message
    assert "not retried" in plain.result().message
    assert retried.attempts == 2 and "attempt 2 of 2" in str(retried.exception())
    await q.shutdown()


async def test_delay_does_not_hold_a_worker(kit: Kit, tmp_path: Path) -> None:
    """A delayed task waits without a worker: a later task runs first on a one-worker queue."""
    log = str(tmp_path / "order")
    q = AsyncQueue(workers=1)
    late = q.submit(kit.record, log, "late", delay=0.3, **kit.opts)
    q.submit(kit.record, log, "now", **kit.opts)
    await q.run(strict=True)
    assert Path(log).read_text().split() == ["now", "late"]
    result = late.result()
    assert result.started_at is not None and result.started_at - result.created_at >= 0.29
    await q.shutdown()


async def test_run_at_starts_at_an_epoch_time(kit: Kit) -> None:
    """run_at holds the task until that wall-clock time."""
    q = AsyncQueue()
    at = time.time() + 0.25
    handle = q.submit(kit.echo, 1, run_at=at, **kit.opts)
    await q.run(strict=True)
    started = handle.result().started_at
    assert started is not None and started >= at - 0.01
    await q.shutdown()


async def test_cancel_before_running(kit: Kit) -> None:
    """A task cancelled before it starts ends cancelled, never runs, and value() raises TaskCancelledError."""
    q = AsyncQueue()
    handle = q.submit(kit.echo, 1, **kit.opts)
    assert handle.cancel() is True
    summary = await q.run()
    assert handle.cancelled() and handle.attempts == 0
    # it ended before run() began: in queue.results, not in the run's summary (SPEC §8)
    assert summary.total_submitted == 0 and q.results[0].status == "cancelled"
    with pytest.raises(TaskCancelledError):
        handle.value()
    assert handle.cancel() is False
    await q.shutdown()


async def test_cancel_while_running(kit: Kit) -> None:
    """Cancelling a running task ends it cancelled promptly; the queue goes on."""
    started = anyio.Event()
    q = AsyncQueue(on_start=lambda h: started.set())
    async with q:
        handle = q.submit(kit.slow, 20, **kit.opts)
        await started.wait()
        began = time.monotonic()
        handle.cancel()
        result = await handle
        assert time.monotonic() - began < 10
        assert result.status == "cancelled"
        with pytest.raises(TaskCancelledError):
            handle.value()
        after = q.submit(kit.echo, "still works", **kit.opts)
        assert (await after).value == "still works"


async def test_must_complete_survives_fail_first(kit: Kit) -> None:
    """With fail_first the first failure cancels the rest, except must_complete tasks."""
    q = AsyncQueue(workers=4, threads=4, processes=4, fail_policy="fail_first")
    keep = q.submit(kit.slow, 0.3, "kept", must_complete=True, **kit.opts)
    doomed = [q.submit(kit.slow, 20, **kit.opts) for _ in range(2)]
    q.submit(kit.fail, "first failure", delay=0.05, **kit.opts)
    summary = await q.run()
    assert keep.value() == "kept"
    assert all(h.cancelled() for h in doomed)
    assert summary.failed == 1 and summary.cancelled == 2 and summary.succeeded == 1
    await q.shutdown()


async def test_run_timeout_spares_must_complete(kit: Kit) -> None:
    """A run timeout cancels the rest but lets must_complete tasks finish (on_timeout='complete')."""
    q = AsyncQueue(workers=4)
    keep = q.submit(kit.slow, 0.4, "kept", must_complete=True, **kit.opts)
    lost = q.submit(kit.slow, 20, **kit.opts)
    summary = await q.run(timeout=0.1)
    assert keep.value() == "kept" and lost.cancelled()
    assert "0.1s" in lost.result().message
    assert summary.cancelled == 1 and summary.succeeded == 1
    await q.shutdown()


async def test_run_timeout_cancel_policy_cancels_everything(kit: Kit) -> None:
    """With on_timeout='cancel' a run timeout cancels must_complete tasks too."""
    q = AsyncQueue(on_timeout="cancel")
    keep = q.submit(kit.slow, 20, must_complete=True, **kit.opts)
    began = time.monotonic()
    await q.run(timeout=0.1)
    assert keep.cancelled() and time.monotonic() - began < 10
    await q.shutdown()


async def test_detached_tasks_are_left_out_of_the_summary(kit: Kit) -> None:
    """A detached task runs and is kept in queue.results, but is left out of the run's summary."""
    q = AsyncQueue()
    hidden = q.submit(kit.echo, 1, detached=True, **kit.opts)
    q.submit(kit.echo, 2, **kit.opts)
    summary = await q.run()
    assert hidden.value() == 1 and hidden.result().detached
    assert summary.values == (2,) and len(q.results) == 2 and hidden.result() in q.results
    await q.shutdown()


async def test_labels_travel_to_the_result(kit: Kit) -> None:
    """name, group_id, metadata and priority are carried onto handle and result."""
    q = AsyncQueue()
    handle = q.submit(kit.echo, 1, name="job", group_id="g", metadata={"k": 1}, priority=7, **kit.opts)
    summary = await q.run()
    result = handle.result()
    assert (handle.name, handle.group_id, dict(handle.metadata or {})) == ("job", "g", {"k": 1})
    assert (result.name, result.group_id, result.priority) == ("job", "g", 7)
    assert summary.by_name()["job"] == (result,)
    assert summary.by_group()["g"] == (result,)
    assert summary.by_backend()[kit.backend] == (result,)
    assert summary.by_task_id()[handle.task_id] is result
    await q.shutdown()


async def test_map_spreads_tuples_and_dicts(kit: Kit) -> None:
    """map() passes a tuple as positional args, a dict as keyword args, anything else as one arg."""
    q = AsyncQueue()
    handles = q.map(kit.add, [(1, 2), {"a": 3, "b": 4}, 5], **kit.opts)
    await q.run(strict=True)
    assert [h.value() for h in handles] == [3, 7, 5]
    await q.shutdown()


async def test_group_values_and_failures(kit: Kit) -> None:
    """A group's values() come in input order; a failure raises ExecutionError."""
    q = AsyncQueue()
    good = q.group(kit.square, range(5), **kit.opts)
    bad = q.group([(kit.echo, 1), (kit.fail, "x")], group_id="mixed", **kit.opts)
    await q.run()
    assert await good.values() == (0, 1, 4, 9, 16)
    assert len(good) == 5 and all(h.group_id == good.group_id for h in good)
    with pytest.raises(osiiso.ExecutionError) as info:
        await bad.values()
    assert len(info.value.results) == 1
    summary = await bad.wait()
    assert [r.status for r in summary.results] == ["succeeded", "failed"]
    await q.shutdown()


async def test_as_completed_yields_every_handle(kit: Kit) -> None:
    """as_completed() yields each handle once, as it finishes."""
    async with AsyncQueue() as q:
        handles = [q.submit(kit.echo, i, **kit.opts) for i in range(6)]
        seen = [h async for h in osiiso.as_completed(handles)]
    assert sorted(h.value() for h in seen) == list(range(6))


async def test_exception_inside_a_task_never_hangs_the_run(kit: Kit) -> None:
    """KeyboardInterrupt or SystemExit raised inside a task fails that task only."""
    q = AsyncQueue()
    handles = [q.submit(kit.extra.get("raise_base", _raise_keyboard(kit)), **kit.opts) for _ in range(2)]
    ok = q.submit(kit.echo, 1, **kit.opts)
    summary = await q.run()
    assert summary.failed == 2 and ok.value() == 1
    assert isinstance(handles[0].exception(), KeyboardInterrupt)
    await q.shutdown()


def _raise_keyboard(kit: Kit) -> object:
    if kit.backend == "async":
        async def interrupt() -> None:
            raise KeyboardInterrupt

        return interrupt
    from .kit import s_interrupt

    return s_interrupt
