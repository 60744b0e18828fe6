"""Conformance: ``keep_results`` bounds what a queue holds, never what it counts or delivers."""

from __future__ import annotations

import pytest

import osiiso
from osiiso import AsyncQueue

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.mark.parametrize("keep", [False, 0, 3])
async def test_a_bounded_queue_counts_every_task_and_holds_the_newest(kit: Kit, keep: int) -> None:
    """The summary counts all 12 tasks; results holds the newest `keep`; handles and hooks see every result."""
    seen: list[osiiso.TaskResult] = []
    q = AsyncQueue(keep_results=keep, on_complete=seen.append)
    handles = [q.submit(kit.echo, i, **kit.opts) for i in range(9)]
    handles += [q.submit(kit.fail, f"no {i}", retries=0, **kit.opts) for i in range(3)]
    summary = await q.run()
    assert (summary.total_submitted, summary.succeeded, summary.failed) == (12, 9, 3)
    assert summary.dropped == 12 - keep
    assert len(summary.results) == len(q.results) == keep
    assert summary.total_submitted + summary.restored == len(summary.results) + summary.dropped
    assert not summary.ok
    assert [h.value() for h in handles[:9]] == list(range(9))
    assert all(h.result().status == "failed" for h in handles[9:])
    assert len(seen) == 12
    assert "dropped=" in repr(summary)


async def test_clear_results_on_a_bounded_queue_restarts_its_counts(kit: Kit) -> None:
    """After clear_results() a bounded queue's next summary counts only what came after."""
    q = AsyncQueue(keep_results=2)
    for i in range(5):
        q.submit(kit.echo, i, **kit.opts)
    first = await q.run()
    assert (first.total_submitted, first.dropped, len(first.values)) == (5, 3, 2)  # the last two to finish
    assert set(first.values) <= set(range(5))
    q.clear_results()
    assert q.results == ()
    q.submit(kit.echo, 9, **kit.opts)
    second = await q.run()
    assert (second.total_submitted, second.dropped, second.values) == (1, 0, (9,))


async def test_the_default_keeps_every_result(kit: Kit) -> None:
    """keep_results=True (the default) keeps all of them and drops none."""
    q = AsyncQueue()
    for i in range(5):
        q.submit(kit.echo, i, **kit.opts)
    summary = await q.run()
    assert (len(summary.results), summary.dropped, len(q.results)) == (5, 0, 5)


@pytest.mark.parametrize("bad", [-1, 2.5, "all", None])
def test_a_bad_keep_results_names_the_choices(bad: object) -> None:
    """keep_results accepts True, False or an int >= 0, and says so."""
    with pytest.raises(ValueError, match=r"keep_results must be True .* got " + repr(bad).replace(".", r"\.")):
        AsyncQueue(keep_results=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_results"):
        osiiso.Queue(keep_results=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("keep", "clear_after", "kept"), [
    (True, None, 5),
    (3, None, 3),  # the three that ended last
    (True, 2, 3),  # clear_results() after the first two ended
])
async def test_a_summary_lists_tasks_in_submission_order_whatever_order_they_end_in(
        kit: Kit, keep: bool | int, clear_after: int | None, kept: int) -> None:
    """Tasks that end out of order come back in submission order, bounded, and after a clear_results() mid-run.

    One worker starts them in priority order. Which ended last is read from ``on_complete``:
    results of one process batch reach the loop together, and trio wakes their tasks in an
    order of its own.
    """
    started: list[str] = []
    ended: list[str] = []

    def on_complete(result: osiiso.TaskResult) -> None:
        ended.append(result.task_id)
        if len(ended) == clear_after:
            q.clear_results()

    q = AsyncQueue(workers=1, keep_results=keep, on_complete=on_complete,
                   on_start=lambda handle: started.append(handle.task_id))
    for i, priority in enumerate([5, 1, 5, 0, 1]):  # one worker starts them as 4, 2, 5, 1, 3
        q.submit(kit.echo, i, priority=priority, **kit.opts)
    summary = await q.run()
    assert started == ["task-4", "task-2", "task-5", "task-1", "task-3"]
    assert sorted(ended) == sorted(started)
    expected = sorted(int(task_id.split("-")[1]) for task_id in ended[-kept:])
    assert [r.task_id for r in summary.results] == [f"task-{n}" for n in expected]
    assert summary.values == tuple(n - 1 for n in expected)
    await q.shutdown()
