"""Direct attempts: tasks of a backend that reports each outcome by callback, run without a coroutine.

A lane is *direct* when its backend can start an attempt from plain code and call back when it
has an outcome (`osiiso.backends.base.Backend.direct`: the process and thread pools), and the queue has no
``on_start``, ``on_retry`` or ``on_complete`` hook (a hook is awaited, which needs a coroutine).
The engine hands a task of such a lane to a `DirectWorker`: a worker object, as `Records.finish`
and the counters expect, but no task of the event loop. `Direct.begin_direct` starts the attempt
(`Backend.begin`); the backend calls `DirectWorker.ended` on the loop thread with its outcome,
which is recorded there (`osiiso._engine.worker.fail_now` for a failure), and the worker takes
its lane's next task at once, as a coroutine worker would (`Direct.direct_next`).

What a coroutine worker's cancel scope does is done here by hand:

* a timeout is a `Deadlines` entry, set when the attempt really starts (`Worker.restart`),
  served by the service's loop task (`Direct.expire`); an attempt past it is stopped
  (`Backend.abort`) and fails with `osiiso._engine.worker.timeout_error`, retried as usual;
* ``cancel()`` of a running task stops its attempt and records it cancelled at once
  (`DirectWorker.interrupt`); the freed slot is dispatched on the loop's next turn;
* when the service stops, every attempt still running is stopped and its task ends
  cancelled (`Direct.stop_direct`), as `Engine.retire` does for a coroutine worker's.

Saving a coroutine, its cancel scope, a future and a wake-up per task is what lets the process
backend's batches run thousands of tiny tasks a second per core (``docs/internals.md``).
"""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

from .._handle import RUNNING, TaskHandle
from .._results import TaskStatus
from ..backends.base import Attempt
from .worker import Worker, begin_attempt, fail_now, timeout_error

if TYPE_CHECKING:
    from .lanes import Lane
    from .run import Run
    from .timers import Timers

__all__ = ("Deadlines", "Direct", "DirectWorker")

_SUCCEEDED = TaskStatus.SUCCEEDED


class DirectWorker(Worker):
    """A worker that is no task: it holds one direct attempt at a time, ended by its backend's callback."""

    __slots__ = ("attempt", "due", "ticket")

    def __init__(self, engine: Any, lane: Lane) -> None:
        super().__init__(engine, lane)
        self.attempt = Attempt(None, (), {}, 0, None, None, self)  # refilled per attempt
        self.ticket: Any = None  # what the backend's `begin` returned, until the attempt ends
        self.due: float | None = None  # the monotonic deadline of the running attempt, if any

    def hold(self, handle: TaskHandle[Any]) -> None:
        """The backend queues the attempt before running it: no deadline until `restart`."""
        if self.current is handle:
            self.due = None

    def set_deadline(self, handle: TaskHandle[Any], timeout: float) -> None:
        self.due = due = time.monotonic() + timeout
        self.engine.deadlines.add(due, self, handle)

    def interrupt(self) -> None:
        """``cancel()`` of the running task: stop its attempt and record it cancelled now."""
        handle, ticket = self.current, self.ticket
        if handle is None or ticket is None:
            return
        self.ticket = self.due = None
        self.lane.backend.abort(ticket)
        engine = self.engine
        engine.finish_cancelled(handle, handle._cancel_reason or "cancelled")
        engine.spare(self)
        engine.want_dispatch()  # not here: `cancel_all` may be cancelling the next ready task right now

    def ended(self, ticket: Any) -> None:
        """The backend's callback (loop thread): the attempt behind ``ticket`` has an outcome."""
        if ticket is not self.ticket:
            return  # an attempt stopped meanwhile (it was aborted): its outcome no longer counts
        self.ticket = self.due = None
        engine = self.engine
        try:
            handle = self.current
            if handle is None or handle._where is not RUNNING:  # recorded already (the engine failed)
                engine.spare(self)
                return
            try:
                value = self.lane.backend.outcome(ticket)
            except BaseException as exc:  # the attempt's own failure
                fail_now(engine, handle, exc)
            else:
                engine.finish(handle, _SUCCEEDED, value, None, None)
            engine.direct_next(self)
        except BaseException as exc:  # a failure in the engine's bookkeeping: the service stops
            engine.broke(exc)


class Deadlines:
    """The deadlines of running direct attempts, soonest first (monotonic times); stale ones are skipped."""

    __slots__ = ("counter", "heap", "timers")

    def __init__(self, timers: Timers) -> None:
        self.heap: list[tuple[float, int, DirectWorker, TaskHandle[Any]]] = []
        self.counter = 0
        self.timers = timers

    def add(self, due: float, worker: DirectWorker, handle: TaskHandle[Any]) -> None:
        heap = self.heap
        if not heap or due < heap[0][0]:
            self.timers.poke()  # the loop task sleeps until its soonest due time: wake it to recompute
        self.counter += 1
        heapq.heappush(heap, (due, self.counter, worker, handle))

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def pop_due(self, now: float) -> list[tuple[DirectWorker, TaskHandle[Any]]]:
        """The attempts whose deadline has passed by ``now`` and still run (an entry is live while
        its worker holds the task with that very deadline)."""
        due = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            when, _, worker, handle = heapq.heappop(heap)
            if worker.current is handle and worker.due == when and handle._where is RUNNING:
                due.append((worker, handle))
        return due


class Direct:
    """Running direct attempts (a base of `osiiso._engine.engine.Engine`, beside `Records` and `Held`)."""

    # state set up by `Engine.__init__`, and methods of `Engine` and `Records`
    running: int
    held: int
    workers: int
    stopping: bool
    dispatch_wanted: bool
    crew: set[Worker]
    lane_list: tuple[Lane, ...]
    timers: Timers
    deadlines: Deadlines
    run: Run | None

    def _hand(self, lane: Lane, handle: TaskHandle[Any], worker: Worker) -> None:
        raise NotImplementedError

    def keeps_lane(self, lane: Lane) -> bool:
        raise NotImplementedError

    def finish_cancelled(self, handle: TaskHandle[Any], reason: str, cause: BaseException | None = None) -> None:
        raise NotImplementedError

    def begin_direct(self, lane: Lane, handle: TaskHandle[Any]) -> None:
        """Hand ``handle`` to a direct worker of ``lane`` (a spare one, or a new one) and start it."""
        spare = lane.spare
        worker = spare.pop() if spare else DirectWorker(self, lane)
        self.crew.add(worker)
        self._hand(lane, handle, worker)
        self._begin(worker, handle)

    def _begin(self, worker: DirectWorker, handle: TaskHandle[Any]) -> None:
        """Start the next attempt of ``handle``, which ``worker`` holds (what `_serve` does, without awaiting)."""
        number = begin_attempt(self, handle)  # type: ignore[arg-type]
        attempt = worker.attempt
        options = handle._options
        timeout = options.timeout
        attempt.fn, attempt.args, attempt.kwargs = handle._fn, handle._args, handle._kwargs
        attempt.number, attempt.timeout, attempt._task = number, timeout, handle
        attempt.name, attempt.seq, attempt.priority = handle._name, handle._seq, options.priority
        worker.due = None
        if timeout is not None:
            worker.set_deadline(handle, timeout)  # from the hand-over; the backend may hold and restart it
        try:
            worker.ticket = worker.lane.backend.begin(attempt, worker.ended)
        except BaseException as exc:  # it could not start (its arguments do not pickle…): its failure
            worker.ticket = worker.due = None
            fail_now(self, handle, exc)  # type: ignore[arg-type]
            if worker.current is handle:  # not retried at once on it: no recursion through failing starts
                self.spare(worker)
                if self.running < self.workers or self.held:
                    self.want_dispatch()

    def direct_next(self, worker: DirectWorker) -> None:
        """``worker``'s attempt ended: start its lane's next task on it, as `Engine.next_task` does."""
        lane = worker.lane
        if self.keeps_lane(lane):
            handle = lane.pop()
            if handle is not None:
                self._hand(lane, handle, worker)
                self._begin(worker, handle)
                return
        self.spare(worker)
        if self.running < self.workers or self.held:
            self.want_dispatch()

    def spare(self, worker: DirectWorker) -> None:
        """``worker`` holds nothing any more: keep it for its lane's next direct task."""
        worker.current = None
        self.crew.discard(worker)
        worker.lane.spare.append(worker)

    def want_dispatch(self) -> None:
        """Ask the service's loop task for a dispatch (a plain callback cannot start coroutine workers)."""
        if not self.dispatch_wanted and any(lane.size for lane in self.lane_list):
            self.dispatch_wanted = True
            self.timers.poke()

    def expire(self, now: float) -> None:
        """Fail the direct attempts past their deadline (the service's loop task, at their due time)."""
        for worker, handle in self.deadlines.pop_due(now):
            ticket, worker.ticket, worker.due = worker.ticket, None, None
            if ticket is not None:
                worker.lane.backend.abort(ticket)
            if handle._cancel_reason is not None:
                self.finish_cancelled(handle, handle._cancel_reason)
            else:
                fail_now(self, handle, timeout_error(handle))  # type: ignore[arg-type]
            self.direct_next(worker)

    def stop_direct(self) -> None:
        """The service stops: stop every direct attempt still running; its task ends cancelled."""
        for worker in [w for w in self.crew if isinstance(w, DirectWorker)]:
            handle, ticket = worker.current, worker.ticket
            worker.ticket = worker.due = None
            if ticket is not None:
                worker.lane.backend.abort(ticket)
            if handle is not None and handle._where is RUNNING:
                self.finish_cancelled(handle, handle._cancel_reason or "cancelled: the queue stopped while it ran")
            self.spare(worker)
        self.deadlines.heap.clear()
        for lane in self.lane_list:  # the spares go: each and its attempt refer to each other, and the
            for worker in lane.spare:  # attempt to its last task, whose engine a cycle would keep alive
                worker.attempt = None
            lane.spare.clear()
