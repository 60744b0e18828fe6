"""The records the process pool keeps on the loop thread: jobs, shipped functions and slots.

A `ProcessJob` is one attempt on its way through the pool; a `FunctionEntry` is a task's
callable pickled once, and `FunctionTable` keeps one entry per live callable, keyed by a
number the workers' tables share; a `Slot` is the place of one worker, with the jobs sent
to it and a mirror of its function table. `crash_error` words the error of a job whose
worker died. Only the loop thread touches them (see `.pool`).
"""

from __future__ import annotations

import fcntl
import itertools
import pickle
import signal
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..._errors import WorkerCrashedError
from ..base import Attempt
from .child import FN_TABLE_SIZE, PROTOCOL
from .codec import decode_error, dumps_function, loads_result

__all__ = ("FunctionEntry", "FunctionTable", "ProcessJob", "Slot", "crash_error", "no_worker_error")


class FunctionEntry:
    """A callable pickled once; ``key`` names it in the workers' tables (None: not cached)."""

    __slots__ = ("blob", "ewma", "key", "ref")

    def __init__(self, key: int | None, blob: bytes, ref: Any = None) -> None:
        self.key, self.blob, self.ref = key, blob, ref
        self.ewma: float | None = None  # recent run time in seconds


class FunctionTable:
    """The callables a pool has shipped: each pickled once, while it lives, under one key."""

    def __init__(self) -> None:
        self._entries: dict[int, FunctionEntry] = {}
        self._keys = itertools.count()

    def entry(self, fn: Any, name: str) -> FunctionEntry:
        """The entry for ``fn``, pickling it the first time (raises `SerializationError`).

        Entries are found by ``id(fn)`` and dropped when ``fn`` dies; a callable that cannot be
        weakly referenced gets an entry without a key, and ships with every job.
        """
        entry = self._entries.get(id(fn))
        if entry is not None and entry.ref() is fn:
            return entry
        blob = dumps_function(fn, name)
        fid = id(fn)
        entries = self._entries

        def forget(_: object) -> None:
            entries.pop(fid, None)

        try:
            ref = weakref.ref(fn, forget)
        except TypeError:  # not weak-referenceable: ship it with every job
            return FunctionEntry(None, blob)
        entry = entries[fid] = FunctionEntry(next(self._keys), blob, ref)
        return entry


class Slot:
    """A place for one worker; its worker changes when one dies and a fresh one starts (``gen``)."""

    __slots__ = (
        "budget",
        "conn",
        "dying",
        "gen",
        "index",
        "inflight",
        "killed",
        "known",
        "pid",
        "ready",
        "retry_at",
        "sent",
        "starting",
        "unread",
        "used",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.gen = 0
        self.pid = 0
        self.conn: Connection | None = None
        self.inflight: deque[ProcessJob] = deque()  # sent to the worker, in its execution order
        self.known: OrderedDict[int, None] = OrderedDict()  # mirrors the worker's LRU table
        self.unread = self.budget = self.sent = 0
        self.ready = self.dying = self.killed = False
        self.starting = False  # a launch was asked for and has not reported yet
        self.used = False  # has had a worker: the supervisor keeps it filled from then on
        self.retry_at = 0.0  # monotonic time before which a failed launch is not retried

    def occupy(self, gen: int, pid: int, conn: Connection) -> None:
        """A fresh worker took the slot: nothing sent to it yet, an empty function table."""
        self.gen, self.pid, self.conn = gen, pid, conn
        self.ready = self.dying = self.killed = self.starting = False
        self.used = True
        self.unread = self.sent = 0
        self.known.clear()
        try:
            self.budget = fcntl.fcntl(conn.fileno(), fcntl.F_GETPIPE_SZ) // 2
        except (AttributeError, OSError):
            self.budget = 8192

    def vacate(self, *, relaunch: bool) -> None:
        """The worker is gone and its jobs are settled; ``relaunch``: a replacement is on its way."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.inflight.clear()
        self.dying = True
        self.starting = relaunch

    def send(self, commands: list[tuple[Any, ...]]) -> None:
        """Write ``commands`` to the worker in one message.

        If the pipe is broken (the worker just died), the jobs they carry never reached it:
        they count as not started, so its death re-queues them instead of failing them.
        """
        assert self.conn is not None
        try:
            self.conn.send_bytes(pickle.dumps(commands, PROTOCOL))
        except OSError:
            self.dying = True
            seqs = {command[1] for command in commands}
            for job in self.inflight:
                if job.seq in seqs:
                    job.started = False

    def function_blob(self, fn: FunctionEntry) -> bytes | None:
        """The pickled ``fn`` to send with a job, or None when the worker already holds it.

        Keeps `known` the exact mirror of the worker's table: least recently used entries
        leave first, ``FN_TABLE_SIZE`` at most.
        """
        if fn.key is None:
            return fn.blob
        known = self.known
        if fn.key in known:
            known.move_to_end(fn.key)
            return None
        known[fn.key] = None
        if len(known) > FN_TABLE_SIZE:
            known.popitem(last=False)
        return fn.blob


class ProcessJob:
    """One attempt travelling through the pool, from `Pool.submit` to its outcome.

    ``seq`` names it on the pipes; ``args`` is its pickled call. ``started`` is set when it
    runs in a worker (sent to an idle one, or reported ``STARTED``), ``announce`` when it was
    sent behind others; ``done`` once it has an outcome (``ok`` and ``payload``) or was
    ``cancelled``.
    """

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
        """Record the outcome (the first one only) and wake the coroutine awaiting it."""
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
    """The error of a running ``job`` whose worker died: how it died, and what to do about it."""
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


def no_worker_error(cause: BaseException) -> WorkerCrashedError:
    """The error of a job that waited for a worker when no worker could be started."""
    return WorkerCrashedError(f"process backend could not start a worker process ({cause!r}) — check "
                              "mp_context and the system's process limits")
