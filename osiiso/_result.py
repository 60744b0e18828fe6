"""One task's outcome: `TaskStatus` (its state) and `TaskResult` (how it ended).

A leaf of the package: it imports nothing from osiiso, so the errors (which carry
results), the handles, the engine and the printed report can all name these types.
`osiiso._results` re-exports both next to `RunSummary`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

__all__ = ("AttemptTiming", "TaskResult", "TaskStatus")


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
# the statuses read per task or per result, for the modules that build and read results: a member
# read from the class costs ~0.1 µs on Python 3.11
_PENDING, _SUCCEEDED, _FAILED, _CANCELLED = (
    TaskStatus.PENDING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class AttemptTiming(NamedTuple):
    """When one attempt of a task waited, ran and ended (epoch seconds).

    ``number`` counts from 1. ``queued_at`` is when the attempt became ready to run (the
    task's admission for the first attempt — or the end of its delay or dependencies — and
    the end of the retry delay for later ones); ``started_at`` is when a worker really began
    it (``None`` for an attempt cancelled before it began); ``finished_at`` is when its
    outcome was known. ``outcome`` is one of ``"ok"``, ``"error"``, ``"timeout"``,
    ``"cancelled"``, ``"crashed"`` (its worker process died); ``worker`` names where it ran:
    ``"async"``, ``"thread/N"`` (the pool thread ``osiiso-thread-N``), ``"process/N"`` (the
    process pool's slot ``N``, from 0, kept when its process is replaced), ``"dask"`` or
    ``"dask/<worker address>"`` when known, ``""`` if it never began. ``message`` says what
    happened, in words.
    """

    number: int
    queued_at: float
    started_at: float | None
    finished_at: float
    outcome: str
    worker: str = ""
    message: str = ""

    @property
    def waited(self) -> float:
        """Seconds from ready to started (to finished, if it never started)."""
        start = self.started_at if self.started_at is not None else self.finished_at
        return max(0.0, start - self.queued_at)

    @property
    def ran(self) -> float:
        """Seconds from started to finished; 0 if it never started."""
        return 0.0 if self.started_at is None else max(0.0, self.finished_at - self.started_at)


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
    timings: tuple[AttemptTiming, ...]


_timing = tuple.__new__


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


def pack_timings(timings: Sequence[Any]) -> tuple[Any, ...]:
    """How a `TaskResult` keeps ``timings``: one attempt's timing as its own plain tuple, several as a
    tuple of plain tuples (the form `TaskResult.timings` reads back either way)."""
    if timings and timings[0].__class__ is int:  # packed already (a result's own fields, unpickled)
        return tuple(timings)
    if len(timings) == 1:
        return tuple(timings[0])
    return tuple([tuple(timing) for timing in timings])


_R = TypeVar("_R", bound="TaskResult")


class TaskResult(_ResultFields):
    """How one task ended: exactly one per task, whatever happened.

    Fields: ``task_id``, ``name``, ``status``, ``value`` (set when it succeeded),
    ``exception`` (when it failed or was cancelled), ``attempts``, ``backend``,
    ``priority``, ``group_id``, ``metadata``, ``detached``, ``must_complete``, ``message``
    (what happened, in words), ``created_at``, ``started_at``, ``finished_at`` (epoch
    seconds), ``duration`` (from the first attempt's start to the end; 0 for a task that
    never ran) and ``restored`` (true for an input whose value came back from a
    `osiiso.Checkpoint` instead of running: ``succeeded``, ``attempts == 0``) and
    ``timings`` (one `AttemptTiming` per attempt, oldest first: every attempt that began,
    plus one with ``started_at=None`` when the task was cancelled while ready; empty for a
    task that never became ready, and for a restored one).

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
                duration: float = 0.0, restored: bool = False,
                timings: tuple[AttemptTiming, ...] = ()) -> TaskResult:
        if status.__class__ is not TaskStatus:
            status = _status(status)
        if message is None:
            message = _default_message(status, exception)
        return tuple.__new__(cls, (task_id, name, status, value, exception, attempts, backend, priority,
                                   group_id, metadata, detached, must_complete, message, created_at,
                                   started_at, finished_at, duration, restored, pack_timings(timings)))

    # Each attempt's timing is kept as a plain tuple and made an `AttemptTiming` when read: a
    # plain tuple of numbers and strings (and the tuple holding them) is one the cyclic garbage
    # collector stops tracking, where a NamedTuple stays tracked. A million finished results
    # are then a million objects for the collector to traverse, not three million. A result of
    # one attempt (most of them) keeps that timing's tuple itself, with no tuple around it
    # (`pack_timings`): one allocation fewer per task, so the collector's youngest generation
    # fills, and is collected, a third less often.
    @classmethod
    def _make(cls: type[_R], iterable: Iterable[Any]) -> _R:  # type: ignore[override]  # (mypy types it per NamedTuple)
        """A result from its fields in order, ``timings`` kept as `TaskResult` keeps them (``_replace`` too)."""
        fields = tuple(iterable)
        if len(fields) != len(cls._fields):
            raise TypeError(f"a TaskResult has {len(cls._fields)} fields, got {len(fields)}")
        return tuple.__new__(cls, (*fields[:-1], pack_timings(fields[-1])))

    @property
    def timings(self) -> tuple[AttemptTiming, ...]:
        """One `AttemptTiming` per attempt, oldest first (see the class docstring)."""
        raw = tuple.__getitem__(self, 18)
        if raw and raw[0].__class__ is int:  # one attempt: its timing itself (`pack_timings`)
            return (_timing(AttemptTiming, raw),)
        return tuple([_timing(AttemptTiming, timing) for timing in raw])

    def _asdict(self) -> dict[str, Any]:
        fields = super()._asdict()
        fields["timings"] = self.timings
        return fields

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status is _SUCCEEDED

    def __repr__(self) -> str:
        return f"<TaskResult {self.task_id} {self.name!r} {self.status.value}: {self.message}>"
