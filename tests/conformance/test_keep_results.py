"""Conformance: a queue's ``keep_results`` bound — handles and hooks see every result, summaries count every task."""

from __future__ import annotations

import io

import anyio
import pytest

import osiiso
from osiiso import AsyncQueue

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

N = 12


async def _fill(q: AsyncQueue, kit: Kit) -> list[osiiso.TaskHandle[object]]:
    """N tasks, every third one failing; a detached echo besides."""
    handles = [q.submit(kit.fail, f"no {i}", **kit.opts) if i % 3 == 0 else q.submit(kit.echo, i, **kit.opts)
               for i in range(N)]
    handles.append(q.submit(kit.echo, "detached", detached=True, **kit.opts))
    return handles


@pytest.mark.parametrize("keep", [False, 0, 3])
async def test_a_bounded_queue_keeps_the_last_results_and_counts_them_all(kit: Kit, keep: int) -> None:
    """keep_results=N keeps the N most recent results (none for False/0); handles, hooks and counts see all."""
    seen: list[osiiso.TaskResult] = []
    q = AsyncQueue(keep_results=keep, on_complete=seen.append)
    handles = await _fill(q, kit)
    summary = await q.run()
    assert [h.done() for h in handles] == [True] * (N + 1)
    assert [h.value() for h in handles if h.status == "succeeded"] == [i for i in range(N) if i % 3] + ["detached"]
    assert len(seen) == N + 1
    assert (summary.total_submitted, summary.succeeded, summary.failed, summary.cancelled) == (N, 8, 4, 0)
    assert summary.dropped == N - keep
    assert len(summary.results) == keep
    last = [r.task_id for r in seen if not r.detached][N - keep:]  # the most recent, in finishing order
    assert sorted(r.task_id for r in summary.results) == sorted(last)
    assert [r.task_id for r in summary.results] == sorted(last, key=lambda t: int(t[5:]))  # submission order
    assert len(q.results) == keep  # queue.results: the detached task counts there
    assert {r.task_id for r in q.results} <= {r.task_id for r in seen}
    assert f"dropped={N - keep}" in repr(summary)
    out = io.StringIO()
    summary.display(file=out)
    assert f"{N - keep} results not kept (keep_results)" in out.getvalue()


async def test_an_unbounded_queue_keeps_everything(kit: Kit) -> None:
    """keep_results=True (the default) keeps every result, and nothing is dropped."""
    q = AsyncQueue()
    await _fill(q, kit)
    summary = await q.run()
    assert (len(summary.results), summary.dropped, len(q.results)) == (N, 0, N + 1)
    assert "dropped" not in repr(summary)


async def test_a_bounded_infinite_service_stays_bounded_and_clear_results_resets_the_count(kit: Kit) -> None:
    """In mode='infinite' the bound holds while serving; clear_results() also forgets what was dropped."""
    q = AsyncQueue(mode="infinite", keep_results=2)
    box: list[osiiso.RunSummary] = []

    async def serve() -> None:
        box.append(await q.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await q.start()
        for batch in range(3):
            for handle in [q.submit(kit.echo, (batch, i), **kit.opts) for i in range(5)]:
                await handle
            assert len(q.results) == 2
            if batch == 0:
                q.clear_results()
        await q.shutdown()
    summary = box[0]
    assert (summary.total_submitted, summary.succeeded, summary.dropped, len(summary.results)) == (10, 10, 8, 2)
    assert [v[0] for v in summary.values] == [2, 2]  # the most recent
