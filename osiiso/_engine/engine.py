"""`Engine`: where every task of one queue waits, is handed to a worker, retries and ends.

One engine serves every backend (``docs/internals.md`` draws it). It owns the places a task
can be in and every counter about them: admission (`admit`: waiting on dependencies, on the
timer heap, or ready in its backend's `Lane`), handing out worker slots (`dispatch`, the only
place that gives one out, and `next_task`, its fast path for a worker that just finished),
retries (`retry`), results (`finish`, the only place that makes a `TaskResult`) and
cancellation (`cancel`). Workers (`osiiso._engine.worker`) run the attempts; the `Service`
runs the workers; a `Run` is one ``run()`` watching the engine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from .._events import enabled, osiiso_logger
from .._handle import RUNNING, WAITING, TaskHandle
from .._results import TaskResult, TaskStatus
from ..backends import backend_class
from ..backends.base import Backend, BackendConfig
from .attempts import close_attempt, outcome_of
from .deps import MAY_HOLD_HANDLES, dependencies_of
from .direct import Deadlines, Direct
from .events import retrying
from .held import Held
from .hooks import is_async_hook
from .kept import new_results
from .lanes import Lane
from .ratelimit import RateLimiter
from .records import Records
from .text import describe
from .timers import Timers
from .worker import Worker

if TYPE_CHECKING:
    from .._loops import LoopCaller
    from .run import Run
    from .service import Service

__all__ = ("Engine",)

logger = osiiso_logger
Hook = Callable[..., object]

def engine_failure(cause: BaseException) -> RuntimeError:
    """The error a task ends with when the engine itself failed while it held the task."""
    error = RuntimeError(f"osiiso's engine failed while this task was in it ({describe(cause)}); the task "
                         "did not finish — this is a bug in osiiso: please report it with the logged traceback")
    error.__cause__ = cause
    return error


#: one dispatch starts at most this many workers or direct attempts, then goes on next turn (so they run)
_START_BATCH = 32


class Engine(Records, Held, Direct):
    """Task bookkeeping and slot hand-out, shared by every backend of one queue."""

    def __init__(self, config: BackendConfig, *, rate: float | None, burst: int,
                 on_start: Hook | None, on_retry: Hook | None, on_complete: Hook | None,
                 keep_results: int | None = None) -> None:
        from .service import Service

        self.config = config
        self.workers = config.workers
        self.lanes: dict[str, Lane] = {}
        # the same lanes as a tuple, replaced (never changed) when a lane is added: the loop
        # thread iterates it while other threads may add lanes (iterating the dict would fail)
        self.lane_list: tuple[Lane, ...] = ()
        self._lane_lock = threading.Lock()
        self.timers = Timers()
        self.deadlines = Deadlines(self.timers)  # of direct attempts (`osiiso._engine.direct`)
        self.limiter = RateLimiter(rate, burst) if rate else None
        self.on_start, self.on_retry, self.on_complete = on_start, on_retry, on_complete
        #: a plain ``on_start`` fires at the attempt's real start where reported (`Worker.attempt_began`)
        self.start_on_begin = on_start is not None and not is_async_hook(on_start)
        self.running = 0  # queue-wide slots taken (at most `workers`): the sum of `Lane.slots`
        self.held = 0  # tasks handed to a worker that their backend holds in a batch (`batched`)
        self.log_tasks = enabled("start")  # DEBUG start/finish events: asked again when the service or a run starts
        self.outstanding = 0  # tasks without a result
        self.keep_results = keep_results  # how many results to keep; None: every one
        # every result since the last clear (queue.results); the newest `keep_results` if bounded
        self.results: list[TaskResult] = new_results(keep_results)
        self.run: Run | None = None  # the run in progress, if any
        self.waiting: set[TaskHandle[Any]] = set()
        self.crew: set[Worker] = set()  # every live worker
        self.idle_waiters: list[anyio.Event] = []
        self.room_waiters: deque[anyio.Event] = deque()
        self.hook_scopes: set[anyio.CancelScope] = set()  # spawned async hooks, cut at a run's limit
        self.hooks_cut = False  # a run's limit passed: hooks that begin now are cancelled at once
        self.hooks_running = 0  # on_complete hooks being awaited (by workers, or spawned)
        self.hook_outcomes: set[Any] = set()  # what spawned async hooks returned, until awaited
        self.dispatch_wanted = False  # a dispatch is asked of the service's loop task
        self.dispatch_at: float | None = None  # monotonic time the rate limiter allows the next start
        self.stopping = False
        self.broken: BaseException | None = None  # what killed the service (an engine failure), until restarted
        #: how other threads reach the loop of the running service (``None`` when stopped)
        self.caller: LoopCaller | None = None
        # while `_settle` runs: the dependents still to settle (so `finish` never recurses)
        self._settling: list[tuple[TaskHandle[Any], list[TaskHandle[Any]]]] | None = None
        self.service: Service = Service(self)

    # -- lanes -----------------------------------------------------------------------------
    def lane(self, name: str) -> Lane:
        """The lane of backend ``name``, created (and opened, if the service runs) on first use.

        Any thread may be first: creation holds a lock, so when several threads submit their
        first task of a backend at once, one lane is made and every thread gets it.
        """
        lane = self.lanes.get(name)
        if lane is not None:
            return lane
        with self._lane_lock:
            lane = self.lanes.get(name)
            if lane is None:
                backend: Backend = backend_class(name)(self.config)
                lane = Lane(backend)
                lane.direct = backend.direct and self.on_start is None and self.on_retry is None \
                    and self.on_complete is None  # a hook is awaited: that takes a coroutine
                self.lanes[name] = lane
                self.lane_list = (*self.lane_list, lane)
                self.service.open_later(lane)
        return lane

    def forget_lanes(self) -> None:
        """Drop every lane (a reset queue makes new ones on first use)."""
        with self._lane_lock:
            self.lanes.clear()  # in place: the queue's finalizer holds this dict
            self.lane_list = ()

    def opened(self, lane: Lane) -> None:
        """``lane``'s backend has started: its tasks may be handed out (a task of the service)."""
        lane.open = True
        if self.config.workers_auto:  # a cluster's slots come on top of this machine's
            self.workers = self.config.workers + sum(
                other.backend.capacity for other in self.lane_list if other.open and other.backend.remote)
        lane.cap, lane.parallel = min(lane.backend.capacity, self.workers), lane.backend.parallel
        self.dispatch()

    def closed(self) -> None:
        """The service stopped: no lane is open and no worker is left (ready tasks stay)."""
        self.dispatch_wanted = False
        self.dispatch_at = None
        for lane in self.lane_list:
            lane.open = False
            lane.workers = lane.cap = lane.held = 0
            lane.idle.clear()

    # -- admission -------------------------------------------------------------------------
    def admit(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Place a new task: waiting on dependencies, on the timer heap, or ready."""
        args, kwargs = handle._args, handle._kwargs
        # one argument (the usual fan-out) is one set lookup, with no map object to allocate
        if (args and (type(args[0]) in MAY_HOLD_HANDLES if len(args) == 1
                      else not MAY_HOLD_HANDLES.isdisjoint(map(type, args)))) or (
                kwargs and not MAY_HOLD_HANDLES.isdisjoint(map(type, kwargs.values()))):
            deps = dependencies_of(handle)  # first: it refuses a handle of another queue
            if deps:
                self.outstanding += 1
                lane.queued += 1
                self._wait_for(handle, deps)
                return
        self.outstanding += 1
        lane.queued += 1
        options = handle._options
        if options.delay is not None or options.run_at is not None:
            self.schedule_or_ready(handle, lane)
            return
        lane.push(handle)  # `make_ready`, inline on this per-submit path
        if (self.running < self.workers or lane.held) and not self.dispatch_wanted:
            self.dispatch_wanted = True
            self.timers.poke()

    def _wait_for(self, handle: TaskHandle[Any], deps: list[TaskHandle[Any]]) -> None:
        handle._where = WAITING
        self.waiting.add(handle)
        handle._deps = len(deps)
        for dep in deps:
            if dep._result is not None:  # it ended before this task was submitted
                self._settle(dep, [handle])
                continue
            if dep._dependents is None:
                dep._dependents = []
            dep._dependents.append(handle)

    def schedule_or_ready(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Hold ``handle`` on the timer heap until its ``delay``/``run_at``, or make it ready now."""
        options = handle._options
        if options.delay is not None or options.run_at is not None:
            start = options.delay if options.delay is not None else options.run_at - time.time()  # type: ignore[operator]
            if start > 0:
                self.timers.schedule(handle, time.monotonic() + start)
                return
        self.make_ready(handle, lane)

    def make_ready(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Put ``handle`` in its lane; if a slot is free, ask for one dispatch on the loop's next turn.

        A burst of submissions is therefore dispatched together, most urgent first.
        """
        lane.push(handle)
        if (self.running < self.workers or lane.held) and not self.dispatch_wanted:
            self.dispatch_wanted = True
            self.timers.poke()

    # -- handing out slots -----------------------------------------------------------------
    def urgent_lane(self, free: Lane | None = None) -> Lane | None:
        """The lane whose next ready task comes first queue-wide, among lanes that could run it now.

        "First" is the queue-wide order: lower ``priority``, then earlier submission. A lane can
        run a task when it has room under its cap and a worker to give it to (a parked one, one it
        may still start, or the free worker of lane ``free``). A lane still opening competes too:
        when its task comes first, the caller waits for it to open rather than give the slot away.
        """
        best: Lane | None = None
        best_key: tuple[int, int] | None = None
        for lane in self.lane_list:
            if not lane.size:
                continue
            if lane.open and (lane.running >= lane.cap or lane.batches_full() or (
                    lane is not free and not lane.idle and lane.busy >= lane.cap)):
                continue
            head = lane.peek()
            if head is None:
                continue
            key = (head._options.priority, head._seq)
            if best_key is None or key < best_key:
                best, best_key = lane, key
        return best

    def dispatch(self) -> None:
        """Hand each free slot to the most urgent ready task of any lane with room.

        The only place that gives out slots. The task goes, at that moment, to the worker that
        will run it: a parked worker of its lane, or a new one started with the task in hand.
        Runs in a task of the service (its loop task, a worker, a lane opening).
        """
        self.dispatch_wanted = False
        if self.stopping:
            return
        start = self.service.start_worker
        started = 0
        while True:
            lane = self.urgent_lane()
            if lane is None or not lane.open or (self.running >= self.workers and not lane.takes_more()):
                return
            idle = lane.idle
            if not idle and started >= _START_BATCH:
                self.dispatch_wanted = True  # the rest on the loop's next turn
                self.timers.poke()
                return
            if self.limiter is not None and not self._rate_allows():  # without a limiter, no call per task
                return
            handle = lane.pop()
            assert handle is not None
            if lane.direct:  # no worker task to start or wake: the attempt starts here
                self.begin_direct(lane, handle)
                started += 1
            elif idle:
                worker = idle.pop()
                self._hand(lane, handle, worker)
                worker.wake()
            else:
                worker = Worker(self, lane)
                lane.workers += 1
                self.crew.add(worker)
                self._hand(lane, handle, worker)
                start(worker)
                started += 1

    def next_task(self, worker: Worker) -> None:
        """``worker``'s attempt ended: hand it its lane's next task, or park it.

        The worker keeps its own lane's head when that is the most urgent task anywhere (with
        one lane, always); otherwise it parks and the free slot is dispatched.
        """
        lane = worker.lane
        if self.keeps_lane(lane):
            handle = lane.pop()
            if handle is not None:
                self._hand(lane, handle, worker)
                return
        worker.current = None
        lane.idle.append(worker)
        if self.running < self.workers or self.held:
            self.dispatch()

    def keeps_lane(self, lane: Lane) -> bool:
        """Whether a worker of ``lane`` whose attempt ended takes its lane's next ready task now:
        a slot is free, and that task is the most urgent anywhere (with one lane, always)."""
        return bool(lane.size and (self.running < self.workers or lane.takes_more()) and lane.running < lane.cap
                    and not 0 < lane.held >= lane.backend.batch_limit  # `Lane.batches_full`, inline
                    and not self.stopping and (len(self.lane_list) == 1 or self.urgent_lane(lane) is lane)
                    and (self.limiter is None or self._rate_allows()))

    def _hand(self, lane: Lane, handle: TaskHandle[Any], worker: Worker) -> None:
        """``handle`` takes a slot and goes to ``worker``."""
        self.running += lane.running + lane.held < lane.parallel  # none when `Lane.takes_more`
        lane.running += 1
        lane.queued -= 1
        handle._where, handle._slot, worker.current = RUNNING, worker, handle

    def _rate_allows(self) -> bool:
        """Whether the rate limiter lets one more attempt start now (it is then counted)."""
        limiter = self.limiter
        if limiter is None:
            return True
        now = time.monotonic()
        wait = limiter.wait(now)
        if wait > 0:
            self.dispatch_at = now + wait
            self.timers.poke()
            return False
        limiter.take(now)
        return True

    def retire(self, worker: Worker) -> None:
        """``worker`` returns: uncount it; a task it still holds ends cancelled (the service stopped)."""
        worker.lane.workers -= 1
        self.crew.discard(worker)
        if worker in worker.lane.idle:
            worker.lane.idle.remove(worker)
        handle = worker.current
        if handle is not None and handle._where is RUNNING:
            if self.broken is not None:
                self.finish(handle, TaskStatus.FAILED, None, engine_failure(self.broken), None)
            else:
                self.finish_cancelled(handle, handle._cancel_reason or "cancelled: the queue stopped while it ran")

    def stop_all(self, reason: str) -> None:
        """Cancel every unfinished task and end the run in progress (``queue.cancel()``, SIGTERM)."""
        self.cancel_all(reason, spare_must_complete=False)
        if self.run is not None:
            self.run.end()

    # -- when the engine itself fails ------------------------------------------------------
    def broke(self, exc: BaseException) -> None:
        """The engine's own code raised ``exc`` in a task of the service: stop the service.

        Every task the service held then ends failed with ``exc`` attached (`retire`, `rescue`),
        and the run returns. Never a task's own error: workers catch those.
        """
        if self.broken is None:
            self.broken = exc
            if self.run is not None:
                self.run.broken = exc
            logger.error("osiiso: the queue's engine failed; the tasks it holds end failed with this error",
                         exc_info=(type(exc), exc, exc.__traceback__))
        tg = self.service.task_group
        if tg is not None:
            tg.cancel_scope.cancel()

    def rescue(self) -> None:
        """The service died of `broken`: record every task it held as failed; counters start over."""
        error = self.broken
        assert error is not None
        for handle in self.unfinished():
            self.unplace(handle)
            try:
                self.finish(handle, TaskStatus.FAILED, None, engine_failure(error), None)
            except BaseException:  # pragma: no cover - the recording itself is what fails
                logger.exception("osiiso: could not record %r after the engine failed", handle)
        self.drop_hooks()  # the async on_complete hooks of those results: the service is gone
        # whatever the failure left half-counted: nothing is held any more
        self.running = self.outstanding = self.hooks_running = self.held = 0
        for lane in self.lane_list:
            lane.running = lane.queued = lane.retrying = lane.held = 0
        self.waiting.clear()
        self.crew.clear()
        for event in self.room_waiters:
            event.set()
        self.room_waiters.clear()
        if self.run is not None:
            self.run.end()
        self.check_idle()

    # -- retries and outcomes --------------------------------------------------------------
    def retry(self, handle: TaskHandle[Any], delay: float, cause: BaseException) -> None:
        """A failed attempt of ``handle`` (it raised ``cause``) will be tried again after ``delay`` seconds."""
        lane = self.lanes[handle._backend]
        self.release(lane, handle._slot)
        lane.queued += 1
        now = time.time()
        handle._timings = (*handle._timings,
                           close_attempt(handle, outcome_of(TaskStatus.FAILED, cause), cause, now))
        handle._attempt_at = None
        handle._ready_at = now  # without a delay; with one, when it is due (`Service`)
        retrying(handle, delay, cause)
        if delay > 0:
            self.timers.schedule(handle, time.monotonic() + delay)
        else:
            self.make_ready(handle, lane)
