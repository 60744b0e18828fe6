"""The process backend: sync (and async) callables run in a pool of persistent worker processes.

This package owns everything about running an attempt in another process. `ProcessBackend`
(here) is what the engine sees; `.pool` decides, on the loop thread, where each job goes and
what the workers' events mean; `.jobs` holds the records it keeps (jobs, shipped functions,
slots); `.supervisor` is the thread that launches, watches and reaps the workers; `.codec`
pickles calls and rebuilds results and errors in the parent; `.child` is the worker process
and the wire protocol, stdlib only.

Data flow, labelled by module (compare CPython's ``concurrent/futures/process.py``)::

    event loop thread                    supervisor thread          worker processes
    pool.py, jobs.py, codec.py           supervisor.py              child.py
    --------------------------           -----------------          ----------------
    ProcessBackend.run(attempt)                                     +-- worker 0 --+
      Pool.submit -> ProcessJob                                     | setsid,      |
        cloudpickle fn (codec, once                                 | SIGINT ign., |
          per pool: FunctionTable)                                  | initializer  |
        pickle args (codec)  +----------+  task pipe (JOB, CANCEL)  |              |
        Pool._dispatch ----->| Slot 0.. |===========================> worker_main: |
          _choose, _command  +----------+  one write per batch      | run jobs in  |
                                   ^                                | send order   |
      await job.waiter             |                                +------+-------+
        <- job.outcome()           |  LoopCaller.call(events)              |
           (codec decodes errors)  |  Up, Reports, Dead,                   |
                                   |  SpawnFailed, Stopped      result pipe|
      Pool._handle  <--------------+---- Supervisor._loop:      (READY,    |
        _on_reports: finish jobs           wait(result pipes    STARTED,   |
        _on_death: fail / requeue          + sentinels + wake)  SKIPPED,   |
        cancel: CANCEL or kill             reap the dead,       DONE) <----+
                                           killpg leftovers,
                                           start replacements

* A function is cloudpickled once per pool and sent once per worker (the worker keeps a
  table keyed by a number the parent assigns); arguments and results travel with pickle
  protocol 5, falling back to cloudpickle. See `.child` for the messages.
* A job sent to an idle worker is running; one queued behind another (only for
  short tasks, up to ``DEPTH`` per worker) is announced: the worker says ``STARTED``
  first (riding on the previous ``DONE``), so a cancel before that just skips it, and
  the timeout clock restarts when it really starts.
* Workers start on demand, one per job that no live worker can take, up to
  ``processes`` slots (with ``fork`` the loop thread forks them itself, see `.supervisor`).
* Cancelling a running job SIGKILLs its worker's process group; a worker that dies
  fails only the job it was running (``WorkerCrashedError``), its queued jobs go to
  other workers, and the supervisor starts a fresh worker in the slot.
* Workers are started with the chosen start method (forkserver by default where it
  exists, never ``fork`` unless asked); the user's ``__main__`` is never re-run in
  them (see `.supervisor._preparation_data`), and they load their own code by
  path, so a worker's start-up never imports the ``osiiso`` package.
* Workers watch their parent: if it dies without closing the pool they kill their
  own process group within half a second; an un-closed pool is killed at exit.

Known limits: a job sent to an idle worker counts as started (cancelling it kills
that worker even if it had not read the job yet); a big argument sent to an idle
worker is written from the loop thread (the worker reads it as it arrives); with
``mp_context="fork"`` workers inherit the parent's descriptors, as fork does.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..._errors import ClosedError
from ..._loops import Waiter, waiter_for_running_loop
from ..base import Attempt, Backend, BackendConfig
from .codec import dumps_function
from .pool import DEPTH, Pool
from .supervisor import resolve_context

__all__ = ("ProcessBackend",)


class ProcessBackend(Backend):
    """Runs attempts in ``config.processes`` persistent worker processes.

    ``capacity`` is ``processes * DEPTH``: short tasks are queued up to ``DEPTH`` deep
    in each worker so that a worker never waits for the parent between two of them;
    longer tasks are only sent to idle workers and wait in the parent, so they never
    queue behind a long task while another worker is free.
    """

    name = "process"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._ctx = resolve_context(config.mp_context)
        max_tasks = config.max_tasks_per_child
        if max_tasks is not None and (not isinstance(max_tasks, int) or max_tasks < 1):
            raise ValueError(
                f"max_tasks_per_child must be a positive int or None, got {max_tasks!r} — "
                "pass e.g. max_tasks_per_child=100")
        self._pool: Pool | None = None
        self._waiter: Waiter | None = None
        self._closed = False
        self._crashed = self._killed = 0

    @property
    def capacity(self) -> int:
        return max(1, self.config.processes) * DEPTH

    def check(self, fn: Any) -> None:
        if inspect.isawaitable(fn) or not callable(fn):
            raise TypeError(
                f"backend='process' needs a function or other callable, got {fn!r} — a coroutine object "
                "cannot be sent to a process: pass the coroutine function and its arguments instead")

    async def start(self) -> None:
        """Create the pool (its workers start on demand) and the waiter of the running loop."""
        if self._closed:
            raise ClosedError("the process backend is closed — create a new queue")
        if self._pool is None:
            boot = dumps_function((self.config.initializer, tuple(self.config.initargs)),
                                  "initializer")
            self._pool = Pool(self._ctx, max(1, self.config.processes), boot,
                              self.config.max_tasks_per_child)
            self._waiter = waiter_for_running_loop()

    async def run(self, attempt: Attempt) -> Any:
        """Send the attempt to the pool and park until its job ends; a cancelled wait cancels the job."""
        pool = self._pool
        if pool is None:
            await self.start()
            pool = self._pool
            assert pool is not None
        if pool.closing:
            raise ClosedError("the process backend is closing — submit before shutdown")
        job = pool.submit(attempt)
        waiter = self._waiter
        assert waiter is not None
        waiter.prepare(job)
        job.wake = waiter.wake
        try:
            if not job.done:
                await waiter.wait(job)
        finally:
            if not job.done:
                pool.cancel(job)
        return job.outcome()

    async def aclose(self, *, force: bool = False) -> None:
        """Close the pool for good (see `.pool.Pool.aclose`); its crash and kill counts stay in `stats`."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.aclose(force)
            finally:
                self._crashed += pool.crashed
                self._killed += pool.killed

    def close_now(self) -> None:
        """Kill every worker now, from any thread (the queue was garbage-collected)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.kill_now()

    def stats(self) -> dict[str, int]:
        pool = self._pool
        return {
            "processes_live": pool.live if pool is not None else 0,
            "processes_crashed": self._crashed + (pool.crashed if pool is not None else 0),
            "processes_killed": self._killed + (pool.killed if pool is not None else 0),
        }
