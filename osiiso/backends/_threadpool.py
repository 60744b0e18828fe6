"""The thread side of the thread backend: a persistent pool that can abandon a thread.

::

    loop thread                          pool threads (osiiso-thread-N)
    -----------                          ------------------------------
    ThreadPool.submit(job) --> SimpleQueue --> _work(): initializer once,
                                                then job after job
    drain(): wake waiters  <-- finished deque <-- job ends; the first finisher
             (LoopCaller.call)                    of a batch schedules drain()

A thread cannot be killed. `ThreadPool.abandon` raises the job's
`osiiso._cancel.CancelToken`, drops its result, and starts a replacement
thread at once; the abandoned thread exits by itself when its function returns.
Every state change of a job happens under one lock, so a job is exactly one of
queued, running, done or abandoned, and a thread is abandoned only while it runs
a job, or when the pool closes while it is still in the initializer (nobody waits
for an initializer that may never return: the thread exits once it does).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import queue
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from .._cancel import CancelToken, use_token
from .._events import osiiso_logger
from .._loops import LoopCaller

__all__ = ("ThreadJob", "ThreadPool")

logger = osiiso_logger
_QUEUED, _RUNNING, _DONE, _ABANDONED = range(4)
_thread_numbers = itertools.count(1)


class ThreadJob:
    """One call handed to the pool; ``waiter`` is whatever the loop side parks on."""

    __slots__ = ("args", "attempt", "batched", "began", "clock", "ended", "error", "fn", "kwargs", "pool", "ran_on",
                 "secs", "state", "token", "value", "waiter", "worker")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.attempt: Any = None  # the backend's attempt, for a direct job
        self.ended: Callable[[ThreadJob], object] | None = None  # a direct job's callback, until it is called
        self.pool: ThreadPool | None = None  # the pool a direct job was submitted to
        self.token = CancelToken()
        self.state = _QUEUED
        self.worker: _Worker | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.waiter: Any = None
        self.ran_on = "thread"  # the thread that took it (``"thread/N"``), once one has
        self.began = 0.0  # when a thread began it (``time.time()``), once one has
        self.secs = -1.0  # how long its call took, once it has run
        self.batched = False  # queued ahead for a thread, its task's slot given back (`ThreadBackend`)
        self.clock: Any = None  # an attempt whose clock waits for a thread to take this job (`ThreadPool.began`)

    @property
    def abandoned(self) -> bool:
        """Whether the pool gave the job up (`ThreadPool.abandon`, a forced close)."""
        return self.state == _ABANDONED


class _Worker(threading.Thread):
    """A pool thread; ``job`` is the job it runs, ``abandoned`` set once it must exit."""

    def __init__(self, pool: ThreadPool) -> None:
        number = next(_thread_numbers)
        super().__init__(target=pool._work, args=(self,), daemon=True, name=f"osiiso-thread-{number}")
        self.label = f"thread/{number}"  # where its jobs ran, for their timings
        self.abandoned = False
        self.initializing = True  # until its initializer has returned
        self.job: ThreadJob | None = None


class ThreadPool:
    """``size`` daemon threads taking jobs from one queue; results go back through ``caller``.

    ``wake(job)`` is called on the loop thread for each finished job (not for abandoned ones), and
    ``began(job)`` as a thread takes a job with a ``clock``, before its ``wake``.
    """

    def __init__(self, size: int, caller: LoopCaller, wake: Callable[[ThreadJob], object],
                 initializer: Callable[..., object] | None, initargs: tuple[Any, ...],
                 began: Callable[[ThreadJob], object] | None = None) -> None:
        self._caller, self._wake, self._began = caller, wake, began
        self._initializer, self._initargs = initializer, initargs
        self._queue: queue.SimpleQueue[ThreadJob | None] = queue.SimpleQueue()
        self._express: list[tuple[float, int, ThreadJob]] = []  # a heap, taken before the queue (`submit`)
        self._express_seq = itertools.count()
        self._lock = threading.Lock()
        self._finished: collections.deque[ThreadJob] = collections.deque()
        self._taken: collections.deque[ThreadJob] = collections.deque()  # jobs with a clock, as threads take them
        self._drain_scheduled = False
        self._closed = False
        self.workers: set[_Worker] = set()
        for _ in range(size):
            self._spawn()

    def submit(self, job: ThreadJob, *, express: float | None = None) -> None:
        """Queue ``job`` for the next free thread; with an ``express`` priority, ahead of the jobs queued.

        An express job is in both lines: a thread takes from the express one first (the most
        urgent, then the earliest), and the copy left in the other is skipped when a thread
        reaches it (it is no longer queued)."""
        if express is not None:
            with self._lock:
                heapq.heappush(self._express, (express, next(self._express_seq), job))
        self._queue.put(job)

    def threads(self) -> list[threading.Thread]:
        """The pool's threads, abandoned ones excluded."""
        with self._lock:
            return list(self.workers)

    def abandon(self, job: ThreadJob, reason: str) -> bool:
        """Give up on ``job``: raise its token, drop its result; if it runs, replace its thread (→ True)."""
        with self._lock:
            state, job.state = job.state, _ABANDONED
            worker = job.worker if state == _RUNNING else None
            if worker is not None:
                job.token.set(reason)
                worker.abandoned = True
                self.workers.discard(worker)
        if worker is not None and not self._closed:
            self._spawn()
        return worker is not None

    def close(self, *, force: bool, error: Callable[[], BaseException]) -> int:
        """Stop taking work: each thread exits once idle. Return how many threads were abandoned.

        With ``force``, running jobs are abandoned and they and queued jobs fail with ``error()``.
        Once no job is queued, threads still in the initializer are abandoned too: they hold no
        job, and their initializer may never return.
        """
        abandoned = 0
        self._closed = True
        if force:
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.state, job.error = _ABANDONED, error()
                    self._wake(job)
            with self._lock:
                running = [w.job for w in self.workers if w.job is not None]
            for job in running:
                if self.abandon(job, "the queue was shut down"):
                    abandoned += 1
                    job.error = error()
                    self._wake(job)
        if not self._queued_jobs():
            with self._lock:
                for worker in [w for w in self.workers if w.initializing]:
                    worker.abandoned = True
                    self.workers.discard(worker)
                    abandoned += 1
        for _ in range(len(self.workers)):
            self._queue.put(None)
        return abandoned

    def _queued_jobs(self) -> int:
        """How many jobs still wait for a thread (those given up while queued do not count)."""
        kept: list[ThreadJob | None] = []
        while True:
            try:
                kept.append(self._queue.get_nowait())
            except queue.Empty:
                break
        live = 0
        for job in kept:
            if job is not None and job.state == _QUEUED:
                live += 1
                self._queue.put(job)
        return live

    def _spawn(self) -> None:
        worker = _Worker(self)
        with self._lock:
            self.workers.add(worker)
        worker.start()

    def _work(self, me: _Worker) -> None:
        init_error = self._initialize()
        with self._lock:
            me.initializing = False
            if me.abandoned:  # the pool closed meanwhile and stopped waiting for this thread
                return
        get, lock, wall, perf_counter = self._queue.get, self._lock, time.time, time.perf_counter
        express = self._express
        while True:
            job: ThreadJob | None = None
            if express:
                with lock:
                    if express:
                        job = heapq.heappop(express)[2]
            if job is None:
                job = get()
            if job is None:
                return
            with lock:
                if job.state != _QUEUED:
                    continue
                job.state, job.worker, me.job, job.ran_on = _RUNNING, me, job, me.label
            job.began = wall()
            if job.clock is not None:  # its clock starts now: `began` on the loop, before its `wake`
                with lock:
                    self._taken.append(job)
                    schedule, self._drain_scheduled = not self._drain_scheduled, True
                if schedule:
                    self._caller.call(self._drain)
            if init_error is not None:
                job.error = _init_failed(self._initializer, init_error)
            else:
                clock = perf_counter()
                _call(job)
                job.secs = perf_counter() - clock
            with lock:
                if me.abandoned:
                    return
                job.state, job.worker, me.job = _DONE, None, None
                self._finished.append(job)
                schedule, self._drain_scheduled = not self._drain_scheduled, True
            if schedule:
                self._caller.call(self._drain)

    def _initialize(self) -> BaseException | None:
        if self._initializer is None:
            return None
        try:
            self._initializer(*self._initargs)
        except BaseException as exc:
            logger.exception("thread initializer %r failed in %s; its tasks will fail",
                             self._initializer, threading.current_thread().name)
            return exc
        return None

    def _drain(self) -> None:
        with self._lock:
            taken, jobs = list(self._taken), list(self._finished)
            self._taken.clear()
            self._finished.clear()
            self._drain_scheduled = False
        if self._began is not None:
            for job in taken:  # a job taken is listed before it can be listed finished
                self._began(job)
        wake = self._wake
        for job in jobs:
            wake(job)


_Coroutine = types.CoroutineType


def _call(job: ThreadJob) -> None:
    """Run ``job`` in this thread with its token installed; store its value or exception."""
    use_token(job.token)
    try:
        value = job.fn(*job.args, **job.kwargs)
        if type(value) is _Coroutine:  # a coroutine function, or a callable that returns a coroutine
            value = asyncio.run(value)  # runs to completion on a private loop, as in a worker process
        job.value = value
    except BaseException as exc:  # KeyboardInterrupt and SystemExit fail the task too
        job.error = exc
    finally:
        use_token(None)


def _init_failed(initializer: object, cause: BaseException) -> RuntimeError:
    err = RuntimeError(f"thread initializer {initializer!r} raised {cause!r} in {threading.current_thread().name}, "
                       "so this task could not run — fix the initializer")
    err.__cause__ = cause
    return err
