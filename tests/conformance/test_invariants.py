"""Randomized mixes of tasks: every task ends with exactly one result and the counts add up."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from osiiso import AsyncQueue, TaskHandle, TaskResult
from osiiso._engine.invariants import check_invariants

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_mix_has_one_result_per_task(kit: Kit, seed: int, tmp_path: Path) -> None:
    """Succeeding, failing, slow, timing-out, retried, delayed, dependent and cancelled tasks: one result each."""
    rng = random.Random(seed)
    recorded: list[TaskResult] = []
    q = AsyncQueue(workers=8, on_complete=recorded.append)

    def check(_: object) -> None:
        check_invariants(q._engine)

    q._engine.on_start = check
    handles: list[TaskHandle[object]] = []
    to_cancel: list[TaskHandle[object]] = []
    n = 60 if kit.backend == "process" else 150
    for i in range(n):
        kind = rng.choice(["ok", "ok", "fail", "slow", "timeout", "flaky", "delay", "dep", "cancel"])
        opts = dict(kit.opts, priority=rng.randint(0, 4))
        if kind == "ok":
            h = q.submit(kit.echo, i, **opts)
        elif kind == "fail":
            h = q.submit(kit.fail, f"boom {i}", retries=rng.randint(0, 1), **opts)
        elif kind == "slow":
            h = q.submit(kit.slow, rng.uniform(0, 0.05), i, **opts)
        elif kind == "timeout":
            h = q.submit(kit.slow, 10, i, timeout=0.05, retries=rng.randint(0, 1), **opts)
        elif kind == "flaky":
            h = q.submit(kit.flaky, str(tmp_path / f"f{i}"), rng.randint(0, 2), retries=rng.randint(0, 2), **opts)
        elif kind == "delay":
            h = q.submit(kit.echo, i, delay=rng.uniform(0, 0.1), **opts)
        elif kind == "dep" and handles:
            h = q.submit(kit.echo, rng.choice(handles), **opts)
        else:
            h = q.submit(kit.slow, rng.uniform(0, 0.2), i, **opts)
            to_cancel.append(h)
        handles.append(h)

    async def canceller() -> None:
        for h in to_cancel:
            await anyio.sleep(rng.uniform(0, 0.01))
            h.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(canceller)
        summary = await q.run(timeout=45)
    check_invariants(q._engine)
    assert all(h.done() for h in handles)
    ids = [r.task_id for r in summary.results]
    assert len(ids) == len(set(ids))
    assert [r.task_id for r in recorded].count(handles[0].task_id) == 1
    assert len(recorded) == len(handles)
    in_summary = {r.task_id for r in summary.results}
    assert in_summary | {r.task_id for r in q.results} == {h.task_id for h in handles}
    assert summary.succeeded + summary.failed + summary.cancelled == summary.total_submitted
    assert q._engine.outstanding == 0
    await q.shutdown()
