"""One attempt on its way through the process pool, and the callable it ships."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from ..._errors import WorkerCrashedError
from ..base import Attempt
from .codec import decode_error, loads_result

__all__ = ("FunctionEntry", "ProcessJob", "crash_error")


class FunctionEntry:
    """A callable pickled once; ``key`` names it in the workers' tables (None: not cached)."""

    __slots__ = ("blob", "ewma", "key", "ref")

    def __init__(self, key: int | None, blob: bytes, ref: Any = None) -> None:
        self.key, self.blob, self.ref = key, blob, ref
        self.ewma: float | None = None  # recent run time in seconds


class ProcessJob:
    """One attempt travelling through the pool."""

    __slots__ = (
        "announce",
        "args",
        "attempt",
        "cancelled",
        "done",
        "fn",
        "ok",
        "payload",
        "seq",
        "size",
        "started",
        "waiter",
        "wake",
    )

    def __init__(self, seq: int, attempt: Attempt, fn: FunctionEntry, args: bytes) -> None:
        self.seq, self.attempt, self.fn, self.args = seq, attempt, fn, args
        self.waiter: Any = None  # set by the backend's waiter (a loop future, or a parked trio task)
        self.wake: Callable[[ProcessJob], None] | None = None
        self.started = self.announce = self.cancelled = self.done = self.ok = False
        self.payload: Any = None
        self.size = 0  # bytes of it still unread in the worker's pipe (announced jobs)

    def finish(self, ok: bool, payload: Any) -> None:
        if not self.done:
            self.done, self.ok, self.payload = True, ok, payload
            if self.wake is not None:
                self.wake(self)

    def outcome(self) -> Any:
        """Return the value, or raise the error, of a finished job."""
        if self.ok:
            return loads_result(self.payload, self.attempt.name)
        error = self.payload
        if isinstance(error, tuple):
            error = decode_error(error, self.attempt.name)
        raise error


def crash_error(job: ProcessJob, pid: int, exitcode: int | None, killed: bool,
                 booted: bool) -> WorkerCrashedError:
    signal_name = None
    if exitcode is not None and exitcode < 0:
        try:
            signal_name = signal.Signals(-exitcode).name
        except ValueError:
            signal_name = f"signal {-exitcode}"
    how = f"was killed by {signal_name}" if signal_name else f"exited with code {exitcode}"
    name = job.attempt.name
    if killed:
        why = "it was stopped to cancel another task that ran on it — retry the task"
    elif not booted:
        why = "it died while starting (check the initializer and mp_context)"
    else:
        why = ("the task crashed it (a segfault, os._exit(), an out-of-memory kill?) — "
               "the pool started a fresh worker; fix the task or retry it")
    return WorkerCrashedError(f"worker process {pid} running {name!r} {how}: {why}",
                              pid=pid, exitcode=exitcode, signal_name=signal_name)
