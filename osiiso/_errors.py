"""Exceptions raised by osiiso.

Every exception osiiso defines derives from `OsiisoError`:

    OsiisoError
    ├── ClosedError            the queue no longer accepts tasks
    ├── QueueFullError         submit() on a queue at its ``size`` limit
    ├── ExecutionError         a strict run, a group or a map had failures
    ├── TaskTimeoutError       an attempt ran past its ``timeout`` (also a TimeoutError)
    ├── TaskCancelledError     the task was cancelled before it produced a value
    ├── WorkerCrashedError     the worker process died while running the task
    ├── SerializationError     a function, argument or result could not be pickled
    ├── RemoteError            a worker's exception that could not travel back as itself
    ├── DependencyError        a task's dependency failed or was cancelled
    └── CheckpointError        a checkpoint file could not be opened, or values not stored

Errors about bad arguments are plain ``TypeError``/``ValueError``, as Python's own are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._result import TaskResult

__all__ = (
    "CheckpointError",
    "ClosedError",
    "DependencyError",
    "ExecutionError",
    "OsiisoError",
    "QueueFullError",
    "RemoteError",
    "SerializationError",
    "TaskCancelledError",
    "TaskTimeoutError",
    "WorkerCrashedError",
)


class OsiisoError(Exception):
    """The root of every exception osiiso raises."""


class ClosedError(OsiisoError):
    """The queue is shut down (or shutting down) and accepts no new task."""


class QueueFullError(OsiisoError):
    """``submit()`` found the queue at its ``size`` limit; ``await q.put()`` waits instead."""


class ExecutionError(OsiisoError):
    """Some tasks failed (or were cancelled); ``results`` holds the results concerned.

    ``ExecutionError(results)`` takes the results first and builds its message from them
    (how many failed and were cancelled, and what happened to the first); ``message``
    replaces that text.
    """

    def __init__(self, results: Iterable[TaskResult], message: str | None = None) -> None:
        if isinstance(results, str):
            raise TypeError("ExecutionError takes the results first: ExecutionError(results, message=None), "
                            f"got the string {results!r}")
        self.results: tuple[TaskResult, ...] = tuple(results)
        super().__init__(describe_failures(self.results) if message is None else message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.results, str(self)))


def describe_failures(results: tuple[TaskResult, ...], total: int | None = None, where: str = "") -> str:
    """``"2 of 5 tasks did not succeed (1 failed, 1 cancelled); first: 'fetch' (task-3) <message>"``.

    The counts in brackets appear only when some were cancelled.
    """
    if not results:
        return "no task failed"
    failed = sum(1 for r in results if r.status == "failed")
    counts = f" ({failed} failed, {len(results) - failed} cancelled)" if failed < len(results) else ""
    first = results[0]
    of = f" of {total}" if total is not None else ""
    noun = "task" if len(results) == 1 and total is None else "tasks"
    return (f"{len(results)}{of} {noun}{where} did not succeed{counts}; "
            f"first: {first.name!r} ({first.task_id}) {first.message}")


class TaskTimeoutError(OsiisoError, TimeoutError):
    """An attempt ran longer than its ``timeout``."""


class TaskCancelledError(OsiisoError):
    """The task was cancelled: by ``cancel()``, fail-first, a run timeout or shutdown."""


class WorkerCrashedError(OsiisoError):
    """The worker process running the task died (segfault, ``os._exit``, a kill, OOM)."""

    def __init__(self, message: str, *, pid: int | None = None, exitcode: int | None = None,
                 signal_name: str | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.signal_name = signal_name

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_crash, (str(self), self.pid, self.exitcode, self.signal_name))


def _rebuild_crash(message: str, pid: int | None, exitcode: int | None,
                   signal_name: str | None) -> WorkerCrashedError:
    return WorkerCrashedError(message, pid=pid, exitcode=exitcode, signal_name=signal_name)


class SerializationError(OsiisoError):
    """A function, argument or result could not cross the process boundary."""


class RemoteError(OsiisoError):
    """An exception from a worker that could not be sent back as its own type.

    ``type_name`` is the qualified name of the original type, ``remote_traceback`` the
    worker's formatted traceback.
    """

    def __init__(self, message: str, *, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_remote, (str(self), self.type_name, self.remote_traceback))


def _rebuild_remote(message: str, type_name: str, remote_traceback: str) -> RemoteError:
    return RemoteError(message, type_name=type_name, remote_traceback=remote_traceback)


class DependencyError(OsiisoError):
    """A task did not run because a task it depends on failed or was cancelled."""


class CheckpointError(OsiisoError):
    """A `osiiso.Checkpoint` could not be opened or used, or some values were not stored.

    ``unstored`` names the inputs whose values could not be stored, as
    ``(namespace, key)`` pairs (empty when the error is about the file itself).
    """

    def __init__(self, message: str, unstored: Sequence[tuple[str, str | bytes]] = ()) -> None:
        super().__init__(message)
        self.unstored: tuple[tuple[str, str | bytes], ...] = tuple(unstored)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.unstored))
