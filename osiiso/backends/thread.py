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
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

from .._events import emit, enabled
from .._loops import Waiter, current_loop_caller, waiter_for_running_loop
from ._threadpool import ThreadJob, ThreadPool
from .base import Attempt, Backend, BackendConfig, forced_close_error

__all__ = ("ThreadBackend",)


class ThreadBackend(Backend):
    """Runs sync callables on a pool of ``threads`` threads; abandons cancelled attempts.

    The pool starts on `start` (or the first `run`) in the running event loop
    and stops on `aclose`; the backend may be started again afterwards.
    """

    name = "thread"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._pool: ThreadPool | None = None
        self._waiter: Waiter | None = None
        self._abandoned = 0

    @property
    def capacity(self) -> int:
        return self.config.threads

    def check(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"backend='thread' needs a function or other callable, got {fn!r} — "
                            "pass the coroutine function itself, or use backend='async' for an awaitable")

    async def start(self) -> None:
        self._open()

    def _open(self) -> tuple[ThreadPool, Waiter]:
        if self._pool is None or self._waiter is None:
            self._waiter = waiter = waiter_for_running_loop()
            self._pool = ThreadPool(self.config.threads, current_loop_caller(), waiter.wake,
                                    self.config.initializer, self.config.initargs)
        return self._pool, self._waiter

    async def run(self, attempt: Attempt) -> Any:
        pool, waiter = self._open()
        job = ThreadJob(attempt.fn, attempt.args, attempt.kwargs)
        waiter.prepare(job)
        pool.submit(job)
        try:
            await waiter.wait(job)
        except BaseException:
            if pool.abandon(job, f"task {attempt.name!r} was cancelled or timed out"):
                self._abandoned += 1
                if enabled("abandon"):
                    emit("abandon", "osiiso: task %r (%s) attempt %d was cancelled or timed out: its thread %s "
                         "is abandoned (a thread cannot be stopped) and a fresh one takes its place",
                         (attempt.name, attempt.task_id, attempt.number, job.ran_on), task_id=attempt.task_id,
                         task_name=attempt.name, backend=self.name, attempt=attempt.number, worker=job.ran_on)
            attempt.ran_on(job.ran_on)
            raise
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
        return {"threads_live": live, "threads_abandoned": self._abandoned}


async def _join(pool: ThreadPool) -> None:
    """Wait, without blocking the loop, until the pool's threads have exited.

    The list is read again at each poll: a thread abandoned meanwhile is no longer waited for.
    """
    delay = 0.0002
    while any(thread.is_alive() for thread in pool.threads()):
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.02)
