"""The thread backend: sync callables (and coroutine functions) on a persistent thread pool.

The pool (`osiiso.backends._threadpool`) keeps ``threads`` daemon threads. An
attempt becomes a `osiiso.backends._threadpool.ThreadJob`; the awaiting coroutine
parks on a waiter that the pool wakes from the loop thread (through
`osiiso._loops.LoopCaller`) when the job ends. On asyncio and uvloop the
waiter is a plain loop future, on trio a parked task: both are cheaper than an
``anyio.Event`` per attempt and both are cancelled by the engine's anyio cancel scope.

A cancelled attempt (timeout, ``cancel()``, shutdown) cannot stop its thread. The
backend *abandons* it: the attempt's `osiiso._cancel.CancelToken` is raised
(``osiiso.cancelled()`` turns true in the task), its late result is dropped, and a new
thread takes its place so the pool keeps ``threads`` working threads. Neither
`ThreadBackend.run` nor `ThreadBackend.aclose` waits for an abandoned thread.

The backend is also *direct* (`osiiso.backends.base.Backend.direct`): for a queue without
hooks the engine starts an attempt with `ThreadBackend.begin`, and the pool's drain on the
loop thread calls the engine back for each finished job, so no coroutine waits per attempt.

Tasks of a short function (recent calls under `AHEAD_BELOW`) without a timeout are *queued
ahead* (`ThreadBackend._queue`): they give their slot back and wait in the pool's queue, about
`AHEAD_SECONDS` of work per thread, so a thread that ends one takes the next at once; each
task's start is the moment its thread took it. `thread_batching=False` turns it off.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

from .._events import emit, enabled
from .._loops import Waiter, current_loop_caller, waiter_for_running_loop
from ._threadpool import ThreadJob, ThreadPool
from .base import Attempt, Backend, BackendConfig, forced_close_error

__all__ = ("AHEAD_BELOW", "AHEAD_MAX", "AHEAD_SECONDS", "THREAD_BATCHING_ENV", "ThreadBackend",
           "thread_batching_enabled")

#: queue a task ahead for the threads only if its function's recent calls took less (seconds)
AHEAD_BELOW = 0.001
#: the tasks queued ahead hold about this much work per thread (seconds)
AHEAD_SECONDS = 0.001
#: most tasks queued ahead per thread
AHEAD_MAX = 32
#: the environment variable that turns queueing ahead off for every queue of the process (``0``)
THREAD_BATCHING_ENV = "OSIISO_THREAD_BATCHING"
_TIMED_MAX = 256  # functions whose run time is kept; the table starts over beyond


def thread_batching_enabled(config: BackendConfig) -> bool:
    """Whether short thread tasks are queued ahead: the queue's ``thread_batching`` (the key of
    ``config.extra``, on unless ``False``), unless `THREAD_BATCHING_ENV` turns it off for every
    queue of the process (``0``, ``false``, ``no`` or ``off``)."""
    if config.extra.get("thread_batching") is False:
        return False
    return os.environ.get(THREAD_BATCHING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class ThreadBackend(Backend):
    """Runs sync callables on a pool of ``threads`` threads; abandons cancelled attempts.

    The pool starts on `start` (or the first `run`) in the running event loop
    and stops on `aclose`; the backend may be started again afterwards.
    """

    name = "thread"
    direct = True

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._pool: ThreadPool | None = None
        self._waiter: Waiter | None = None
        self._abandoned = 0
        # a task queued ahead gives its slot back while others run: with fewer `workers` than
        # threads, that would run more tasks at once than `workers` allows
        self.batching = thread_batching_enabled(config) and (config.workers_auto or config.workers >= config.threads)
        self.batch_capacity = self.batch_limit = config.threads * AHEAD_MAX if self.batching else 0
        self._held = 0  # jobs queued ahead (`_queue`), until they end
        self._held_urgent = math.inf  # the most urgent priority among them (at most), while any
        self._times: dict[int, tuple[Callable[..., Any], float]] = {}  # id(fn) -> (fn, recent run time)

    @property
    def capacity(self) -> int:
        return self.config.threads

    def runs_here(self) -> bool:
        """Whether the calling thread is one of this backend's pool threads: a task of it is calling."""
        pool = self._pool
        return pool is not None and threading.current_thread() in pool.threads()

    def check(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"backend='thread' needs a function or other callable, got {fn!r} — "
                            "pass the coroutine function itself, or use backend='async' for an awaitable")

    async def start(self) -> None:
        self._open()

    def _open(self) -> tuple[ThreadPool, Waiter]:
        if self._pool is None or self._waiter is None:
            self._waiter = waiter = waiter_for_running_loop()
            self._pool = ThreadPool(self.config.threads, current_loop_caller(), partial(self._wake, waiter.wake),
                                    self.config.initializer, self.config.initargs, self._began)
        return self._pool, self._waiter

    async def run(self, attempt: Attempt) -> Any:
        pool, waiter = self._open()
        job = ThreadJob(attempt.fn, attempt.args, attempt.kwargs)
        waiter.prepare(job)
        self._queue(pool, job, attempt)
        try:
            await waiter.wait(job)
        except BaseException:
            self._give_up(pool, job, attempt)
            raise
        self._ended(job, attempt)
        return self._result(job, attempt)

    def begin(self, attempt: Attempt, ended: Callable[[Any], None]) -> ThreadJob:
        """Queue the attempt for a thread; the pool's drain calls ``ended(job)`` when it ends (a direct attempt)."""
        pool, _ = self._open()
        job = ThreadJob(attempt.fn, attempt.args, attempt.kwargs)
        job.attempt, job.ended, job.pool = attempt, ended, pool
        self._queue(pool, job, attempt)
        return job

    def _queue(self, pool: ThreadPool, job: ThreadJob, attempt: Attempt) -> None:
        """Queue ``job`` for a thread; a task of a short function without a timeout is queued *ahead*.

        With every thread busy, a thread then takes its next job without waiting for the loop:
        the task gives its slot back (`.base.Attempt.batched`), so the engine hands over the
        next one, up to about `AHEAD_SECONDS` of work per thread (at most `AHEAD_MAX`), and the
        task's ``started_at`` is when a thread took it.
        """
        held, most_urgent, priority = self._held, self._held_urgent, attempt.priority
        self.batch_limit = self.batch_capacity  # unless it is batched, below
        if attempt.timeout is not None:
            if held:  # it may wait behind jobs queued ahead: its clock starts when a thread takes it
                attempt.hold_clock()
                job.clock = attempt
        elif self.batching:
            fn = job.fn
            known = self._times.get(id(fn))
            if known is not None and known[0] is fn and known[1] < AHEAD_BELOW:
                depth = min(AHEAD_MAX, max(1, int(AHEAD_SECONDS / max(known[1], 1e-9))))
                self.batch_limit = limit = self.config.threads * depth
                if held < limit and attempt.batched():
                    job.batched = True
                    self._held = held + 1
                    self._held_urgent = min(most_urgent, priority)
        # jobs queued ahead may wait in the pool (their function may have turned slow since): one
        # more urgent than every one of them goes before them all, in priority order
        pool.submit(job, express=priority if held and priority < most_urgent else None)

    def _began(self, job: ThreadJob) -> None:
        """The pool's callback (loop thread): a thread took ``job``, whose attempt's clock was held."""
        attempt, job.clock = job.clock, None
        if attempt is not None and not job.abandoned and (job.attempt is None or job.ended is not None):
            attempt.restart_clock(job.began)  # not for an attempt given up meanwhile (its Attempt is refilled)

    def _ended(self, job: ThreadJob, attempt: Attempt) -> None:
        """``job`` ran to its end (loop thread): learn its function's run time; a job queued ahead
        stops counting, and its attempt started when its thread took it."""
        fn, secs, times = job.fn, job.secs, self._times
        if secs >= 0:  # its call ran (not failed by the initializer, nor by a forced close while queued)
            known = times.get(id(fn))
            if known is not None and known[0] is fn:
                secs = 0.7 * known[1] + 0.3 * secs
            elif len(times) >= _TIMED_MAX:
                times.clear()
            times[id(fn)] = (fn, secs)
        if self._release(job) and job.began:
            attempt.restart_clock(job.began)

    def _release(self, job: ThreadJob) -> bool:
        """``job`` no longer counts as queued ahead; whether it did."""
        if not job.batched:
            return False
        job.batched = False
        self._held -= 1
        if not self._held:
            self._held_urgent = math.inf
        return True

    def _wake(self, wake_waiter: Callable[[ThreadJob], object], job: ThreadJob) -> None:
        """The pool's callback (loop thread): ``job`` ended; resume its coroutine, or call its direct
        callback once."""
        if job.attempt is None:
            wake_waiter(job)
            return
        ended, job.ended = job.ended, None
        if ended is not None:
            self._ended(job, job.attempt)
            ended(job)

    def outcome(self, job: ThreadJob) -> Any:
        return self._result(job, job.attempt)

    def abort(self, job: ThreadJob) -> None:
        """Give the attempt up: skipped if still queued, its thread abandoned if it runs."""
        job.ended = None
        assert job.pool is not None
        self._give_up(job.pool, job, job.attempt)

    def _give_up(self, pool: ThreadPool, job: ThreadJob, attempt: Attempt) -> None:
        """The attempt was cancelled or timed out: abandon its job (and its thread, if it runs)."""
        self._release(job)
        if pool.abandon(job, f"task {attempt.name!r} was cancelled or timed out"):
            self._abandoned += 1
            if enabled("abandon"):
                emit("abandon", "osiiso: task %r (%s) attempt %d was cancelled or timed out: its thread %s "
                     "is abandoned (a thread cannot be stopped) and a fresh one takes its place",
                     (attempt.name, attempt.task_id, attempt.number, job.ran_on), task_id=attempt.task_id,
                     task_name=attempt.name, backend=self.name, attempt=attempt.number, worker=job.ran_on)
        attempt.ran_on(job.ran_on)

    @staticmethod
    def _result(job: ThreadJob, attempt: Attempt) -> Any:
        """The ended job's value, or raise its error (dropping the job's reference to it)."""
        attempt.ran_on(job.ran_on)
        error = job.error
        if error is None:
            return job.value
        job.error = None
        try:
            raise error
        finally:
            del error, job

    async def aclose(self, *, force: bool = False) -> None:
        pool, self._pool, self._waiter = self._pool, None, None
        if pool is None:
            return
        self._abandoned += pool.close(force=force, error=partial(forced_close_error, self.name))
        await _join(pool)

    def close_now(self) -> None:
        pool, self._pool, self._waiter = self._pool, None, None
        if pool is not None:
            pool.close(force=False, error=partial(forced_close_error, self.name))

    def stats(self) -> dict[str, int]:
        pool = self._pool
        live = 0 if pool is None else sum(t.is_alive() for t in pool.threads())
        return {"threads_live": live, "threads_abandoned": self._abandoned, "threads_batched": self._held}


async def _join(pool: ThreadPool) -> None:
    """Wait, without blocking the loop, until the pool's threads have exited.

    The list is read again at each poll: a thread abandoned meanwhile is no longer waited for.
    """
    delay = 0.0002
    while any(thread.is_alive() for thread in pool.threads()):
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.02)
