"""The records the process pool keeps on the loop thread: jobs, shipped functions and slots.

A `ProcessJob` is one attempt on its way through the pool; a `FunctionEntry` is a task's
callable pickled once, and `FunctionTable` keeps one entry per live callable, keyed by a
number the workers' tables share; a `Slot` is the place of one worker, with the jobs sent
to it and a mirror of its function table. `crash_error`, `start_error` and `garbled_error`
word the error of a job whose worker died running it, died starting, or wrote junk. Only the
loop thread touches them (see `.pool`).
"""

from __future__ import annotations

import fcntl
import itertools
import pickle
import signal
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from ..._errors import WorkerCrashedError
from ..base import Attempt
from .child import FN_TABLE_SIZE, PROTOCOL
from .codec import decode_error, dumps_function, loads_result
from .pipes import TaskPipe

__all__ = (
    "FunctionEntry", "FunctionTable", "ProcessJob", "Slot", "crash_error", "garbled_error", "no_worker_error",
    "queue_in_order", "requeue_in_order", "signal_name", "start_error",
)


class FunctionEntry:
    """A callable pickled once; ``key`` names it in the workers' tables (None: not cached)."""

    __slots__ = ("blob", "ewma", "key", "ref", "unbatched")

    def __init__(self, key: int | None, blob: bytes, ref: Any = None) -> None:
        self.key, self.blob, self.ref = key, blob, ref
        self.ewma: float | None = None  # recent run time in seconds
        self.unbatched = 0  # calls still to end before it is batched again (`.placing.died_running`)


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
        "dying",
        "garbled",
        "gen",
        "index",
        "inflight",
        "killed",
        "known",
        "label",
        "pid",
        "pipe",
        "ready",
        "retry_at",
        "sent",
        "skipping",
        "starting",
        "unread",
        "used",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.label = f"process/{index}"  # where its attempts run, for their timings
        self.gen = 0
        self.pid = 0
        self.pipe: TaskPipe | None = None
        self.inflight: deque[ProcessJob] = deque()  # sent to the worker, in its execution order
        self.known: OrderedDict[int, None] = OrderedDict()  # mirrors the worker's LRU table
        self.unread = self.budget = self.sent = 0
        self.skipping = 0  # jobs of ``inflight`` cancelled before they started: the worker skips them
        self.ready = self.dying = self.killed = False
        self.garbled: str | None = None  # what the worker wrote that was no report (it is being killed)
        self.starting = False  # a launch was asked for and has not reported yet
        self.used = False  # its worker started well: the supervisor keeps it filled from then on
        self.retry_at = 0.0  # monotonic time before which a failed launch is not retried

    @property
    def ahead(self) -> int:
        """The jobs a job sent now would wait for: those in flight, less the ones to be skipped."""
        return len(self.inflight) - self.skipping

    def occupy(self, gen: int, pid: int, pipe: TaskPipe) -> None:
        """A fresh worker took the slot: nothing sent to it yet, an empty function table."""
        self.gen, self.pid, self.pipe = gen, pid, pipe
        self.ready = self.dying = self.killed = self.starting = False
        self.garbled = None
        self.used = True
        self.unread = self.sent = self.skipping = 0
        self.known.clear()
        try:
            self.budget = fcntl.fcntl(pipe.fd, fcntl.F_GETPIPE_SZ) // 2
        except (AttributeError, OSError):
            self.budget = 8192

    def vacate(self, *, relaunch: bool) -> None:
        """The worker is gone and its jobs are settled; ``relaunch``: the supervisor launches a successor.

        Without one, the slot is started again on demand (`.pool.Pool._grow`).
        """
        if self.pipe is not None:
            self.pipe.abort()
        self.pipe = None
        self.inflight.clear()
        self.skipping = 0
        self.dying = True
        self.starting = relaunch
        self.used = relaunch

    def settle(self, pid: int, exitcode: int | None) -> tuple[bool, list[ProcessJob]]:
        """Its worker died: fail the jobs it may have run; return whether it lost one, and those to send again.

        A started job fails with `crash_error`; after junk (``garbled``) every job fails, since
        its reports are lost and any of them may have run. The others had not started, or
        (``killed``: the pool killed the worker to stop a cancelled or timed-out job, which is
        done already) began only as that job ended: their clocks are held again, and they go
        back in line.
        """
        lost, again = False, []
        for job in self.inflight:
            if job.cancelled:
                continue
            if self.garbled is not None:
                lost = True
                job.finish(False, garbled_error(job, pid, exitcode, self.garbled))
            elif job.started and not self.killed:
                lost = True
                job.finish(False, crash_error(job, pid, exitcode, self.ready))
            else:  # not started; or the pool killed the worker to stop another job, just as that one ended
                # and this one began: it was cut short by no fault of its own, so it runs again
                if job.attempt.timeout is not None:
                    job.attempt.hold_clock()
                job.started = job.announce = False  # in line again: as a job never sent (`Pool._command`)
                job.size = 0
                again.append(job)
        return lost, again

    def send(self, commands: list[tuple[Any, ...]]) -> None:
        """Write ``commands`` to the worker in one message, never blocking (`.pipes.TaskPipe`).

        If the pipe is broken (the worker just died), the jobs they carry never reached it:
        they count as not started, so its death re-queues them instead of failing them.
        """
        assert self.pipe is not None
        try:
            self.pipe.send(pickle.dumps(commands, PROTOCOL))
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
        "batched",
        "cancelled",
        "done",
        "fn",
        "ok",
        "payload",
        "pool",
        "seq",
        "size",
        "started",
        "waiter",
        "wake",
    )

    def __init__(self, seq: int, attempt: Attempt, fn: FunctionEntry, args: bytes) -> None:
        self.seq, self.attempt, self.fn, self.args = seq, attempt, fn, args
        self.waiter: Any = None  # set by the backend's waiter (a loop future, or a parked trio task)
        self.pool: Any = None  # the pool it went to, for a direct attempt (`ProcessBackend.begin`)
        self.wake: Callable[[ProcessJob], None] | None = None
        self.started = self.announce = self.cancelled = self.done = self.ok = False
        self.batched = False  # it gave its slot under ``workers`` back (`.pool.Pool.submit`)
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


def crash_error(job: ProcessJob, pid: int, exitcode: int | None, booted: bool) -> WorkerCrashedError:
    """The error of a running ``job`` whose worker died: how it died, and what to do about it."""
    how, signal_name = _how(exitcode)
    name = job.attempt.name
    if not booted:
        why = "it died while starting (check the initializer and mp_context)"
    else:
        why = ("the task crashed it (a segfault, os._exit(), an out-of-memory kill?) — "
               "the pool started a fresh worker; fix the task or retry it")
    return WorkerCrashedError(f"worker process {pid} running {name!r} {how}: {why}",
                              pid=pid, exitcode=exitcode, signal_name=signal_name)


def queue_in_order(pending: deque[ProcessJob], job: ProcessJob) -> None:
    """Add ``job`` to the jobs waiting for a worker, in priority order (FIFO within a priority)."""
    priority = job.attempt.priority
    if pending and pending[-1].attempt.priority > priority:
        index = len(pending)
        while index and pending[index - 1].attempt.priority > priority:
            index -= 1
        pending.insert(index, job)
    else:
        pending.append(job)


def requeue_in_order(pending: deque[ProcessJob], jobs: list[ProcessJob]) -> None:
    """Put ``jobs`` (in their order, sent back from a dead worker) back among those waiting: in
    priority order, each ahead of the waiting jobs of its priority, which were handed over after it."""
    for job in reversed(jobs):
        priority, index = job.attempt.priority, 0
        while index < len(pending) and pending[index].attempt.priority < priority:
            index += 1
        pending.insert(index, job)


def signal_name(exitcode: int | None) -> str | None:
    """The name of the signal that killed a process that ended with ``exitcode`` (``None`` if none did)."""
    return _how(exitcode)[1]


def _how(exitcode: int | None) -> tuple[str, str | None]:
    """How a process ended, in words, and the name of the signal that killed it."""
    signal_name = None
    if exitcode is not None and exitcode < 0:
        try:
            signal_name = signal.Signals(-exitcode).name
        except ValueError:
            signal_name = f"signal {-exitcode}"
    return (f"was killed by {signal_name}" if signal_name else f"exited with code {exitcode}"), signal_name


def start_error(pid: int, exitcode: int | None, attempts: int) -> WorkerCrashedError:
    """The error of jobs that waited for a worker when the workers kept dying while starting."""
    how, signal_name = _how(exitcode)
    return WorkerCrashedError(
        f"worker process {pid} {how} while starting, before it could run a task ({attempts} workers in a "
        "row died while starting) — check the initializer (it runs in every worker before its first "
        "task) and mp_context", pid=pid, exitcode=exitcode, signal_name=signal_name)


def garbled_error(job: ProcessJob, pid: int, exitcode: int | None, why: str) -> WorkerCrashedError:
    """The error of a job whose worker wrote something that is not a report on its result pipe."""
    _, signal_name = _how(exitcode)
    return WorkerCrashedError(
        f"worker process {pid} running {job.attempt.name!r} wrote {why} on its result pipe, so it was killed "
        "and the task's outcome is lost — something in the task wrote to a descriptor it does not own (a "
        "stray os.write, a forked child, a C library); retry the task, or find that write",
        pid=pid, exitcode=exitcode, signal_name=signal_name)


def no_worker_error(cause: BaseException) -> WorkerCrashedError:
    """The error of a job that waited for a worker when no worker could be started."""
    return WorkerCrashedError(f"process backend could not start a worker process ({cause!r}) — check "
                              "mp_context and the system's process limits")
