"""Conformance: ``run(progress=fn)`` reports the same counts on every backend and event loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiiso import AsyncQueue, ProgressSnapshot

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_progress_snapshots_count_the_run_per_backend(kit: Kit, tmp_path: Path) -> None:
    """Snapshots grow monotonically and the final one counts every result, failure, cancel and retry."""
    seen: list[ProgressSnapshot] = []
    q = AsyncQueue(workers=4)
    for i in range(6):
        q.submit(kit.square, i, **kit.opts)
    for i in range(2):
        q.submit(kit.fail, f"no {i}", **kit.opts)
    q.submit(kit.flaky, str(tmp_path / "flaky"), 1, retries=1, **kit.opts)
    slow = q.submit(kit.slow, 30, **kit.opts)

    def watch(snapshot: ProgressSnapshot) -> None:
        seen.append(snapshot)
        slow.cancel()  # during the run: it ends cancelled, counted by this run

    summary = await q.run(progress=watch)
    await q.shutdown()
    assert seen and seen[-1].final and not any(s.final for s in seen[:-1])
    final = seen[-1]
    row = final.backends[kit.backend]
    assert list(final.backends) == [kit.backend]
    assert (row.total, row.done, row.failed, row.cancelled, row.retrying, row.running, row.queued) == \
        (10, 10, 2, 1, 0, 0, 0)
    assert (final.total, final.done, final.failed, final.cancelled) == (10, 10, 2, 1)
    assert row.succeeded == summary.succeeded == 7 and summary.cancelled == 1 and final.eta == 0.0
    for before, after in zip(seen, seen[1:]):
        assert before.done <= after.done <= after.total and before.elapsed <= after.elapsed
