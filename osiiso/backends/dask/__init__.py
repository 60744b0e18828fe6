"""The dask backend: attempts run on a ``dask.distributed`` cluster, embedded or existing.

`DaskBackend` (here) is what the engine sees; `.link` holds the client and the loop it runs
on (the queue's own on asyncio and uvloop, a thread's on trio); `.remote` is the trampoline
that runs on the workers; `.chains` keeps the futures of upstream tasks for their dask
dependents; `.cluster` starts the embedded ``LocalCluster``; `.options` is
``AsyncQueue(dask=...)`` and `DaskOptions`. ``distributed``
is imported only when the backend starts: ``import osiiso`` never needs the extra.

Data flow::

    queue's event loop (any)           the link's loop (asyncio)         dask workers
    __init__.py                        link.py                           remote.py
    -------------------                ------------------                ------------
    DaskBackend.run(attempt)
      cloudpickle fn (once per fn)
      pickle args (upstream values:
        FromUpstream + future, chains)
      DaskJob -- Link.send -->   client.map(run_payload,     ----> run_payload:
        hold_clock (timed jobs)          fn_blob, args_blob, topic,        announce start
                                         upstream futures,                 (topic event)
                                         priority=-priority,               upstream values
      await waiter                       pure=False, retries=0,            token watched
                                         fifo_timeout=0), batched
        <-- started(jobs) ------------  start event (key, worker) <-----   fn(*args)
            restart_clock, ran_on      wait; gathers, <= 2 in flight       (True, blob) or
        <-- finished(jobs) -----------  raw / KilledWorker / cancel <----  (False, record)
      never began (worker died): a new
        DaskJob, same attempt --> send
      decode: value, the task's own
        error (+ remote traceback),
        WorkerCrashedError, ...
      success: keep the future for dask
        dependents (chains)
      cancelled: send(job, cancel) -->  client.cancel(future); with
                                         hard_stop, restart_workers

* One attempt is one dask future; retries, timeouts, priorities, rate limits and hooks are the
  engine's (dask's own ``retries`` stay 0).
* A timeout or a cancel ends the attempt at once (the engine's cancel scope) and cancels the
  future. A queued future just goes; a running one cannot be interrupted by dask: its thread
  runs the call to the end, with ``osiiso.cancelled()`` true, unless ``hard_stop`` restarts
  that worker process.
* ``KilledWorker`` (a worker died while running the task) becomes `WorkerCrashedError`; a job
  whose worker died before it announced the start goes again as a new job of the same attempt
  (at most `RESENDS` times: no attempt is charged for a task that never began); a future
  cancelled because the client lost the scheduler is lost too (`WorkerCrashedError`), and once
  the client has given up reconnecting a job fails with a ``ConnectionError`` naming the
  scheduler; a future someone else cancelled becomes `CancelledElsewhere` (the task ends
  cancelled). Every attempt ends with exactly one outcome: the future's, or the cancel's.
* A succeeded attempt's future is kept for the dask tasks waiting on it (`.chains`), which
  get it in place of the value; it is released when the last of them has ended.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from typing import Any

import anyio

from ..._errors import ClosedError
from ..._loops import LoopCaller, Waiter, current_loop_caller, waiter_for_running_loop
from ..base import Attempt, Backend, BackendConfig
from .chains import Chains
from .codec import decode_outcome, dumps_args, dumps_function, never_began
from .job import DaskJob
from .link import Link
from .options import DaskOptions, require_distributed

__all__ = ("DaskBackend", "DaskOptions", "default_capacity")

#: how many shipped functions keep their cloudpickle (the process pool's table holds as many)
FUNCTIONS_KEPT = 256

#: how often one attempt is sent again because its worker died before it began (a worker that
#: keeps dying before, a dependency too big for its memory say, then fails it: `WorkerCrashedError`)
RESENDS = 3


def default_capacity(threads: int) -> int:
    """Attempts kept on a cluster of ``threads`` worker threads: twice its threads, and at least 64.

    A round trip to dask takes milliseconds (about 15 ms on the 2-core machine of the
    benchmarks): twice the threads keeps every thread busy through it, and 64 lets many
    small tasks travel in one message each way (``workers`` still caps the total).
    """
    return max(2 * max(1, threads), 64)


class _Call:
    """A wait for something the link does (connect, close), parked on the queue's waiter."""

    __slots__ = ("done", "waiter")

    def __init__(self) -> None:
        self.done = False
        self.waiter: Any = None


class DaskBackend(Backend):
    """Runs attempts on a dask cluster through one client of its own (see `.link`).

    ``capacity`` (how many attempts are on the cluster at once) is known once the backend
    has started: `DaskOptions.capacity`, else `default_capacity` of the cluster's threads.
    """

    name = "dask"
    remote = True

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        options = config.extra.get("dask")
        self.options: DaskOptions = options if isinstance(options, DaskOptions) else DaskOptions()
        self._link: Link | None = None
        self._caller: LoopCaller | None = None
        self._waiter: Waiter | None = None
        self._capacity = self.options.capacity or default_capacity(config.processes)
        self._start_error: BaseException | None = None
        self._starting: anyio.Event | None = None
        self._functions: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()
        self._closed = False
        self._abandoned = self._restarts = self._resent = 0
        self._chains = Chains(self.name, _release)

    @property
    def capacity(self) -> int:
        return self._capacity

    def check(self, fn: Any) -> None:
        require_distributed()
        if inspect.isawaitable(fn) or not callable(fn):
            raise TypeError(
                f"backend='dask' needs a function or other callable, got {fn!r} — a coroutine object "
                "cannot be sent to a worker: pass the coroutine function and its arguments instead")

    async def start(self) -> None:
        """Make the link and connect (starting the embedded cluster if there is none).

        Two lane openings may call this at once (a lane made from another thread while the
        service starts): the second waits for the first, so one queue has one client.
        """
        if self._closed:
            raise ClosedError("the dask backend is closed — create a new queue")
        while self._starting is not None:
            await self._starting.wait()
        if self._link is not None:
            return
        require_distributed()
        self._starting = starting = anyio.Event()
        try:
            await self._connect()
        finally:
            self._starting = None
            starting.set()

    async def _connect(self) -> None:
        self._start_error = None
        self._caller, self._waiter = current_loop_caller(), waiter_for_running_loop()
        loop = self._caller.loop  # an asyncio loop, or a trio token: then the link needs a thread
        link = Link(self.options, self.config.processes, self._caller, self._finished, self._started,
                    loop if isinstance(loop, asyncio.AbstractEventLoop) else None)
        try:
            threads = await self._wait(link.call(link.open))
        except BaseException as exc:
            await self._shut(link)
            self._start_error = exc
            raise
        self._link = link
        self._capacity = self.options.capacity or default_capacity(threads)

    async def _wait(self, future: Any) -> Any:
        """Await a future of the link's loop (concurrent, on trio) without blocking the queue's loop."""
        caller, waiter = self._caller, self._waiter
        assert caller is not None and waiter is not None
        call = _Call()
        waiter.prepare(call)

        def wake(_: object) -> None:
            caller.call(_wake, waiter, call)

        future.add_done_callback(wake)
        try:
            if not call.done:
                await waiter.wait(call)
        except BaseException:
            future.cancel()
            raise
        return future.result()

    async def run(self, attempt: Attempt) -> Any:
        """Send the attempt to the cluster and park until its future ends; a cancelled wait cancels it."""
        link = self._link
        if link is None:
            if self._start_error is not None:
                raise RuntimeError(f"the dask backend could not start: {self._start_error}") from self._start_error
            await self.start()
            link = self._link
            assert link is not None
        if link.closing:
            raise ClosedError("the dask backend is closing — submit before shutdown")
        fn_blob = self._function_blob(attempt)
        args, kwargs, upstream = self._chains.substitute(attempt.handle, attempt.args, attempt.kwargs)
        args_blob = dumps_args(args, kwargs, attempt.name)
        if attempt.timeout is not None:
            attempt.hold_clock()  # until a worker announces the start (restart_clock)
        resends = 0
        while True:  # every job announces its start: `_started`, and `never_began` below
            job = DaskJob(attempt, fn_blob, args_blob, link.topic, upstream)
            await self._carry(link, job)
            if resends == RESENDS or link.closing or not never_began(job):
                break
            resends += 1  # its worker died before it began: the same attempt goes again
            self._resent += 1
        raw, future, job.future = job.raw, job.future, None
        value = decode_outcome(job, self.name, closing=link.closing, sent=future is not None)
        if raw is not None and raw[0] and future is not None:  # kept for the dask tasks waiting on it
            self._chains.keep(future, value, len(raw[1]), attempt.dependents)
        return value

    async def _carry(self, link: Link, job: DaskJob) -> None:
        """Send ``job`` and park until its future ends; if the wait is interrupted, cancel the future."""
        waiter = self._waiter
        assert waiter is not None
        waiter.prepare(job)
        link.send(job)
        try:
            if not job.done:
                await waiter.wait(job)
        finally:
            if not job.done:
                job.abandoned = True
                self._abandoned += 1
                link.send(job, cancel=True)

    def _function_blob(self, attempt: Attempt) -> bytes:
        fn = attempt.fn
        entry = self._functions.get(id(fn))
        if entry is not None and entry[0] is fn:
            self._functions.move_to_end(id(fn))
            return entry[1]
        blob = dumps_function(fn, attempt.name)
        self._functions[id(fn)] = (fn, blob)
        if len(self._functions) > FUNCTIONS_KEPT:
            self._functions.popitem(last=False)
        return blob

    def _finished(self, jobs: list[DaskJob]) -> None:
        """On the queue's loop: these jobs' futures ended; wake their attempts."""
        waiter = self._waiter
        for job in jobs:
            job.done = True
            if not job.abandoned and waiter is not None:
                waiter.wake(job)

    def _started(self, jobs: list[DaskJob]) -> None:
        """On the queue's loop: a worker began these jobs; their timings (and timeouts) count from now."""
        for job in jobs:
            if not job.done and not job.abandoned:
                job.attempt.ran_on(f"dask/{job.where}")
                job.attempt.restart_clock()

    async def aclose(self, *, force: bool = False) -> None:
        """Close the client and the embedded cluster (an existing cluster keeps running)."""
        self._closed = True
        link, self._link = self._link, None
        if link is None:
            return
        try:
            await self._shut(link)
        finally:
            self._restarts += link.restarts

    async def _shut(self, link: Link) -> None:
        """Close the client (and embedded cluster) and wait for the link's thread to end; never cancelled.

        Attempts still on the cluster (only with ``force``) see their futures cancelled by
        the closing client and fail with `forced_close_error` (see `.codec.decode_outcome`).
        """
        self._chains.clear()
        with anyio.CancelScope(shield=True):
            await self._wait(link.call(link.aclose))
            delay = 0.001
            while link.thread is not None and link.thread.is_alive():
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.05)

    def close_now(self) -> None:
        """From any thread, without waiting: close the client and the embedded cluster."""
        self._closed = True
        self._chains.clear()
        link, self._link = self._link, None
        if link is not None:
            link.close_soon()

    def stats(self) -> dict[str, int]:
        link = self._link
        return {
            "dask_in_flight": len(link._jobs) if link is not None else 0,
            "dask_abandoned": self._abandoned,
            "dask_resent": self._resent,
            "dask_restarts": self._restarts + (link.restarts if link is not None else 0),
            "dask_futures_passed": self._chains.passed,
            "dask_futures_kept": self._chains.kept,
        }


def _release(future: Any) -> None:
    """Let the cluster forget a kept future (from any thread: dask hands it to the client's loop)."""
    future.release()


def _wake(waiter: Waiter, call: _Call) -> None:
    call.done = True
    waiter.wake(call)
