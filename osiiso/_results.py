"""What a run reports (`RunSummary`); also where `TaskResult` and `TaskStatus` are imported from.

The two types of one task's outcome live in the leaf module `osiiso._result`; they are
re-exported here, so ``from osiiso._results import TaskResult`` keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from operator import attrgetter, countOf
from pathlib import Path
from typing import Any

from ._errors import ExecutionError, TaskTimeoutError, describe_failures
from ._result import _CANCELLED, _FAILED, _SUCCEEDED
from ._result import AttemptTiming as AttemptTiming
from ._result import TaskResult as TaskResult
from ._result import TaskStatus as TaskStatus

_RESTORED, _STATUS = attrgetter("restored"), attrgetter("status")

__all__ = ("AttemptTiming", "RunSummary", "TaskResult", "TaskStatus")


def _group(results: tuple[TaskResult, ...], key: str) -> dict[str, tuple[TaskResult, ...]]:
    groups: dict[str, list[TaskResult]] = {}
    for result in results:
        value = getattr(result, key)
        if value is not None:
            groups.setdefault(value, []).append(result)
    return {k: tuple(v) for k, v in groups.items()}


@dataclass(frozen=True)
class RunSummary:
    """What a run (or a group) produced: its results in submission order, and counts.

    ``timed_out`` says whether the run stopped at its time limit (``run(timeout=)`` or
    the queue's ``timeout``); ``timeouts`` counts the tasks whose last attempt hit its own
    ``timeout`` (they are also counted as failed). ``ok`` is true when nothing failed,
    nothing was cancelled and the run did not time out. The counts are of work done:
    results restored from a `osiiso.Checkpoint` are counted in ``restored`` alone, so
    ``succeeded + failed + cancelled == total_submitted`` and ``total_submitted + restored ==
    len(results) + dropped``; their values are still in ``values``.

    ``dropped`` is 0 unless the queue bounds what it keeps (``AsyncQueue(keep_results=n)``):
    then ``results`` (and ``values``, ``errors``… which read it) hold the ``n`` newest results
    of the run, while the counts cover every task it ran, ``dropped`` of them no longer held.
    ``earlier`` (constructor only) gives the counts ``(succeeded, failed, cancelled,
    timeouts, restored)`` of those dropped results, and ``earlier_backends`` (constructor
    only) their report's figures per backend (attempts, retries, time waiting and running…),
    kept as ``dropped_backends`` so that the report (`display`, `to_dict`) covers every task.
    """

    results: tuple[TaskResult, ...]
    duration: float
    timed_out: bool = False
    earlier: InitVar[tuple[int, int, int, int, int] | None] = None
    earlier_backends: InitVar[Mapping[str, Mapping[str, Any]] | None] = None
    total_submitted: int = field(init=False)
    succeeded: int = field(init=False)
    failed: int = field(init=False)
    cancelled: int = field(init=False)
    timeouts: int = field(init=False)
    restored: int = field(init=False)
    dropped: int = field(init=False)
    dropped_backends: Mapping[str, Mapping[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self, earlier: tuple[int, int, int, int, int] | None,
                      earlier_backends: Mapping[str, Mapping[str, Any]] | None) -> None:
        counts = {TaskStatus.SUCCEEDED: 0, TaskStatus.FAILED: 0, TaskStatus.CANCELLED: 0}
        timeouts = restored = dropped = 0
        if earlier is not None:  # results the queue did not keep (keep_results): counted, not held
            succeeded, failed, cancelled, timeouts, restored = earlier
            counts = {TaskStatus.SUCCEEDED: succeeded, TaskStatus.FAILED: failed, TaskStatus.CANCELLED: cancelled}
            dropped = succeeded + failed + cancelled + restored
        results = self.results
        # counted in C (list.count compares by identity first), not with a Python loop per result
        restored_here = countOf(map(_RESTORED, results), True)
        restored += restored_here
        statuses = list(map(_STATUS, results))
        if restored_here:  # a restored result succeeded without running: not counted as succeeded
            statuses = [s for s, r in zip(statuses, results, strict=True) if not r.restored]
        ran_ok = statuses.count(TaskStatus.SUCCEEDED)
        counts[TaskStatus.SUCCEEDED] += ran_ok
        if ran_ok != len(statuses):  # not all succeeded: the others, and which of them timed out
            counts[TaskStatus.FAILED] += statuses.count(TaskStatus.FAILED)
            counts[TaskStatus.CANCELLED] += statuses.count(TaskStatus.CANCELLED)
            timeouts += sum(1 for r in results if not r.restored and isinstance(r.exception, TaskTimeoutError))
        set_ = object.__setattr__
        set_(self, "total_submitted", len(self.results) + dropped - restored)
        set_(self, "dropped", dropped)
        set_(self, "dropped_backends", {name: dict(figures) for name, figures in (earlier_backends or {}).items()})
        set_(self, "restored", restored)
        set_(self, "succeeded", counts[TaskStatus.SUCCEEDED])
        set_(self, "failed", counts[TaskStatus.FAILED])
        set_(self, "cancelled", counts[TaskStatus.CANCELLED])
        set_(self, "timeouts", timeouts)

    @property
    def ok(self) -> bool:
        """True when every task succeeded and the run did not stop at its time limit."""
        return self.failed == 0 and self.cancelled == 0 and not self.timed_out

    @property
    def values(self) -> tuple[Any, ...]:
        """The values of the tasks that succeeded, in submission order."""
        return tuple(r.value for r in self.results if r.status is _SUCCEEDED)

    @property
    def errors(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that failed, in submission order (``r.name``, ``r.exception``…)."""
        return tuple(r for r in self.results if r.status is _FAILED)

    def successes(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that succeeded, in submission order."""
        return tuple(r for r in self.results if r.status is _SUCCEEDED)

    def cancellations(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that were cancelled, in submission order."""
        return tuple(r for r in self.results if r.status is _CANCELLED)

    def by_task_id(self) -> dict[str, TaskResult]:
        """Results keyed by task id."""
        return {r.task_id: r for r in self.results}

    def by_name(self) -> dict[str, tuple[TaskResult, ...]]:
        """Results grouped by task name."""
        return _group(self.results, "name")

    def by_group(self) -> dict[str, tuple[TaskResult, ...]]:
        """Results grouped by ``group_id`` (tasks without one are left out)."""
        return _group(self.results, "group_id")

    def by_backend(self) -> dict[str, tuple[TaskResult, ...]]:
        """Results grouped by the backend that ran them."""
        return _group(self.results, "backend")

    def raise_for_errors(self, include_cancelled: bool = False) -> None:
        """Raise `ExecutionError` if a task failed (or, optionally, was cancelled)."""
        bad = [
            r for r in self.results
            if r.status is _FAILED or (include_cancelled and r.status is _CANCELLED)
        ]
        if bad:
            raise ExecutionError(bad, describe_failures(tuple(bad), self.total_submitted)) from bad[0].exception

    def display(self, *, file: Any = None, limit: int = 20) -> None:
        """Print a readable report: counts, retries and timeouts per backend, the time attempts
        spent waiting and running, the slowest tasks, then those that did not succeed (with
        their messages; at most ``limit`` of each).

        Uses rich tables when rich is installed, plain text otherwise.
        """
        from ._display import print_summary

        print_summary(self, file=file, limit=limit)

    def timeline(self, path: str | os.PathLike[str], *, title: str = "osiiso run") -> Path:
        """Write the task-stream page of this run to ``path`` (one HTML file) and return its path.

        Every attempt is a bar on the row of the worker that ran it, rows grouped by backend,
        coloured by outcome, retries marked, with a tooltip per attempt (name, task id,
        duration, message). The file is self-contained (no network) and stays usable with
        100,000 tasks. See the "Watching a run" guide.
        """
        from ._timeline import write_timeline

        return write_timeline(self.results, path, title=title)

    def to_dict(self, *, results: bool = True, limit: int = 20) -> dict[str, Any]:
        """The run as JSON-safe data (schema ``"osiiso.run-summary/1"``, in the results reference):
        totals, per-backend figures, the ``limit`` slowest tasks and failures, and, with
        ``results``, every result with its timings. Values that are not JSON scalars, and
        exceptions, are rendered as strings (``repr``; the type name and message)."""
        from ._report import summary_dict

        return summary_dict(self, limit=limit, results=results)

    def to_json(self, *, results: bool = True, limit: int = 20, indent: int | None = None) -> str:
        """`to_dict` as a JSON string (``json.loads`` gives the same dict back)."""
        import json

        return json.dumps(self.to_dict(results=results, limit=limit), indent=indent, allow_nan=False)

    def __repr__(self) -> str:
        restored = f", restored={self.restored}" if self.restored else ""
        if self.dropped:
            restored += f", dropped={self.dropped}"
        return (
            f"RunSummary(total={self.total_submitted}, succeeded={self.succeeded}, "
            f"failed={self.failed}, cancelled={self.cancelled}, timeouts={self.timeouts}, "
            f"timed_out={self.timed_out}{restored}, duration={self.duration:.3f}s)"
        )
