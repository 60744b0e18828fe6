"""What a task ends with (`TaskResult`) and what a run reports (`RunSummary`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._errors import ExecutionError, TaskTimeoutError

__all__ = ("RunSummary", "TaskResult", "TaskStatus")


class TaskStatus(str, enum.Enum):
    """A task's state. Members compare equal to (and format as) their plain strings."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)

    @property
    def finished(self) -> bool:
        """Whether this is a final state."""
        return self in _FINAL


_FINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class TaskResult(NamedTuple):
    """How one task ended: exactly one per task, whatever happened.

    ``value`` is set when it succeeded, ``exception`` when it failed or was cancelled;
    ``message`` says what happened in words. Times are epoch seconds; ``duration`` is
    the time from the first attempt's start to the end (0 for a task that never ran).
    ``restored`` is true for an input whose value came back from a `osiiso.Checkpoint`
    instead of running (``succeeded``, ``attempts == 0``).
    Immutable; ``_replace(**changes)`` makes a changed copy.
    """

    task_id: str
    name: str
    status: TaskStatus
    value: Any
    exception: BaseException | None
    attempts: int
    backend: str
    priority: int
    group_id: str | None
    metadata: Mapping[str, Any] | None
    detached: bool
    must_complete: bool
    message: str
    created_at: float
    started_at: float | None
    finished_at: float
    duration: float
    restored: bool = False

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status is TaskStatus.SUCCEEDED

    def __repr__(self) -> str:
        return f"<TaskResult {self.task_id} {self.name!r} {self.status.value}: {self.message}>"


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

    ``timed_out`` counts tasks whose last attempt hit its ``timeout`` (they are also
    counted as failed). ``ok`` is true when nothing failed and nothing was cancelled.
    The counts are of work done: results restored from a `osiiso.Checkpoint` are counted
    in ``restored`` alone, so ``succeeded + failed + cancelled == total_submitted`` and
    ``total_submitted + restored == len(results)``; their values are still in ``values``.
    """

    results: tuple[TaskResult, ...]
    duration: float
    total_submitted: int = field(init=False)
    succeeded: int = field(init=False)
    failed: int = field(init=False)
    cancelled: int = field(init=False)
    timed_out: int = field(init=False)
    restored: int = field(init=False)

    def __post_init__(self) -> None:
        counts = {TaskStatus.SUCCEEDED: 0, TaskStatus.FAILED: 0, TaskStatus.CANCELLED: 0}
        timed_out = restored = 0
        for result in self.results:
            if result.restored:
                restored += 1
                continue
            counts[result.status] += 1
            if isinstance(result.exception, TaskTimeoutError):
                timed_out += 1
        set_ = object.__setattr__
        set_(self, "total_submitted", len(self.results) - restored)
        set_(self, "restored", restored)
        set_(self, "succeeded", counts[TaskStatus.SUCCEEDED])
        set_(self, "failed", counts[TaskStatus.FAILED])
        set_(self, "cancelled", counts[TaskStatus.CANCELLED])
        set_(self, "timed_out", timed_out)

    @property
    def ok(self) -> bool:
        """True when every task succeeded."""
        return self.failed == 0 and self.cancelled == 0

    @property
    def values(self) -> tuple[Any, ...]:
        """The values of the tasks that succeeded, in submission order."""
        return tuple(r.value for r in self.results if r.status is TaskStatus.SUCCEEDED)

    @property
    def errors(self) -> tuple[BaseException, ...]:
        """The exceptions of the tasks that failed, in submission order."""
        return tuple(r.exception for r in self.results if r.status is TaskStatus.FAILED and r.exception)

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
            if r.status is TaskStatus.FAILED or (include_cancelled and r.status is TaskStatus.CANCELLED)
        ]
        if bad:
            first = bad[0]
            raise ExecutionError(
                f"{len(bad)} of {self.total_submitted} tasks did not succeed; first: "
                f"{first.name!r} ({first.task_id}) {first.message}",
                bad,
            ) from first.exception

    def display(self, *, file: Any = None, limit: int = 20) -> None:
        """Print a readable report: counts, then the tasks that did not succeed.

        Uses a rich table when rich is installed, plain text otherwise.
        """
        from ._display import print_summary

        print_summary(self, file=file, limit=limit)

    def __repr__(self) -> str:
        restored = f", restored={self.restored}" if self.restored else ""
        return (
            f"RunSummary(total={self.total_submitted}, succeeded={self.succeeded}, "
            f"failed={self.failed}, cancelled={self.cancelled}, timed_out={self.timed_out}{restored}, "
            f"duration={self.duration:.3f}s)"
        )
