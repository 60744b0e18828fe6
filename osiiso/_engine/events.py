"""The engine's events about tasks (start, retry, timeout, cancel, finish) for `osiiso._events`.

Each function is called where the engine decides what it reports, and builds nothing unless
the ``"osiiso"`` logger takes that event's level: `started` and `finished` are called only
when the run found DEBUG on (`Engine.log_tasks`), the others ask `enabled` themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._events import emit, enabled
from .text import describe

if TYPE_CHECKING:
    from .._handle import TaskHandle
    from .._results import TaskResult

__all__ = ("cancelled", "finished", "retrying", "started", "timed_out")


def _who(handle: TaskHandle[Any]) -> dict[str, Any]:
    return {"task_id": f"task-{handle._seq}", "task_name": handle._name, "backend": handle._backend,
            "attempt": handle._attempts}


def started(handle: TaskHandle[Any]) -> None:
    """A worker begins an attempt of ``handle`` (DEBUG; the caller checked the level)."""
    who = _who(handle)
    emit("start", "osiiso: task %r (%s) attempt %d started on the %s backend",
         (who["task_name"], who["task_id"], who["attempt"], who["backend"]), **who)


def finished(result: TaskResult) -> None:
    """``result`` was recorded (DEBUG; the caller checked the level)."""
    emit("finish", "osiiso: task %r (%s) %s: %s", (result.name, result.task_id, result.status.value, result.message),
         task_id=result.task_id, task_name=result.name, backend=result.backend, attempt=result.attempts,
         status=result.status.value, duration=result.duration)


def retrying(handle: TaskHandle[Any], delay: float, cause: BaseException) -> None:
    """An attempt of ``handle`` failed with ``cause`` and is tried again after ``delay`` seconds (INFO)."""
    if not enabled("retry"):
        return
    who = _who(handle)
    text = describe(cause)
    emit("retry", "osiiso: task %r (%s) attempt %d of %d failed (%s); retrying in %gs",
         (who["task_name"], who["task_id"], who["attempt"], handle._options.retries + 1, text, delay),
         delay=delay, cause=text, error_type=type(cause).__name__, **who)


def timed_out(handle: TaskHandle[Any], timeout: float) -> None:
    """An attempt of ``handle`` ran past its ``timeout`` and was interrupted (WARNING)."""
    if not enabled("timeout"):
        return
    who = _who(handle)
    emit("timeout", "osiiso: task %r (%s) attempt %d timed out after %gs",
         (who["task_name"], who["task_id"], who["attempt"], timeout), timeout=timeout, **who)


def cancelled(handle: TaskHandle[Any], reason: str, running: bool) -> None:
    """A cancel of ``handle`` was accepted for ``reason`` (DEBUG); ``running``: it is interrupted."""
    if not enabled("cancel"):
        return
    who = _who(handle)
    emit("cancel", "osiiso: task %r (%s) %s%s", (who["task_name"], who["task_id"], reason,
                                                 " (interrupting its attempt)" if running else ""),
         reason=reason, running=running, **who)
