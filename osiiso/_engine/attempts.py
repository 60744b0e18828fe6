"""Per-attempt timing: the `AttemptTiming` of each attempt of a task, as the engine closes it.

A handle carries the clock of its current attempt: ``_ready_at`` (when it became ready: the
task's creation, the end of its delay or its dependencies, the end of a retry delay),
``_attempt_at`` (when a worker really began it; ``None`` before) and ``_timings`` (the attempts
already closed). The worker names where an attempt runs (``Worker.where``: ``"async"``,
``"thread/N"``, ``"process/N"``, ``"dask"``). `close_attempt` turns that into one
`AttemptTiming`; `Records.finish` builds the common case (a success) inline and calls
`last_timing` for the rest, and `Engine.retry` calls `close_attempt` for a failed attempt that
is tried again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import TaskTimeoutError, WorkerCrashedError
from .._handle import READY, RUNNING
from .._results import AttemptTiming, TaskStatus
from .text import describe, text_of

if TYPE_CHECKING:
    from .._handle import TaskHandle

__all__ = ("close_attempt", "last_timing", "outcome_of")

OK, ERROR, TIMEOUT, CANCELLED, CRASHED = "ok", "error", "timeout", "cancelled", "crashed"


def outcome_of(status: TaskStatus, exc: BaseException | None) -> str:
    """The ``outcome`` word of an attempt that ended with ``status`` and ``exc``."""
    if status is TaskStatus.SUCCEEDED:
        return OK
    if status is TaskStatus.CANCELLED:
        return CANCELLED
    if isinstance(exc, TaskTimeoutError):
        return TIMEOUT
    if isinstance(exc, WorkerCrashedError):
        return CRASHED
    return ERROR


def _words(outcome: str, exc: BaseException | None) -> str:
    if exc is None:
        return "succeeded" if outcome == OK else outcome
    return describe(exc) if outcome in (ERROR, CRASHED) else text_of(exc)


def close_attempt(handle: TaskHandle[Any], outcome: str, exc: BaseException | None, now: float,
                  message: str | None = None) -> AttemptTiming:
    """The timing of ``handle``'s current attempt, ended at ``now`` with ``outcome``.

    An attempt no worker began (``_attempt_at`` is ``None``: cancelled while it waited) has
    ``started_at=None`` and the number of the attempt it would have been.
    """
    started = handle._attempt_at
    slot = handle._slot
    if started is None:
        number, where = handle._attempts + 1, ""
    else:
        number, where = handle._attempts, slot.where if slot is not None else handle._backend
    return AttemptTiming(number, handle._ready_at, started, now, outcome, where,
                         message if message is not None else _words(outcome, exc))


def last_timing(handle: TaskHandle[Any], where: object, status: TaskStatus, exc: BaseException | None,
                message: str, now: float) -> tuple[AttemptTiming, ...]:
    """Every timing of ``handle`` as it ends (``where`` it was), the current attempt's included.

    A task that ended while ready or running closes its current attempt; one that ended
    while it waited for its dependencies, its delay or a retry delay has no attempt open.
    """
    if where is not RUNNING and where is not READY:
        return handle._timings
    outcome = outcome_of(status, exc)
    words = message if outcome == CANCELLED else None
    return (*handle._timings, close_attempt(handle, outcome, exc, now, words))
