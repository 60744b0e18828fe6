"""The loop-side half of the process pool: where each job goes, and what the workers' events mean.

`Pool` owns every decision about jobs: which worker gets one (`Pool._choose`), what is sent
(`Pool._command`), when workers start (`Pool._grow`), what a worker's reports and death do
to its jobs (`Pool._on_reports`, `Pool._on_death`), cancelling and closing. It runs on the
event loop's thread; the supervisor thread (`.supervisor`) only hands it events through
`osiiso._loops.LoopCaller`. A slot (`.jobs.Slot`) is the place of one worker, whose
``gen`` tells its successive workers apart; a job (`.jobs.ProcessJob`) is one attempt.

Where a job is, at any time (exactly one place):

* ``Pool._pending`` — not sent yet (no room in any worker, or re-queued after its
  worker died before starting it), in priority order, FIFO within a priority;
* ``slot.inflight`` — sent to that slot's worker, in send order, which is the
  worker's execution order. A job sent to an idle worker counts as started at once;
  a job sent behind others (or to a booting worker) is ``announce``-d: the worker
  reports ``STARTED`` before running it, and until then the job can be cancelled
  without killing anybody (``CANCEL`` → the worker ``SKIPPED`` it).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from multiprocessing.context import BaseContext
from typing import Any

import anyio

from ..._loops import current_loop_caller
from ..base import Attempt, forced_close_error
from .child import CANCEL, DONE, JOB, SKIPPED, STARTED
from .codec import dumps_args
from .jobs import FunctionTable, ProcessJob, Slot, crash_error, no_worker_error
from .supervisor import Dead, Event, Reports, SpawnFailed, Stopped, Supervisor, Up, kill_group

__all__ = ("DEPTH", "Pool")

logger = logging.getLogger("osiiso")

#: most jobs a worker holds at once (1 running + 3 queued) when its tasks are short
DEPTH = 4
#: queue jobs behind a running one only for functions whose recent runs took less
PRESEND_BELOW = 0.005
#: after a failed launch, a slot is not tried again for this many seconds
RETRY_LAUNCH_AFTER = 1.0


class Pool:
    """Persistent worker processes for one `ProcessBackend` on one event loop."""

    def __init__(self, ctx: BaseContext, processes: int, boot: bytes,
                 max_tasks_per_child: int | None) -> None:
        self._slots = [Slot(i) for i in range(processes)]
        self._max_tasks = max_tasks_per_child
        self._pending: deque[ProcessJob] = deque()
        self._functions = FunctionTable()
        self._seq = itertools.count()
        self._caller = current_loop_caller()
        self._supervisor = Supervisor(ctx, boot, self._report)
        self._launch_here = ctx.get_start_method() == "fork"
        self._launch_error: BaseException | None = None  # the last failed launch, if any
        self._launched = False  # `launch_now` started a worker the supervisor does not watch yet
        self._scheduled = False
        self.closing = False
        self._drained: anyio.Event | None = None
        self._stopped = anyio.Event()
        self.crashed = self.killed = 0

    @property
    def live(self) -> int:
        """Workers up and not on their way out."""
        return sum(1 for s in self._slots if s.conn is not None and not s.dying)

    # -- submitting and cancelling -------------------------------------------------
    def submit(self, attempt: Attempt) -> ProcessJob:
        """Encode ``attempt`` (raising SerializationError) and queue it for a worker."""
        fn = self._functions.entry(attempt.fn, attempt.name)
        args = dumps_args(attempt.args, attempt.kwargs, attempt.name)
        job = ProcessJob(next(self._seq), attempt, fn, args)
        if attempt.timeout is not None:
            attempt.hold_clock()  # until a worker really starts it (restart_clock)
        pending = self._pending
        priority = attempt.priority
        if pending and pending[-1].attempt.priority > priority:
            # keep the jobs waiting for a worker in priority order (FIFO within a priority)
            index = len(pending)
            while index and pending[index - 1].attempt.priority > priority:
                index -= 1
            pending.insert(index, job)
        else:
            pending.append(job)
        if not self._scheduled:
            self._scheduled = True
            self._caller.call_local(self._dispatch)  # submit runs on the loop thread
        return job

    def cancel(self, job: ProcessJob) -> None:
        """The attempt's scope was cancelled: drop it, or kill its worker if it runs."""
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
                elif slot.conn is not None:  # queued in the worker: ask it to skip the job
                    slot.send([(CANCEL, job.seq)])
                return

    def _kill(self, slot: Slot) -> None:
        """SIGKILL the slot's worker (once) to stop the job it runs; counted in ``killed``."""
        if not slot.dying:
            slot.dying = slot.killed = True
            self.killed += 1
            kill_group(slot.pid)

    # -- dispatch ------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Place the pending jobs on workers, in order, and send each worker its batch in one write.

        Runs after the submits of a loop turn (``submit`` schedules it once) and after each
        batch of events. Jobs leave ``_pending`` from the front while `_choose` finds a worker,
        so none overtakes a more urgent one; for those left `_grow` starts workers, and placing
        goes on if a ``fork`` launch brought one up at once. A batch that cannot be written
        un-starts its jobs (`.jobs.Slot.send`), so `_on_death` re-queues them. A worker at
        ``max_tasks_per_child`` is retired once idle.
        """
        self._scheduled = False
        batches: dict[Slot, list[tuple[Any, ...]]] = {}
        pending = self._pending
        while True:
            while pending:
                job = pending[0]
                slot = self._choose(job)
                if slot is None:
                    break
                pending.popleft()
                batches.setdefault(slot, []).append(self._command(slot, job))
            if not pending or not self._grow():
                break
        launched, self._launched = self._launched, False
        for slot, commands in batches.items():
            slot.send(commands)
            if self._max_tasks is not None and slot.sent >= self._max_tasks and not slot.inflight:
                self._retire(slot)
        if launched:  # after the first jobs went out to the new workers
            self._supervisor.watch_launched()

    def _grow(self) -> bool:
        """Launch workers for the jobs no live worker can take, one per job, up to ``processes``.

        Workers start on demand: a queue that sends one task starts one process. Returns
        whether a worker came up at once (a ``fork`` launch), so the caller places jobs again.
        """
        want = len(self._pending) - sum(1 for slot in self._slots if slot.starting)
        if want <= 0 or self._supervisor.closing:
            return False
        now = time.monotonic()
        came_up = False
        for slot in self._slots:
            if want <= 0:
                break
            if slot.conn is not None or slot.starting or slot.used or slot.retry_at > now:
                continue
            want -= 1
            slot.starting = True
            if not self._launch_here:
                self._supervisor.spawn(slot.index)
                continue
            try:
                event = self._supervisor.launch_now(slot.index)
            except Exception as exc:
                self._on_spawn_failed(SpawnFailed(slot.index, exc))
            else:
                self._on_up(event)
                came_up = self._launched = True
        if self._launch_error is not None and not any(s.conn is not None or s.starting for s in self._slots):
            self._fail_pending(self._launch_error)  # every launch fails: fail rather than wait forever
        return came_up

    def _choose(self, job: ProcessJob) -> Slot | None:
        """The worker to send ``job`` to now, or None: then it waits in ``_pending``.

        An idle worker wins at once. Otherwise a job is queued behind others only if its
        function is known to be short (``PRESEND_BELOW``) and so is the job running there,
        the worker holds fewer than ``DEPTH`` jobs, and the bytes still unread in its pipe
        leave room for this one (``budget``, half the pipe): a long or unknown task is never
        stuck behind another while a worker may free up. Among those, the least loaded wins.
        Dying workers and workers at ``max_tasks_per_child`` get nothing.
        """
        best: Slot | None = None
        ewma = job.fn.ewma
        short = ewma is not None and ewma < PRESEND_BELOW
        for slot in self._slots:
            if slot.conn is None or slot.dying:
                continue
            if self._max_tasks is not None and slot.sent >= self._max_tasks:
                continue
            n = len(slot.inflight)
            if n == 0:
                return slot
            # queue a short job only behind jobs known to be short: never behind a task of
            # unknown or long duration, which could hold it while another worker frees up
            running = slot.inflight[0].fn.ewma
            if short and running is not None and running < PRESEND_BELOW and n < DEPTH \
                    and slot.unread + len(job.args) < slot.budget and (best is None or n < len(best.inflight)):
                best = slot
        return best

    def _command(self, slot: Slot, job: ProcessJob) -> tuple[Any, ...]:
        """Move ``job`` to ``slot.inflight`` and return the ``JOB`` command that sends it.

        The function travels only if the worker's table lacks it (`.jobs.Slot.function_blob`).
        A job sent to a ready, idle worker starts now: its timeout clock restarts here. One
        sent behind others, or to a worker still booting, is announced (the worker will say
        ``STARTED``), and its bytes count as unread in the worker's pipe until then.
        """
        fn = job.fn
        fn_blob = slot.function_blob(fn)
        job.announce = bool(slot.inflight) or not slot.ready
        if job.announce:
            job.size = len(job.args) + (len(fn_blob) if fn_blob else 0) + 64
            slot.unread += job.size
        else:
            job.started = True
            if job.attempt.timeout is not None:
                job.attempt.restart_clock()
        slot.inflight.append(job)
        slot.sent += 1
        return (JOB, job.seq, fn.key, fn_blob, job.args, job.announce)

    def _retire(self, slot: Slot) -> None:
        """Close the pipe to a worker with nothing in flight: it exits on EOF."""
        if slot.conn is not None and not slot.dying:
            slot.dying = True
            slot.conn.close()

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
            elif isinstance(event, Dead):
                self._on_death(self._slots[event.slot], event)
            elif isinstance(event, SpawnFailed):
                self._on_spawn_failed(event)
            elif isinstance(event, Stopped):
                self._stopped.set()
        self._dispatch()
        if self._drained is not None and not self.outstanding():
            self._drained.set()

    def _on_up(self, event: Up) -> None:
        """A worker started in a slot: the slot starts afresh, with an empty function table."""
        slot = self._slots[event.slot]
        slot.occupy(event.gen, event.pid, event.conn)
        self._launch_error = None
        if self.closing and not self.outstanding():
            self._retire(slot)

    def _on_reports(self, slot: Slot, event: Reports) -> None:
        """Apply a worker's reports to the jobs it holds, which it runs in ``inflight`` order.

        Reports of an earlier worker of the slot are dropped (``gen``). Any report means the
        worker is ready. ``DONE`` ends the first job (unless it was cancelled) and feeds its
        function's recent run time; ``STARTED`` starts the first job's timeout clock, or kills
        the worker if that job was cancelled meanwhile (the ``CANCEL`` came too late);
        ``SKIPPED`` drops a cancelled job that never ran. An idle worker is retired when the
        pool closes or the worker has reached ``max_tasks_per_child``.
        """
        if event.gen != slot.gen:
            return
        slot.ready = True
        for report in event.reports:
            kind = report[0]
            if kind == DONE:
                job = slot.inflight.popleft()
                slot.unread -= job.size
                fn, secs = job.fn, report[4]
                fn.ewma = secs if fn.ewma is None else 0.7 * fn.ewma + 0.3 * secs
                if not job.cancelled:
                    job.finish(report[2], report[3])
            elif kind == STARTED:
                job = slot.inflight[0]
                slot.unread -= job.size
                job.size = 0
                job.started = True
                if job.cancelled:  # the CANCEL came too late: it runs, so kill it
                    self._kill(slot)
                elif job.attempt.timeout is not None:
                    job.attempt.restart_clock()
            elif kind == SKIPPED:
                job = slot.inflight.popleft()
                slot.unread -= job.size
        if not slot.inflight and (self.closing or (
                self._max_tasks is not None and slot.sent >= self._max_tasks)):
            self._retire(slot)

    def _on_death(self, slot: Slot, event: Dead) -> None:
        """A slot's worker died (all it wrote was handled first): settle the jobs it held.

        The job it was running fails with `WorkerCrashedError` (`.jobs.crash_error` says why);
        those it had not started go back to the front of ``_pending``, in order. The death is a
        crash unless the pool killed the worker, or it exited cleanly with no job lost (retired).
        The supervisor launches the slot's replacement, unless the pool is closing.
        """
        if event.gen != slot.gen:
            return
        lost = False
        requeue = []
        for job in slot.inflight:
            if job.cancelled:
                continue
            if job.started:
                lost = True
                job.finish(False, crash_error(job, event.pid, event.exitcode, slot.killed, slot.ready))
            else:
                requeue.append(job)
        self._pending.extendleft(reversed(requeue))
        if not slot.killed and (lost or event.exitcode != 0):
            self.crashed += 1
        slot.vacate(relaunch=not self._supervisor.closing)  # the supervisor launches the replacement

    def _on_spawn_failed(self, event: SpawnFailed) -> None:
        """A launch failed: try the slot again on demand after a pause; with no worker, fail the jobs."""
        slot = self._slots[event.slot]
        slot.starting = slot.used = False  # on demand again, after a pause
        slot.retry_at = time.monotonic() + RETRY_LAUNCH_AFTER
        self._launch_error = event.error
        logger.warning("osiiso: could not start a worker process: %r", event.error)
        if not any(s.conn is not None or s.starting for s in self._slots):
            self._fail_pending(event.error)  # no worker at all: fail rather than wait forever

    def _fail_pending(self, exc: BaseException) -> None:
        """Fail every job still waiting for a worker: none can start (``exc`` says why)."""
        while self._pending:
            self._pending.popleft().finish(False, no_worker_error(exc))

    # -- closing -------------------------------------------------------------------
    def kill_now(self) -> None:
        """Kill every worker now, from any thread (the queue was garbage-collected)."""
        self.closing = True
        if not self._supervisor.close_unstarted():
            self._supervisor.kill_all()

    def outstanding(self) -> int:
        """Jobs not finished with: waiting for a worker or held by one."""
        return len(self._pending) + sum(len(s.inflight) for s in self._slots)

    async def aclose(self, force: bool) -> None:
        """Close the pool: wait for the jobs (or, with ``force``, kill the workers and fail them
        with `forced_close_error`), retire every worker and wait for the supervisor to end."""
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
