"""What a task ends with (`TaskResult`) and what a run reports (`RunSummary`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._errors import ExecutionError, TaskTimeoutError, describe_failures

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


class _ResultFields(NamedTuple):
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
    restored: bool


def _status(value: object) -> TaskStatus:
    if isinstance(value, str):
        try:
            return TaskStatus(value.strip().lower())
        except ValueError:
            pass
    raise ValueError(f"status must be one of {', '.join(repr(s.value) for s in TaskStatus)}, got {value!r}")


def _default_message(status: TaskStatus, exception: BaseException | None) -> str:
    if exception is None:
        return status.value
    if status is TaskStatus.FAILED:
        return f"failed: {type(exception).__name__}: {exception}"
    return str(exception) or status.value


class TaskResult(_ResultFields):
    """How one task ended: exactly one per task, whatever happened.

    Fields: ``task_id``, ``name``, ``status``, ``value`` (set when it succeeded),
    ``exception`` (when it failed or was cancelled), ``attempts``, ``backend``,
    ``priority``, ``group_id``, ``metadata``, ``detached``, ``must_complete``, ``message``
    (what happened, in words), ``created_at``, ``started_at``, ``finished_at`` (epoch
    seconds), ``duration`` (from the first attempt's start to the end; 0 for a task that
    never ran) and ``restored`` (true for an input whose value came back from a
    `osiiso.Checkpoint` instead of running: ``succeeded``, ``attempts == 0``).

    The queue builds them; tests and user code may too, with keywords: everything but
    ``task_id``, ``name`` and ``status`` has a default, a plain-string status such as
    ``"succeeded"`` becomes a `TaskStatus`, and a missing ``message`` is made from the status
    and the exception. Immutable; ``_replace(**changes)`` makes a changed copy.
    """

    __slots__ = ()

    def __new__(cls, task_id: str, name: str, status: TaskStatus | str, value: Any = None,
                exception: BaseException | None = None, attempts: int = 0, backend: str = "",
                priority: int = 3, group_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                detached: bool = False, must_complete: bool = False, message: str | None = None,
                created_at: float = 0.0, started_at: float | None = None, finished_at: float = 0.0,
                duration: float = 0.0, restored: bool = False) -> TaskResult:
        if status.__class__ is not TaskStatus:
            status = _status(status)
        if message is None:
            message = _default_message(status, exception)
        return tuple.__new__(cls, (task_id, name, status, value, exception, attempts, backend, priority,
                                   group_id, metadata, detached, must_complete, message, created_at,
                                   started_at, finished_at, duration, restored))

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

    ``timed_out`` says whether the run stopped at its time limit (``run(timeout=)`` or
    the queue's ``timeout``); ``timeouts`` counts the tasks whose last attempt hit its own
    ``timeout`` (they are also counted as failed). ``ok`` is true when nothing failed,
    nothing was cancelled and the run did not time out. The counts are of work done:
    results restored from a `osiiso.Checkpoint` are counted in ``restored`` alone, so
    ``succeeded + failed + cancelled == total_submitted`` and ``total_submitted + restored ==
    len(results)``; their values are still in ``values``.
    """

    results: tuple[TaskResult, ...]
    duration: float
    timed_out: bool = False
    total_submitted: int = field(init=False)
    succeeded: int = field(init=False)
    failed: int = field(init=False)
    cancelled: int = field(init=False)
    timeouts: int = field(init=False)
    restored: int = field(init=False)

    def __post_init__(self) -> None:
        counts = {TaskStatus.SUCCEEDED: 0, TaskStatus.FAILED: 0, TaskStatus.CANCELLED: 0}
        timeouts = restored = 0
        for result in self.results:
            if result.restored:
                restored += 1
                continue
            counts[result.status] += 1
            if isinstance(result.exception, TaskTimeoutError):
                timeouts += 1
        set_ = object.__setattr__
        set_(self, "total_submitted", len(self.results) - restored)
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
        return tuple(r.value for r in self.results if r.status is TaskStatus.SUCCEEDED)

    @property
    def errors(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that failed, in submission order (``r.name``, ``r.exception``…)."""
        return tuple(r for r in self.results if r.status is TaskStatus.FAILED)

    def successes(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that succeeded, in submission order."""
        return tuple(r for r in self.results if r.status is TaskStatus.SUCCEEDED)

    def cancellations(self) -> tuple[TaskResult, ...]:
        """The results of the tasks that were cancelled, in submission order."""
        return tuple(r for r in self.results if r.status is TaskStatus.CANCELLED)

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
            raise ExecutionError(bad, describe_failures(tuple(bad), self.total_submitted)) from bad[0].exception

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
            f"failed={self.failed}, cancelled={self.cancelled}, timeouts={self.timeouts}, "
            f"timed_out={self.timed_out}{restored}, duration={self.duration:.3f}s)"
        )
