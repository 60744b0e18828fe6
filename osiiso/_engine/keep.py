"""How many results a queue keeps (``AsyncQueue(keep_results=...)``): all, none, or the last N.

`Records.finish` appends every result to ``queue.results`` and to the run's results when the
queue keeps them all (``keep`` is None, the default: one test on the per-task path). A bound
sends the result here instead: the lists are trimmed to their last ``keep`` results once they
reach twice that (amortised constant time per result, at most ``2 * keep`` results held), and
the run counts what it let go in its `osiiso._results.ResultTally`, so its summary's counts
stay those of every task. `kept` reads the last ``keep`` of a list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._results import TaskResult
    from .run import Run

__all__ = ("keep_bounded", "kept")


def keep_bounded(results: list[TaskResult], run: Run | None, result: TaskResult, detached: bool, keep: int) -> None:
    """Record ``result`` in ``results`` (``queue.results``) and ``run``'s, keeping about ``keep`` of each."""
    if keep == 0:
        if run is not None and not detached:
            run.not_kept.add(result)
        return
    results.append(result)
    if len(results) >= 2 * keep:
        del results[:-keep]
    if run is not None and not detached:
        mine = run.results
        mine.append(result)
        if len(mine) >= 2 * keep:
            let_go = len(mine) - keep
            tally = run.not_kept
            for old in mine[:let_go]:
                tally.add(old)
            del mine[:let_go]


def kept(results: list[TaskResult], keep: int | None) -> list[TaskResult]:
    """The results a bounded list shows: its last ``keep`` (all of them without a bound)."""
    if keep is None or len(results) <= keep:
        return results
    return results[len(results) - keep:]
