"""A worker: runs the attempts of the tasks the engine hands it, one at a time, in its cancel scope.

A worker is started with a task in hand (`Engine.dispatch`), runs one attempt through its
backend, records the outcome (success, failure, retry, interruption) through the engine, and
asks for its next task (`Engine.next_task`); with none, it parks until the engine hands it
one. It owns one anyio cancel scope and runs attempt after attempt inside it: for an attempt
with a timeout the scope's deadline is set, and reset after; cancelling a running task
cancels the scope, after which the worker records the outcome and opens a fresh one. Tasks
without a timeout or a cancel never pay for a scope of their own. Counters are the engine's:
this module changes none.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._errors import TaskTimeoutError
from .._handle import RUNNING, TaskHandle
from .._loops import Waiter, is_cancellation, waiter_for_running_loop
from .._results import TaskResult, TaskStatus
from ..backends.base import Attempt, CancelledElsewhere
from .events import started, timed_out
from .hooks import call_hook, is_cancelled_here, is_stopped_from_outside, spawn_hook, take_back_own_cancel
from .text import describe, text_of

if TYPE_CHECKING:
    from .engine import Engine
    from .lanes import Lane

__all__ = ("Worker", "run_worker")

_RUNNING, _SUCCEEDED = TaskStatus.RUNNING, TaskStatus.SUCCEEDED

#: a worker yields to the event loop at least once per this many tasks
_YIELD_EVERY = 64
MAX_RETRY_DELAY = 86_400.0  #: the longest retry delay (seconds): a big ``backoff`` grows no further


class Worker:
    """One worker of a lane: the task it holds (``current``), its cancel scope, its parking event."""

    __slots__ = ("began", "current", "engine", "held", "in_hook", "lane", "logged", "loop_start", "parked", "parker",
                 "scope", "start_due", "waiter", "where")

    def __init__(self, engine: Engine, lane: Lane) -> None:
        self.engine = engine
        self.lane = lane
        self.scope: anyio.CancelScope | None = None
        self.current: TaskHandle[Any] | None = None  # handed by the engine, until its outcome is recorded
        #: parking: the loop's waiter kind (`osiiso._loops.waiter_for_running_loop`, set by `run_worker`),
        #: what it parks on (a loop future, or the parked trio task), and whether it is parked now
        self.parker: Waiter | None = None
        self.waiter: Any = None
        self.parked = False
        self.loop_start = 0.0
        self.began = 0.0
        self.in_hook = False  # awaiting an on_complete hook (`Records.complete`)
        #: where the current attempt runs, for its `AttemptTiming`: its backend's name (`begin_attempt`), or `ran_on`'s
        self.where = lane.backend.name
        self.held = False  # its task's attempt waits in a batch of its backend: no slot held (`Engine.batched`)
        self.start_due = False  # the attempt's on_start waits for its real start (`attempt_began`)
        self.logged = (0, 0)  # (task number, attempt) of the last start event `attempt_began` logged

    def wake(self) -> None:
        """The engine handed this parked worker a task (or the service stops): resume it."""
        if self.parked:
            self.parked = False
            assert self.parker is not None
            self.parker.wake(self)

    def hold(self, handle: TaskHandle[Any]) -> None:
        """The backend queues ``handle``'s attempt before running it: no deadline meanwhile."""
        if self.current is handle and self.scope is not None and handle._options.timeout is not None:
            self.scope.deadline = math.inf

    def batch(self, handle: TaskHandle[Any]) -> bool:
        """The backend asks to queue ``handle``'s attempt in a batch behind others: if granted, its slot
        goes back (`Engine.batched`). Refused when ``on_start`` fired already (an async hook, or a
        backend that does not report starts): the task would start later than its hook said."""
        if self.engine.on_start is not None and not self.start_due:
            return False
        return self.current is handle and self.engine.batched(self)

    def hooking(self, entering: bool) -> None:
        """It awaits an ``on_complete`` hook (``entering``), or no longer does: its lane counts it
        apart from the workers that take its cap (`Lane.busy`)."""
        self.in_hook = entering
        self.lane.hooking += 1 if entering else -1

    def attempt_began(self, handle: TaskHandle[Any]) -> None:
        """The backend says ``handle``'s attempt really begins now: its ``start`` event is logged
        (`begin_attempt` leaves it to this call on such a backend) and its deferred ``on_start`` fires.
        Each once per attempt: one cut short by no fault of its own begins again (`Slot.settle`)."""
        if self.current is handle:
            if self.engine.log_tasks and self.logged != (handle._seq, handle._attempts):
                self.logged = (handle._seq, handle._attempts)
                started(handle)
            if self.start_due:  # `fire_start`'s own test, inline: most attempts have no on_start due
                self.fire_start(handle)

    def fire_start(self, handle: TaskHandle[Any]) -> None:
        """Fire the attempt's deferred ``on_start`` now, if it has not fired (at the attempt's real
        start, or as an attempt that never began ends, before its ``on_retry`` or ``on_complete``)."""
        if self.start_due:
            self.start_due = False
            assert self.engine.on_start is not None
            spawn_hook(self.engine, self.engine.on_start, (handle,))

    def restart(self, handle: TaskHandle[Any], at: float | None = None) -> None:
        """The backend says ``handle``'s attempt starts only now, or began at wall time ``at`` (it
        waited for a worker).

        The attempt's timing starts there; with a timeout, or for an attempt its backend holds
        in a batch (`held`), the task's ``started_at`` too, and a timeout's deadline.
        May run in a plain loop callback, where anyio cannot read the loop's clock; the
        loop clock and ``time.monotonic()`` advance together, so the deadline is derived.
        """
        if self.current is not handle:
            return
        now = time.time()
        began = handle._attempt_at = now if at is None or at > now else at  # its timing counts from the real start
        timeout = handle._options.timeout
        if timeout is None and not self.held:  # started_at stays the hand-out, which the rate limit spaces
            return
        if handle._attempts == 1:
            handle._started_at = began
        if timeout is not None:
            self.set_deadline(handle, timeout - (now - began))

    def set_deadline(self, handle: TaskHandle[Any], timeout: float) -> None:
        """``handle``'s attempt must end ``timeout`` seconds from now (its real start, `restart`)."""
        if self.scope is not None:
            self.scope.deadline = self.loop_start + (time.monotonic() - self.began) + timeout

    def interrupt(self) -> None:
        """Stop the running attempt of the task this worker holds (a cancel): its scope is cancelled,
        and the worker records the outcome."""
        if self.scope is not None:
            self.scope.cancel()

    def ran_on(self, handle: TaskHandle[Any], where: str) -> None:
        """The backend names the place (``"thread/3"``) where ``handle``'s attempt runs."""
        if self.current is handle:
            self.where = where


_STOP, _FRESH_SCOPE = "stop", "fresh scope"


async def run_worker(worker: Worker) -> None:
    """Run the tasks handed to ``worker`` until the service stops (started with one in hand)."""
    engine = worker.engine
    worker.parker = waiter_for_running_loop()
    try:
        while True:
            outcome = None
            with anyio.CancelScope() as scope:
                worker.scope = scope
                outcome = await _serve(engine, worker, scope)
            if outcome is _STOP:
                return
            if outcome is _FRESH_SCOPE:  # its scope was cancelled, but the attempt had ended anyway
                continue
            handle = worker.current  # the scope was cancelled for this task: a timeout or a cancel
            if handle is not None and handle._where is RUNNING:
                worker.fire_start(handle)
                await _interrupted(engine, handle)
            engine.next_task(worker)
    except BaseException as exc:
        if not is_stopped_from_outside(exc, unsure=True):  # engine code raises no CancelledError of its own
            # a failure in the engine's own bookkeeping, never the task's (its exceptions are caught
            # above): the service stops, and every task it held ends failed with this error attached
            engine.broke(exc)
            return
        raise
    finally:
        engine.retire(worker)


async def _park(engine: Engine, worker: Worker) -> bool:
    """Wait, parked, until the engine hands ``worker`` a task; ``False`` when the service stops."""
    if worker.current is not None:
        return True
    if engine.stopping or engine.surplus(worker):
        return False  # the service stops, or the worker of a batched task is one too many
    parker = worker.parker
    assert parker is not None
    parker.prepare(worker)  # a loop future, or the task itself on trio: cheaper than an anyio.Event
    worker.parked = True
    try:
        await parker.wait(worker)
    finally:
        worker.parked = False
        worker.waiter = None
        if worker.current is None:
            engine.unpark(worker)
    return worker.current is not None


async def _serve(engine: Engine, worker: Worker, scope: anyio.CancelScope) -> str:
    lane = worker.lane
    run = lane.backend.run
    cancellations = (anyio.get_cancelled_exc_class(), asyncio.CancelledError)
    checkpoint = anyio.lowlevel.checkpoint
    attempt = Attempt(None, (), {}, 0, None, None, worker)  # one per worker, refilled per attempt
    streak = 0
    while True:
        handle = worker.current
        if handle is None:
            streak = 0
            if not await _park(engine, worker):
                return _STOP
            continue
        if handle._cancel_reason is not None:  # cancelled after it was handed over, before it began
            engine.finish_cancelled(handle, handle._cancel_reason)
            engine.next_task(worker)
            return _FRESH_SCOPE  # that cancel hit this scope
        streak += 1
        if streak >= _YIELD_EVERY:
            # tasks that finish without suspending would otherwise hold the loop for the
            # whole run: timers, run timeouts and other tasks get a turn now and then
            streak = 0
            await checkpoint()
        number = begin_attempt(engine, handle)
        # a plain on_start fires when the backend says the attempt begins (`Worker.attempt_began`)
        worker.start_due = engine.start_on_begin and lane.backend.reports_starts
        if engine.on_start is not None and not worker.start_due:
            await call_hook(engine.on_start, handle)
        timeout = handle._options.timeout
        if timeout is not None:
            worker.loop_start = anyio.current_time()
            worker.began = time.monotonic()
            scope.deadline = worker.loop_start + timeout
        attempt.fn, attempt.args, attempt.kwargs = handle._fn, handle._args, handle._kwargs
        attempt.number, attempt.timeout, attempt._task = number, timeout, handle
        attempt.name, attempt.seq, attempt.priority = handle._name, handle._seq, handle._options.priority
        try:
            value = await run(attempt)
        except BaseException as exc:
            if isinstance(exc, cancellations) and (
                    scope.cancel_called or engine.stopping or is_cancelled_here(exc) or engine.service.torn_down()):
                raise  # this worker is cancelled (a timeout, a cancel, the service stops): run_worker records it
            take_back_own_cancel(exc)  # the task cancelled its own asyncio task: that is its outcome
            worker.fire_start(handle)
            if timeout is not None:
                scope.deadline = math.inf
            await _failed(engine, handle, exc)
        else:
            if worker.start_due:
                worker.fire_start(handle)
            if timeout is not None:
                scope.deadline = math.inf
            # a cancel() accepted meanwhile, even from another thread, is honoured where the result is recorded
            if engine.on_complete is None:
                engine.finish(handle, _SUCCEEDED, value, None, None)
            else:
                await engine.complete(handle, _SUCCEEDED, value, None, None)
        # a cancel or a deadline may have hit the scope as the attempt ended: the next task gets a fresh one
        stale = (timeout is not None or handle._cancel_reason is not None) and scope.cancel_called
        engine.next_task(worker)
        if stale:
            return _FRESH_SCOPE


def begin_attempt(engine: Engine, handle: TaskHandle[Any]) -> int:
    """Count and stamp the attempt of ``handle`` that begins now, and log its ``start`` event; its number.

    Its place is its backend's name until the backend names one (`Worker.ran_on`). On a backend that
    `reports_starts` the event waits for the real start (`Worker.attempt_began`): one that never begins logs none."""
    number = handle._attempts = handle._attempts + 1
    handle._status = _RUNNING
    handle._slot.where = handle._backend
    now = handle._attempt_at = time.time()
    if handle._started_at is None:
        handle._started_at = now
    if engine.log_tasks and not engine.lanes[handle._backend].backend.reports_starts:
        started(handle)
    return number


def _format_seconds(value: float) -> str:
    return f"{value:g}s"


async def _interrupted(engine: Engine, handle: TaskHandle[Any]) -> None:
    """The worker's scope was cancelled while ``handle`` ran: a timeout or a cancel."""
    reason = handle._cancel_reason
    if reason is not None:
        engine.finish_cancelled(handle, reason)
        return
    await _failed(engine, handle, timeout_error(handle))


def timeout_error(handle: TaskHandle[Any]) -> TaskTimeoutError:
    """The error of ``handle``'s attempt that ran out of time (its timeout event is logged)."""
    options = handle._options
    if handle._attempts <= options.retries and not issubclass(TaskTimeoutError, options.retry_on):
        # retries are left, but retry_on leaves timeouts out: say so, not "attempt 1 of 4"
        which, fix = "not retried: TaskTimeoutError is not in retry_on", ", or add TaskTimeoutError to retry_on"
    else:
        which, fix = f"attempt {handle._attempts} of {options.retries + 1}", ""
    timed_out(handle, options.timeout or 0)
    return TaskTimeoutError(
        f"task {handle._name!r} ({handle.task_id}) timed out after {_format_seconds(options.timeout or 0)} "
        f"({which}) — raise timeout= or make the task faster{fix}"
    )


def retry_delay(retry_delay: float, backoff: float, attempt: int) -> float:
    """The wait before the retry after attempt ``attempt``: ``retry_delay * backoff**(attempt-1)``, capped."""
    if retry_delay <= 0:
        return 0.0
    try:
        delay = retry_delay * float(backoff) ** (attempt - 1)  # a float power overflows at once, an int one grows
    except OverflowError:
        return MAX_RETRY_DELAY
    return min(delay, MAX_RETRY_DELAY)


_DONE, _RETRY, _FAIL = "done", "retry", "fail"


def _settle_failure(engine: Engine, handle: TaskHandle[Any], exc: BaseException) -> str:
    """What the attempt of ``handle`` that raised ``exc`` means, up to its hooks.

    Records a cancellation at once (``"done"``); otherwise marks a retry (``"retry"``: retry it,
    after ``on_retry``) or says the task fails (``"fail"``: record it, with ``on_complete``).
    """
    if handle._cancel_reason is not None:  # cancel() was accepted while it ran: it ends cancelled
        engine.finish_cancelled(handle, handle._cancel_reason, exc)
        return _DONE
    if isinstance(exc, CancelledElsewhere):  # the backend says: cancelled outside the engine (a cluster)
        engine.finish_cancelled(handle, str(exc), exc)
        return _DONE
    options = handle._options
    if handle._attempts <= options.retries and isinstance(exc, options.retry_on) and not engine.stopping:
        if handle._attempts == 1:  # its first retry: counted as retrying until it ends (`Records.finish`)
            engine.lanes[handle._backend].retrying += 1
        handle._status = TaskStatus.RETRYING
        return _RETRY
    if is_cancellation(exc):
        # the attempt raised a cancellation nobody asked this task for (a future it awaited was
        # cancelled, a thread task raised CancelledError): the task ends cancelled, never failed with it
        engine.finish_cancelled(handle, f"cancelled: the task raised {type(exc).__name__} itself", exc)
        return _DONE
    return _FAIL


def _retry(engine: Engine, handle: TaskHandle[Any], exc: BaseException) -> None:
    options = handle._options
    engine.retry(handle, retry_delay(options.retry_delay, options.backoff, handle._attempts), exc)


def _failure_message(handle: TaskHandle[Any], exc: BaseException) -> str:
    if isinstance(exc, TaskTimeoutError):
        return text_of(exc)
    tries = f" after {handle._attempts} attempts" if handle._attempts > 1 else ""
    return f"failed{tries}: {describe(exc)}"  # a hostile __str__ cannot stop the recording


def _count_failure(engine: Engine, handle: TaskHandle[Any], result: TaskResult | None) -> None:
    run = engine.run
    if result is not None and run is not None and result.status is TaskStatus.FAILED:
        run.task_failed(handle)


def fail_now(engine: Engine, handle: TaskHandle[Any], exc: BaseException) -> None:
    """`_failed` for a queue without ``on_retry`` and ``on_complete`` hooks: nothing to await."""
    kind = _settle_failure(engine, handle, exc)
    if kind is _RETRY:
        _retry(engine, handle, exc)
    elif kind is _FAIL:
        result = engine.finish(handle, TaskStatus.FAILED, None, exc, _failure_message(handle, exc))
        _count_failure(engine, handle, result)


async def _failed(engine: Engine, handle: TaskHandle[Any], exc: BaseException) -> None:
    """An attempt of running ``handle`` raised ``exc``: retry it, or record the failure."""
    kind = _settle_failure(engine, handle, exc)
    if kind is _RETRY:
        if engine.on_retry is not None:
            await call_hook(engine.on_retry, handle, exc)
            reason = handle._cancel_reason
            if reason is not None:  # cancelled while its on_retry hook ran
                engine.finish_cancelled(handle, reason)
                return
        _retry(engine, handle, exc)
    elif kind is _FAIL:
        result = await engine.complete(handle, TaskStatus.FAILED, None, exc, _failure_message(handle, exc))
        _count_failure(engine, handle, result)


#: the worker's code, kept free of Ctrl-C on trio (see `osiiso._loops.protect_from_ki`)
ENGINE_TASK_CODE = (run_worker, _serve, _park, _interrupted, _failed)
