"""The process backend: sync (and async) callables run in a pool of persistent worker processes.

This package owns everything about running an attempt in another process. `ProcessBackend`
(here) is what the engine sees; `.pool` decides, on the loop thread, where each job goes and
what the workers' events mean, and its base `.starts` when workers start; `.placing` where a
job may go and how big a batch is; `.jobs` holds the
records it keeps (jobs, shipped functions, slots); `.pipes` are the parent's ends of the
workers' pipes, which never block; `.supervisor` is the thread that watches, reaps and kills
the workers, and `.launch` starts them; `.codec` pickles calls and rebuilds results and
errors in the parent; `.child` is the worker process and the wire protocol, and
`.descendants` the processes a task starts, both stdlib only.

Data flow, labelled by module (compare CPython's ``concurrent/futures/process.py``)::

    event loop thread                    supervisor thread          worker processes
    pool.py, starts.py, jobs.py,         supervisor.py, launch.py   child.py, descendants.py
    codec.py                             pipes.py (flush, read)
    --------------------------           -----------------          ----------------
    ProcessBackend.run(attempt)                                     +-- worker 0 --+
      Pool.submit -> ProcessJob                                     | setsid, sub- |
        cloudpickle fn (codec, once                                 | reaper, SIG- |
          per pool: FunctionTable)                                  | INT ignored, |
        pickle args (codec)  +----------+  task pipe (JOB, CANCEL)  | initializer  |
        Pool._dispatch ----->| Slot 0.. |== TaskPipe.send ==========> worker_main: |
          choose, _command   +----------+  never blocks; the rest   | run jobs in  |
                                   ^       by TaskPipe.flush        | send order   |
      await job.waiter             |                                +------+-------+
        <- job.outcome()           |  LoopCaller.call(events)              |
           (codec decodes errors)  |  Up, Reports, Garbled, Dead,          |
                                   |  SpawnFailed, Stopped      result pipe|
      Pool._handle  <--------------+---- Supervisor._loop:      (READY,    |
        _on_reports: finish jobs           poll(result pipes,   STARTED,   |
        _on_death: fail / requeue          sentinels, full task SKIPPED,   |
        Starts: on demand, bounded         pipes, wake-up);     DONE) <----+
        cancel: CANCEL or kill             ResultReader checks
                                           every frame; reap,
                                           kill trees, restart

* A function is cloudpickled once per pool and sent once per worker (the worker keeps a
  table keyed by a number the parent assigns); arguments and results travel with pickle
  protocol 5, falling back to cloudpickle — never for an open file, a socket, a lock or a
  generator (`.pickling`, the rule the dask backend shares). See `.child` for the messages.
* A job sent to a ready idle worker is running; one queued behind another (only for
  short tasks, up to ``DEPTH`` per worker, or two batches for tasks short enough to batch,
  see `.placing`) or sent to a worker still starting is
  announced: the worker says ``STARTED`` first (riding on the previous ``DONE``), so a
  cancel before that just skips it. The timeout clock runs from the moment a job is
  handed to a worker with nothing before it (one still starting counts), and restarts
  when the job really starts.
* Workers start on demand, one per job that no live worker can take, up to
  ``processes`` slots (with ``fork`` the loop thread forks them itself, see `.supervisor`).
  Workers that die while starting are tried again a bounded number of times (`.starts`).
* Cancelling a running job SIGKILLs its worker and every process under it
  (`.descendants`); a worker that dies fails only the job it was running
  (``WorkerCrashedError``), its queued jobs go to other workers, and the supervisor starts
  a fresh worker in the slot. One that writes junk on its result pipe is killed, and fails
  every job it held. One told to exit that is still alive after `.supervisor.EXIT_GRACE`
  is killed.
* Workers are started with the chosen start method (forkserver by default where it
  exists, never ``fork`` unless asked); the user's ``__main__`` is never re-run in
  them (see `.launch._preparation_data`), and they load their own code by
  path, so a worker's start-up never imports the ``osiiso`` package.
* Workers watch their parent: if it dies without closing the pool they kill their
  own tree and process group within half a second; an un-closed pool is killed at exit.
* A pool reports to the loop it started on; closed from a later loop, it kills its
  workers, and the backend starts a new pool there.

Known limits: a job sent to an idle worker counts as started (cancelling it kills
that worker even if it had not read the job yet); with ``mp_context="fork"`` workers
inherit the parent's descriptors, as fork does; the processes a worker that crashed by
itself had moved out of its process group are not found (`.descendants`).
"""

from __future__ import annotations

import inspect
import os
import pickle
from collections.abc import Callable
from typing import Any

from ..._errors import ClosedError
from ..._loops import Waiter, waiter_for_running_loop
from ..base import Attempt, Backend, BackendConfig
from .child import PROTOCOL
from .codec import dumps_args, dumps_function
from .jobs import ProcessJob
from .launch import resolve_context
from .placing import DEPTH, batch_capacity
from .pool import Pool

__all__ = ("BATCHING_ENV", "ProcessBackend", "batching_enabled")

#: what a worker runs first when there is no initializer (`.child.worker_main`)
_NO_INITIALIZER = pickle.dumps((None, ()), PROTOCOL)
#: the environment variable that turns batching off for every queue of the process (``0``)
BATCHING_ENV = "OSIISO_PROCESS_BATCHING"


def batching_enabled(config: BackendConfig) -> bool:
    """Whether the pool batches short tasks: the queue's ``process_batching`` (the key of
    ``config.extra``, on unless ``False``), unless `BATCHING_ENV` turns it off for every queue
    of the process (``0``, ``false``, ``no`` or ``off``)."""
    if config.extra.get("process_batching") is False:
        return False
    return os.environ.get(BATCHING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class ProcessBackend(Backend):
    """Runs attempts in ``config.processes`` persistent worker processes.

    ``capacity`` is ``processes * DEPTH`` (``processes`` under a rate limit, ``config.spaced``):
    short tasks are queued up to ``DEPTH`` deep
    in each worker so that a worker never waits for the parent between two of them;
    longer tasks are only sent to idle workers and wait in the parent, so they never
    queue behind a long task while another worker is free. Tasks of a function short
    enough to batch (`.placing.batch_size`) give their slot back while they wait in a
    batch (`.base.Attempt.batched`), up to ``batch_capacity`` of them; ``batching`` is off
    with ``AsyncQueue(process_batching=False)`` or ``OSIISO_PROCESS_BATCHING=0`` (`batching_enabled`).
    """

    name = "process"
    direct = True
    reports_starts = True  # `.pool.Pool`: when a job goes to an idle worker, or its STARTED report arrives

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
        self._crashed = self._killed = 0
        # a batched task gives its slot back while others run: with fewer `workers` than processes,
        # that would run more tasks at once than `workers` allows
        self.batching = batching_enabled(config) and (config.workers_auto or config.workers >= config.processes)
        # as many as two batches per worker: the one it runs and the next (`.pool.Pool.submit`)
        self.batch_capacity = self.batch_limit = batch_capacity(max(1, config.processes), self.batching)

    @property
    def capacity(self) -> int:
        # under a rate limit, no job waits in a busy worker: it would start back to back with the one before
        return max(1, self.config.processes) * (1 if self.config.spaced else DEPTH)

    @property
    def parallel(self) -> int:
        return max(1, self.config.processes)

    def check(self, fn: Any) -> None:
        if inspect.isawaitable(fn) or not callable(fn):
            raise TypeError(
                f"backend='process' needs a function or other callable, got {fn!r} — a coroutine object "
                "cannot be sent to a process: pass the coroutine function and its arguments instead")

    async def start(self) -> None:
        """Create the pool (its workers start on demand) and the waiter of the running loop.

        After `aclose` a new pool is made: a queue run again under a new event loop closes
        the old loop's pool and starts a fresh one here.
        """
        self._open()

    def _open(self) -> Pool:
        """The pool, created first if there is none (on the running loop)."""
        pool = self._pool
        if pool is None:
            initializer, initargs = self.config.initializer, tuple(self.config.initargs)
            boot = _NO_INITIALIZER
            if initializer is not None:  # each part alone first: the error names the one that cannot travel
                label = getattr(initializer, "__qualname__", None) or type(initializer).__name__
                dumps_function(initializer, label, what="the initializer")
                dumps_args(initargs, {}, f"the initializer {label}")
                boot = dumps_function((initializer, initargs), "initializer", what="the initializer")
            pool = self._pool = Pool(self._ctx, max(1, self.config.processes), boot,
                                     self.config.max_tasks_per_child, self.batching)
            self._waiter = waiter_for_running_loop()
        return pool

    def begin(self, attempt: Attempt, ended: Callable[[Any], None]) -> ProcessJob:
        """Send the attempt to the pool (raising SerializationError, or ClosedError once it closes); its
        job calls ``ended(job)`` on the loop thread when it ends (a direct attempt, and `run`'s wait)."""
        pool = self._pool or self._open()
        if pool.closing:
            raise ClosedError("the process backend is closing — submit before shutdown")
        job = pool.submit(attempt)
        self.batch_limit = pool.batch_limit
        job.pool = pool
        job.wake = ended
        return job

    def outcome(self, job: ProcessJob) -> Any:
        job.pool.release(job)
        return job.outcome()

    def abort(self, job: ProcessJob) -> None:
        """Stop the job: dropped if it waits, skipped if queued in a worker, its worker killed if it runs."""
        job.wake = None
        job.pool.cancel(job)
        job.pool.release(job)

    async def run(self, attempt: Attempt) -> Any:
        """Send the attempt to the pool and park until its job ends; a cancelled wait cancels the job."""
        pool = self._pool or self._open()  # opened first: it makes the waiter of the running loop
        waiter = self._waiter
        assert waiter is not None
        job = self.begin(attempt, waiter.wake)
        waiter.prepare(job)
        try:
            if not job.done:
                await waiter.wait(job)
        finally:
            if not job.done:
                pool.cancel(job)
            pool.release(job)
        return job.outcome()

    async def aclose(self, *, force: bool = False) -> None:
        """Close the pool (see `.pool.Pool.aclose`), from its own loop or a later one; its crash and kill
        counts stay in `stats`. A later `start` or `run` opens a new pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.aclose(force)
            finally:
                self._crashed += pool.crashed
                self._killed += pool.killed

    def close_now(self) -> None:
        """Kill every worker now, from any thread (the queue was garbage-collected)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.kill_now()

    def stats(self) -> dict[str, int]:
        pool = self._pool
        return {
            "processes_live": pool.live if pool is not None else 0,
            "processes_crashed": self._crashed + (pool.crashed if pool is not None else 0),
            "processes_killed": self._killed + (pool.killed if pool is not None else 0),
            "processes_batched": pool.held if pool is not None else 0,
        }
