"""Where osiiso 1.x (the original) and this package once disagreed, behave as the original (issue 11).

Each test states the original's behaviour in its docstring; scripts written for the original
rely on it.
"""

from __future__ import annotations

import io

import anyio
import pytest

import osiiso
from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _sleep(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "slept"


# -- RunSummary.timed_out -------------------------------------------------------------------
async def test_timed_out_is_true_when_the_run_stops_at_its_limit() -> None:
    """Original: ``RunSummary.timed_out`` is a bool, true when run(timeout=) cut the run short; ok is false."""
    q = AsyncQueue()
    q.submit(_sleep, 20)
    summary = await q.run(timeout=0.05)
    assert summary.timed_out is True and summary.ok is False
    assert summary.cancelled == 1 and summary.timeouts == 0
    await q.shutdown()


async def test_timed_out_follows_the_queue_timeout() -> None:
    """Original: the queue's ``timeout`` is the default run limit, and hitting it sets timed_out."""
    q = AsyncQueue(timeout=0.05)
    q.submit(_sleep, 20)
    summary = await q.run()
    assert summary.timed_out is True and not summary.ok
    await q.shutdown()


async def test_timed_out_even_when_only_must_complete_tasks_were_left() -> None:
    """Original: a run that hit its limit is not ok, even if the must_complete tasks it waited for succeeded."""
    q = AsyncQueue()
    keep = q.submit(_sleep, 0.3, must_complete=True)
    summary = await q.run(timeout=0.05)
    assert keep.value() == "slept"
    assert summary.succeeded == 1 and summary.failed == summary.cancelled == 0
    assert summary.timed_out is True and summary.ok is False
    await q.shutdown()


async def test_a_run_that_ends_in_time_did_not_time_out() -> None:
    """Original: timed_out is False when the work ended before the limit; attempt timeouts count in ``timeouts``."""
    q = AsyncQueue()
    q.submit(_sleep, 20, timeout=0.05)
    q.submit(_sleep, 0)
    summary = await q.run(timeout=10)
    assert summary.timed_out is False and summary.timeouts == 1 and summary.failed == 1
    await q.shutdown()


async def test_display_shows_the_run_timeout_and_the_attempt_timeouts() -> None:
    """display() reports both whether the run timed out and how many attempts hit their own timeout."""
    from osiiso._display import summary_lines

    q = AsyncQueue()
    q.submit(_sleep, 20, timeout=0.01)
    q.submit(_sleep, 20)
    summary = await q.run(timeout=0.2)
    text = "\n".join(summary_lines(summary))
    assert "timeouts 1" in text and "run timed out: yes" in text
    out = io.StringIO()
    summary.display(file=out)
    assert "timeouts" in out.getvalue() and "timed out" in out.getvalue()
    await q.shutdown()


# -- RunSummary.errors, successes(), cancellations() ----------------------------------------
async def _now(value: str) -> str:
    return value


async def _fail(message: str) -> None:
    raise ValueError(message)


async def test_errors_are_the_failed_results() -> None:
    """Original: ``summary.errors`` holds the failed TaskResults, so ``r.name`` and ``r.message`` work."""
    q = AsyncQueue()
    q.submit(_fail, "broken", name="bad")
    q.submit(_sleep, 0, name="good")
    summary = await q.run()
    (error,) = summary.errors
    assert isinstance(error, osiiso.TaskResult)
    assert error.name == "bad" and "broken" in error.message and isinstance(error.exception, ValueError)
    await q.shutdown()


async def test_successes_and_cancellations_list_results_by_status() -> None:
    """Original: ``successes()`` and ``cancellations()`` give the succeeded and the cancelled results."""
    q = AsyncQueue()
    ok = q.submit(_now, "done")
    gone = q.submit(_sleep, 20)
    q.submit(_fail, ok)  # fails once ``ok`` has succeeded (it takes ok's value)
    summary = await q.run(fail_policy="fail_first")
    assert [r.task_id for r in summary.successes()] == [ok.task_id]
    assert [r.task_id for r in summary.cancellations()] == [gone.task_id]
    await q.shutdown()


# -- queue.results --------------------------------------------------------------------------
async def test_queue_results_include_detached_tasks() -> None:
    """Original: ``queue.results`` holds every result since clear_results()/reset(), detached ones too;
    the run's summary still leaves detached tasks out."""
    q = AsyncQueue()
    hidden = q.submit(_now, "hidden", detached=True)
    q.submit(_now, "shown")
    summary = await q.run()
    assert summary.values == ("shown",)
    by_value = {r.value: r for r in q.results}  # in completion order, which the loop decides
    assert len(q.results) == 2 and set(by_value) == {"hidden", "shown"}
    assert by_value["hidden"] is hidden.result() and by_value["hidden"].detached
    q.clear_results()
    assert q.results == ()
    await q.shutdown()


# -- ExecutionError(results) ----------------------------------------------------------------
async def test_execution_error_takes_the_results_first() -> None:
    """Original: ``ExecutionError(results)`` takes the results, keeps them in ``exc.results``, words its message."""
    import pickle

    q = AsyncQueue()
    q.submit(_fail, "broken", name="bad")
    q.submit(_sleep, 20, name="slow")
    summary = await q.run(fail_policy="fail_first")
    bad = summary.errors + summary.cancellations()
    exc = osiiso.ExecutionError(bad)
    assert exc.results == bad
    assert str(exc).startswith("2 tasks did not succeed (1 failed, 1 cancelled); first: 'bad'")
    assert "broken" in str(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and [r.task_id for r in again.results] == [r.task_id for r in bad]
    assert str(osiiso.ExecutionError(bad, "my words")) == "my words"
    with pytest.raises(TypeError, match="results first"):
        osiiso.ExecutionError("a message", bad)  # type: ignore[arg-type]
    with pytest.raises(osiiso.ExecutionError) as info:
        summary.raise_for_errors(include_cancelled=True)
    assert info.value.results == bad and str(info.value).startswith("2 of 2 tasks did not succeed")
    await q.shutdown()


# -- amap / tmap / pmap ---------------------------------------------------------------------
async def _async_double(x: int) -> int:
    return 2 * x


def _double(x: int) -> int:
    return 2 * x


async def test_amap_returns_a_tuple() -> None:
    """Original: ``await amap(...)`` returns a tuple of values in input order, like group.values()."""
    assert await osiiso.amap(_async_double, range(4), workers=2) == (0, 2, 4, 6)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tmap_and_pmap_return_tuples_and_take_rate_and_context(anyio_backend: str) -> None:
    """Original: ``tmap``/``pmap`` return tuples, and accept the queue's ``rate``/``burst`` and pmap's ``context``."""
    def both() -> tuple[object, object]:
        return (osiiso.tmap(_double, range(3), workers=2, rate=1000, burst=3),
                osiiso.pmap(_double, range(3), processes=1, context="spawn"))

    threads, processes = await anyio.to_thread.run_sync(both)
    assert threads == (0, 2, 4) and processes == (0, 2, 4)


# -- TaskResult built by hand -----------------------------------------------------------------
def test_task_result_is_built_with_keywords_and_defaults() -> None:
    """Original: a TaskResult is built with keywords; everything but task_id, name and status has a default."""
    result = osiiso.TaskResult(task_id="t1", name="load", status=osiiso.TaskStatus.SUCCEEDED, value=42)
    assert result.value == 42 and result.exception is None and result.attempts == 0
    assert result.ok and result.message == "succeeded" and result.started_at is None
    failed = osiiso.TaskResult(task_id="t2", name="load", status="failed", exception=ValueError("bad row"))
    assert failed.message == "failed: ValueError: bad row" and not failed.ok
    summary = osiiso.RunSummary((result, failed), 0.1)
    assert summary.succeeded == 1 and summary.errors == (failed,)


@pytest.mark.parametrize("text", ["succeeded", "SUCCEEDED", " Succeeded "])
def test_a_plain_string_status_is_normalised(text: str) -> None:
    """Original: status is a plain string there; here a string given is normalised to a TaskStatus."""
    result = osiiso.TaskResult(task_id="t1", name="n", status=text)
    assert result.status is osiiso.TaskStatus.SUCCEEDED and result.status == "succeeded"
    assert result._replace(value=1).status is osiiso.TaskStatus.SUCCEEDED


def test_an_unknown_status_is_a_value_error() -> None:
    """A status that is no TaskStatus value is rejected, naming the allowed ones."""
    with pytest.raises(ValueError, match="'succeeded'"):
        osiiso.TaskResult(task_id="t1", name="n", status="done")


def test_a_task_result_pickles() -> None:
    """A hand-built TaskResult survives pickling unchanged."""
    import pickle

    result = osiiso.TaskResult(task_id="t1", name="n", status="cancelled", metadata={"k": 1})
    assert pickle.loads(pickle.dumps(result)) == result


# -- handle.priority --------------------------------------------------------------------------
def test_a_handle_tells_its_priority() -> None:
    """Original: ``handle.priority`` is the task's priority option."""
    q = AsyncQueue()
    assert q.submit(_now, "x", priority=0).priority == 0
    assert q.submit(_now, "y").priority == 3
    q.cancel()


# -- queue.cancel() is a forced stop ----------------------------------------------------------
def _spin() -> None:
    import time

    while not osiiso.cancelled():
        time.sleep(0.005)


async def test_cancel_from_another_thread_stops_the_queue_as_a_forced_shutdown() -> None:
    """Original: ``q.cancel()`` shuts the queue down by force from any thread: closed, pools released."""
    started = anyio.Event()
    q = AsyncQueue(on_start=lambda h: started.set())
    spinning = q.submit(_spin, backend="thread", must_complete=True)
    waiting = q.submit(_sleep, 20, priority=9)

    async def stopper() -> None:
        await started.wait()
        await anyio.to_thread.run_sync(q.cancel)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stopper)
        summary = await q.run()
    assert spinning.cancelled() and waiting.cancelled() and summary.cancelled == 2
    assert q.closed
    with pytest.raises(osiiso.ClosedError):
        q.submit(_now, "late")
    assert q.stats["thread"]["threads_live"] == 0  # the run returned after the pool was released
    await q.shutdown()  # already done: returns at once
    q.reset()
    assert (await q.run()).total_submitted == 0 and not q.closed


def test_cancel_before_the_queue_ever_ran_closes_it() -> None:
    """Original: cancel() on a queue that never started cancels what was submitted and closes it."""
    q = AsyncQueue()
    handle = q.submit(_now, "x")
    q.cancel()
    assert handle.cancelled() and q.closed
    with pytest.raises(osiiso.ClosedError):
        q.submit(_now, "y")


# -- iter_completed -------------------------------------------------------------------------
def test_iter_completed_yields_blocking_handles_as_they_end() -> None:
    """Original: ``osiiso.iter_completed(handles, timeout=None)`` yields a blocking queue's handles by completion."""
    import time

    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    with osiiso.ThreadQueue(workers=2) as q:
        handles = [q.submit(nap, 0.2), q.submit(nap, 0.0)]
        assert [h.value() for h in osiiso.iter_completed(handles, timeout=10)] == [0.0, 0.2]
