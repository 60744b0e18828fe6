"""The loop-side half of the process pool: where each job goes, and what the workers' events mean.

`Pool` owns every decision about jobs: which worker gets one (`.placing.choose`), what is sent
(`Pool._command`), what a worker's reports and death do to its jobs (`Pool._on_reports`,
`Pool._on_death`), cancelling and closing; when workers start, and what a failed start does,
is its base `.starts.Starts`. It runs on the event loop's thread; the supervisor thread
(`.supervisor`) only hands it events through `osiiso._loops.LoopCaller`. A slot
(`.jobs.Slot`) is the place of one worker, whose ``gen`` tells its successive workers apart;
a job (`.jobs.ProcessJob`) is one attempt.

Where a job is, at any time (exactly one place):

* ``Pool._pending`` — not sent yet (no room in any worker, or re-queued after its
  worker died before starting it), in priority order, FIFO within a priority;
* ``slot.inflight`` — sent to that slot's worker, in send order, which is the
  worker's execution order. A job sent to a ready, idle worker counts as started at
  once; a job sent behind others, or to a worker still starting, is ``announce``-d: the
  worker reports ``STARTED`` before running it, and until then the job can be cancelled
  without killing anybody (``CANCEL`` → the worker ``SKIPPED`` it; meanwhile it counts in
  ``slot.skipping``, and a job sent after it waits for nothing).

A job's timeout clock is held in ``_pending``, and runs from its hand-over to a worker with
nothing before it, a starting one included (`Pool._command`).
"""

from __future__ import annotations

import itertools
from collections import deque
from multiprocessing.context import BaseContext
from typing import Any

import anyio

from ..._events import osiiso_logger
from ..._loops import current_loop_caller
from ..base import Attempt, forced_close_error
from .child import CANCEL, DONE, JOB, READY, SKIPPED, STARTED
from .codec import dumps_args
from .events import Dead, Event, Garbled, Reports, SpawnFailed, Stopped, Up
from .jobs import FunctionTable, ProcessJob, Slot, queue_in_order, requeue_in_order
from .notices import crashed, garbled, interrupted, recycled
from .placing import BATCH_BELOW, batch_capacity, batch_size, choose, died_running, reports_due
from .starts import Starts
from .supervisor import Supervisor

__all__ = ("Pool",)

logger = osiiso_logger


class Pool(Starts):
    """Persistent worker processes for one `ProcessBackend`, reporting to one event loop at a time."""

    def __init__(self, ctx: BaseContext, processes: int, boot: bytes,
                 max_tasks_per_child: int | None, batching: bool = True) -> None:
        super().__init__(ctx.get_start_method() == "fork")
        self._batching = batching
        self.batch_capacity = self.batch_limit = batch_capacity(processes, batching)
        self.held, self._due = 0, False  # jobs that gave their slot back (`submit`); `.placing.reports_due`
        self._beginning: list[ProcessJob] = []  # the jobs `_dispatch` sends to idle workers: they begin now
        self._slots = [Slot(i) for i in range(processes)]
        self._max_tasks = max_tasks_per_child
        self._pending: deque[ProcessJob] = deque()
        self._functions = FunctionTable()
        self._seq = itertools.count()
        self._caller = current_loop_caller()
        self._supervisor = Supervisor(ctx, boot, self._report)
        self._scheduled = False
        self.closing = False
        self._drained: anyio.Event | None = None
        self._stopped = anyio.Event()
        self.killed = 0

    @property
    def live(self) -> int:
        """Workers up and not on their way out."""
        return sum(1 for s in self._slots if s.pipe is not None and not s.dying)

    # -- submitting and cancelling -------------------------------------------------
    def submit(self, attempt: Attempt) -> ProcessJob:
        """Encode ``attempt`` (raising SerializationError) and queue it for a worker.

        A job of a function short enough to batch (`batch_size`) is `.base.Attempt.batched`, so the engine
        hands over the next task and a batch can fill (`release` counts it out as it ends), while fewer
        than about two batches per worker are held (`.base.Backend.batch_limit`); a job of a function
        that turned a little slower meanwhile is batched still, up to ``batch_capacity``."""
        fn = self._functions.entry(attempt.fn, attempt.name)
        args = dumps_args(attempt.args, attempt.kwargs, attempt.name)
        job = ProcessJob(next(self._seq), attempt, fn, args)
        if attempt.timeout is not None:
            attempt.hold_clock()  # until a worker is there for it (restart_clock)
        queue_in_order(self._pending, job)
        size = batch_size(fn.ewma)
        self.batch_limit = min(self.batch_capacity, 2 * size * len(self._slots)) if size > 1 else self.batch_capacity
        if size > 1 and self.held < self.batch_capacity and attempt.batched():
            job.batched = True
            self.held += 1
            if self._due and len(self._pending) < size:  # every worker is busy: the next reports place it
                return job  # with the others (a batch's worth waiting goes now: reports may be late)
        self._schedule()
        return job

    def release(self, job: ProcessJob) -> None:
        """``job`` has ended, whichever way: it no longer counts against ``batch_capacity``."""
        if job.batched:
            job.batched = False
            self.held -= 1

    def _schedule(self) -> None:
        """Dispatch on the loop's next turn (once however often asked; from the loop thread)."""
        if not self._scheduled:
            self._scheduled = True
            self._caller.call_local(self._dispatch)

    def cancel(self, job: ProcessJob) -> None:
        """The attempt's scope was cancelled: drop it, skip it, or kill its worker if it runs.

        A job not started yet (queued, or its worker still starting) is skipped: a slow initializer
        is not restarted by every timeout, and one that hangs holds its worker until the pool closes."""
        if job.done or job.cancelled:
            return
        job.cancelled = True
        job.done = True
        if job in self._pending:
            self._pending.remove(job)
            return
        for slot in self._slots:
            if job in slot.inflight:
                if job.started:
                    self._kill(slot)
                else:
                    slot.skipping += 1
                    if slot.pipe is not None:
                        slot.send([(CANCEL, job.seq)])
                    if self._pending:  # nothing waits for this job any more: the next may go there
                        self._schedule()
                return

    def _kill(self, slot: Slot) -> None:
        """SIGKILL the slot's worker and all it started (once) to stop the job it runs; counted in ``killed``."""
        if not slot.dying:
            slot.dying = slot.killed = True
            self.killed += 1
            self._supervisor.kill(slot.index, slot.gen)

    # -- dispatch ------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Place the pending jobs on workers, in order, and send each worker its batch in one write.

        Runs after the submits of a loop turn (`_schedule`) and after each batch of events.
        Jobs leave ``_pending`` from the front while `.placing.choose` finds a worker, so none
        overtakes a more urgent one; for those left `_grow` starts workers (placing goes on if
        a ``fork`` launch brought one up at once). A batch that cannot be written un-starts
        its jobs (`.jobs.Slot.send`). A worker at ``max_tasks_per_child`` retires once idle.
        """
        self._scheduled = False
        batches: dict[Slot, list[tuple[Any, ...]]] = {}  # the commands this dispatch writes, per worker
        pending, slots, max_tasks, batching = self._pending, self._slots, self._max_tasks, self._batching
        while True:
            while pending:
                job = pending[0]
                slot = choose(slots, job, max_tasks, batching, batches)  # None: it waits in ``_pending``
                if slot is None:
                    break
                pending.popleft()
                batches.setdefault(slot, []).append(self._command(slot, job))
            if not pending or not self._grow():
                break
        launched, self._launched = self._launched, False
        self._supervisor.coalesce = self.held > 0
        self._due = reports_due(self._slots)
        for slot, commands in batches.items():
            slot.send(commands)
            if self._max_tasks is not None and slot.sent >= self._max_tasks and not slot.inflight:
                self._retire(slot, recycle=True)
        if launched:  # after the first jobs went out to the new workers
            self._supervisor.watch_launched()
        beginning, self._beginning = self._beginning, []
        for job in beginning:  # sent to idle workers: they begin (unless a write failed, or cancelled)
            if job.started and not job.done:
                job.attempt.began()

    def _command(self, slot: Slot, job: ProcessJob) -> tuple[Any, ...]:
        """Move ``job`` to ``slot.inflight`` and return the ``JOB`` command that sends it.

        The function travels only if the worker's table lacks it (`.jobs.Slot.function_blob`).
        A job sent to a ready idle worker begins now (`.base.Attempt.began` once it is written);
        one sent behind others, or to a worker still starting, is announced (the worker says
        ``STARTED``), its bytes unread in the pipe until then. The clock restarts here when
        nothing is to run before the job (a hanging initializer cannot hold a task past its
        timeout) and again at ``STARTED`` (`.base.Attempt.restart_clock`).
        """
        fn = job.fn
        fn_blob = slot.function_blob(fn)
        ahead = len(slot.inflight) - slot.skipping  # `.jobs.Slot.ahead`, inline on this per-job path
        job.announce = bool(slot.inflight) or not slot.ready
        if job.announce:
            job.size = len(job.args) + (len(fn_blob) if fn_blob else 0) + 64
            slot.unread += job.size
        else:
            job.started = True
            self._beginning.append(job)
        job.attempt.ran_on(slot.label)
        if not ahead:  # it starts now (else at its STARTED report)
            job.attempt.restart_clock()
        slot.inflight.append(job)
        slot.sent += 1
        return (JOB, job.seq, fn.key, fn_blob, job.args, job.announce)

    def _retire(self, slot: Slot, *, recycle: bool = False) -> None:
        """Close the pipe to a worker with nothing left to run: it exits on EOF (or is killed
        after `.supervisor.EXIT_GRACE`). ``recycle``: it ran ``max_tasks_per_child`` tasks."""
        if slot.pipe is not None and not slot.dying:
            if recycle:
                recycled(slot)
            slot.dying = True
            slot.pipe.close()

    # -- events from the supervisor ------------------------------------------------
    def _report(self, events: list[Event]) -> None:  # supervisor thread
        """Hand a batch of events to the loop thread (called by the supervisor thread)."""
        self._caller.call(self._on_events, events)

    def _on_events(self, events: list[Event]) -> None:
        """Handle a batch on the loop thread; a bug here is logged, never raised into the loop."""
        try:
            self._handle(events)
        except Exception:  # a bug here must not take the event loop down with it
            logger.exception("process backend: could not handle worker events %r", events)

    def _handle(self, events: list[Event]) -> None:
        """Apply each event to its slot, then dispatch what they made possible."""
        for event in events:
            if isinstance(event, Reports):
                self._on_reports(self._slots[event.slot], event)
            elif isinstance(event, Up):
                self._on_up(event)
                if self.closing and not self.outstanding():
                    self._retire(self._slots[event.slot])
            elif isinstance(event, Dead):
                self._on_death(self._slots[event.slot], event)
            elif isinstance(event, Garbled):
                slot = self._slots[event.slot]
                if event.gen == slot.gen:
                    slot.garbled, slot.dying = event.why, True  # the supervisor killed it: `Dead` follows
            elif isinstance(event, SpawnFailed):
                self._on_spawn_failed(event)
            elif isinstance(event, Stopped):
                self._stopped.set()
        self._dispatch()
        if self._drained is not None and not self.outstanding():
            self._drained.set()

    def _on_reports(self, slot: Slot, event: Reports) -> None:
        """Apply a worker's reports to the jobs it holds, which it runs in ``inflight`` order.

        Reports of an earlier worker of the slot are dropped (``gen``); any report means it is
        ready. Each names the job at the head of ``inflight`` (else it is junk, `_garble`).
        ``DONE`` ends it (unless cancelled) and feeds its function's run time; ``STARTED``
        restarts its clock and says it began, or kills the worker if it was cancelled meanwhile
        (the ``CANCEL`` came too late); ``SKIPPED`` drops a cancelled job that never ran. An
        idle worker retires when the pool closes or at ``max_tasks_per_child``."""
        if event.gen != slot.gen or slot.garbled is not None:
            return
        if not slot.ready:
            slot.ready = True
            self._on_ready()
        inflight = slot.inflight
        for report in event.reports:
            kind = report[0]
            if kind == READY:
                continue
            if not inflight or inflight[0].seq != report[1]:
                self._garble(slot, f"a report for a job it does not hold ({report!r:.60})")
                return
            job = inflight[0]
            if kind == DONE:
                inflight.popleft()
                slot.unread -= job.size
                fn, secs = job.fn, report[4]
                fn.ewma = ewma = secs if fn.ewma is None else 0.7 * fn.ewma + 0.3 * secs
                if fn.unbatched:  # one of its calls died running lately: not batched for a while
                    fn.unbatched -= 1
                    fn.ewma = max(ewma, BATCH_BELOW)
                if not job.cancelled:
                    job.finish(report[2], report[3])
            elif kind == STARTED:
                slot.unread -= job.size
                job.size = 0
                job.started = True
                if job.cancelled:  # the CANCEL came too late: it runs, so kill it
                    slot.skipping -= 1
                    self._kill(slot)
                else:
                    job.attempt.restart_clock()
                    job.attempt.began()
            elif kind == SKIPPED:
                inflight.popleft()
                slot.unread -= job.size
                slot.skipping -= 1
        if not inflight and (self.closing or (
                self._max_tasks is not None and slot.sent >= self._max_tasks)):
            self._retire(slot, recycle=not self.closing)

    def _garble(self, slot: Slot, why: str) -> None:
        """The worker's reports make no sense: kill it; its jobs fail with what it wrote (`_on_death`)."""
        garbled(slot, why)
        slot.garbled, slot.dying = why, True
        self._supervisor.kill(slot.index, slot.gen)

    def _on_death(self, slot: Slot, event: Dead) -> None:
        """A slot's worker died (all it wrote was handled first): settle the jobs it held.

        The job it was running fails with `WorkerCrashedError` (`.jobs.crash_error`), and its
        function counts as slow until it ends fast again (`.placing.batch_size`); those it had
        not started go back into ``_pending``, ahead of the jobs of their priority, clocks held. One
        that wrote junk fails every job it held (its reports are lost: any may have run). One
        that died before it was ready is a failed start (`.starts.Starts._on_failed_start`).
        The death is a crash unless the pool killed the worker, it retired cleanly, or it was
        killed for not exiting in time (``lingered``).
        """
        if event.gen != slot.gen:
            return
        running = interrupted(slot)  # for the crash event
        died_running(slot)  # its function is not batched for now
        lost, requeue = slot.settle(event.pid, event.exitcode)
        requeue_in_order(self._pending, requeue)
        failed_start = not (slot.ready or slot.killed or slot.garbled or event.lingered)
        if not (slot.killed or event.lingered or failed_start) and (lost or event.exitcode != 0):
            self.crashed += 1
            crashed(slot, event, running)
        slot.vacate(relaunch=event.replaced)
        if failed_start and not self._supervisor.closing:
            self._on_failed_start(event)

    # -- closing -------------------------------------------------------------------
    def kill_now(self) -> None:
        """Kill every worker now, from any thread (the queue was garbage-collected)."""
        self.closing = True
        if not self._supervisor.close_unstarted():
            self._supervisor.kill_all()

    def outstanding(self) -> int:
        """Jobs not finished with: waiting for a worker or held by one (cancelled ones excepted)."""
        return len(self._pending) + sum(1 for s in self._slots for job in s.inflight if not job.done)

    def _adopt_loop(self) -> bool:
        """Report to the running loop from now on; True if it is not the loop the pool ran on.

        That loop is gone (a queue runs again under a new ``anyio.run``): the events sent to it
        were lost and its jobs have nobody left to wake, so the pool can only be killed.
        """
        caller = current_loop_caller()
        if caller.loop is self._caller.loop:
            return False
        self._caller = caller
        self._stopped = anyio.Event()
        for job in list(self._pending) + [j for s in self._slots for j in s.inflight]:
            job.wake = None
        return True

    async def aclose(self, force: bool) -> None:
        """Close the pool: wait for the jobs (or, with ``force``, kill the workers and fail them
        with `forced_close_error`), retire every worker and wait for the supervisor to end.

        Retired workers exit on EOF, or are killed `.supervisor.EXIT_GRACE` seconds later.
        From another loop than the pool's, it kills the workers (`_adopt_loop`).
        """
        force = self._adopt_loop() or force
        self.closing = True
        try:
            if not force and self.outstanding():
                self._drained = anyio.Event()
                await self._drained.wait()
        except BaseException:
            force = True
            raise
        finally:
            self._supervisor.closing = True
            if force:
                for slot in self._slots:  # these deaths are neither crashes nor cancel kills
                    slot.killed = True
                self._supervisor.kill_all()
                for job in list(self._pending) + [j for s in self._slots for j in s.inflight]:
                    job.finish(False, forced_close_error("process"))
            for slot in self._slots:
                self._retire(slot)
            if not self._supervisor.close_unstarted():  # no worker ever launched: no thread to wait for
                self._supervisor.wake()
                with anyio.CancelScope(shield=True):
                    await self._stopped.wait()
                self._supervisor.join()
            for slot in self._slots:
                self._retire(slot)
