"""What a worker does: pop the most urgent ready task of its lane and run one attempt.

Each worker owns one anyio cancel scope and runs attempt after attempt inside it. For an
attempt with a timeout the scope's deadline is set, and reset after; cancelling a running
task cancels the scope, after which the worker records the outcome and opens a fresh one.
Tasks without a timeout or a cancel never pay for a scope of their own.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._errors import TaskTimeoutError
from ._handle import RUNNING, TaskHandle
from ._hooks import call_hook
from ._results import TaskStatus
from .backends.base import Attempt

if TYPE_CHECKING:
    from ._engine import Engine
    from ._lanes import Lane

__all__ = ("Slot", "run_worker")

class Slot:
    """One worker's cancel scope and the task it is running."""

    __slots__ = ("began", "coming", "current", "loop_start", "scope")

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.coming = True  # started or woken, and not yet at the point of taking a task
        self.current: TaskHandle[Any] | None = None
        self.loop_start = 0.0
        self.began = 0.0

    def hold(self, handle: TaskHandle[Any]) -> None:
        """The backend queues ``handle``'s attempt before running it: no deadline meanwhile."""
        if self.current is handle and self.scope is not None and handle._options.timeout is not None:
            self.scope.deadline = math.inf

    def restart(self, handle: TaskHandle[Any]) -> None:
        """The backend says ``handle``'s attempt starts only now (it waited for a worker).

        May run in a plain loop callback, where anyio cannot read the loop's clock; the
        loop clock and ``time.monotonic()`` advance together, so the deadline is derived.
        """
        if self.current is not handle:
            return
        if handle._attempts == 1:
            handle._started_at = time.time()
        timeout = handle._options.timeout
        if timeout is not None and self.scope is not None:
            self.scope.deadline = self.loop_start + (time.monotonic() - self.began) + timeout


_RUNNING, _SUCCEEDED = TaskStatus.RUNNING, TaskStatus.SUCCEEDED

#: a worker yields to the event loop at least once per this many tasks
_YIELD_EVERY = 64


def _format_seconds(value: float) -> str:
    return f"{value:g}s"


async def run_worker(engine: Engine, lane: Lane) -> None:
    """Serve ``lane`` until the service stops (counted in ``lane.workers`` by the starter)."""
    slot = Slot()
    engine.slots.add(slot)
    try:
        while not engine.stopping:
            with anyio.CancelScope() as scope:
                slot.scope = scope
                await _serve_lane(engine, lane, slot, scope)
            handle = slot.current
            if handle is not None:  # the scope was cancelled for this task
                await _interrupted(engine, handle, lane)
                slot.current = None
    finally:
        lane.workers -= 1
        lane.active -= 1
        if slot.coming:
            lane.coming -= 1
        engine.slots.discard(slot)
        handle = slot.current
        if handle is not None and handle._where is RUNNING:  # the whole service stopped
            engine.finish_cancelled(handle, handle._cancel_reason or "cancelled: the queue stopped while it ran")

async def _serve_lane(engine: Engine, lane: Lane, slot: Slot, scope: anyio.CancelScope) -> None:
    backend = lane.backend
    limiter = engine.limiter
    cancelled_exc = anyio.get_cancelled_exc_class()
    checkpoint = anyio.lowlevel.checkpoint
    attempt = Attempt(None, (), {}, 0, None, None, slot)  # one per worker, refilled per attempt
    run = backend.run
    streak = 0
    while not scope.cancel_called and not engine.stopping:
        if slot.coming:  # arrived: from here on other lanes no longer count on this worker
            slot.coming = False
            lane.coming -= 1
        streak += 1
        if streak >= _YIELD_EVERY:
            # tasks that finish without suspending would otherwise hold the loop for the
            # whole run: timers, run timeouts and other tasks get a turn now and then
            streak = 0
            await checkpoint()
        if not lane.size or engine.running >= engine.workers or (
                len(engine.lane_list) > 1 and engine.yields_slot(lane)):
            if engine.running < engine.workers and len(engine.lane_list) > 1:
                engine.hand_over(lane)
            streak = 0
            event = anyio.Event()
            lane.idle.append(event)
            lane.active -= 1
            try:
                await event.wait()
                slot.coming = True  # woken by `Lane.wake_one`, which counted it
            finally:
                # woken by `Lane.wake_one`, the event has left `idle` and the worker counts as
                # active again; interrupted, it is still there (unless the whole service stops,
                # which clears `idle` at once)
                if not event.is_set():
                    lane.active += 1
                    if not engine.stopping and event in lane.idle:
                        lane.idle.remove(event)
            continue
        if limiter is not None:
            await limiter.acquire()
            if not lane.size or engine.running >= engine.workers:
                continue
        handle = lane.pop()
        if handle is None:
            continue
        engine.running += 1
        lane.running += 1
        lane.queued -= 1
        handle._where = RUNNING
        handle._slot = slot
        slot.current = handle
        number = handle._attempts = handle._attempts + 1
        handle._status = _RUNNING
        if handle._started_at is None:
            handle._started_at = time.time()
        if engine.on_start is not None:
            await call_hook(engine.on_start, handle)
        timeout = handle._options.timeout
        if timeout is not None:
            slot.loop_start = anyio.current_time()
            slot.began = time.monotonic()
            scope.deadline = slot.loop_start + timeout
        attempt.fn, attempt.args, attempt.kwargs = handle._fn, handle._args, handle._kwargs
        attempt.number, attempt.timeout, attempt._task = number, timeout, handle
        attempt.name, attempt.task_id, attempt.priority = handle._name, handle.task_id, handle._options.priority
        try:
            value = await run(attempt)
        except BaseException as exc:
            if isinstance(exc, cancelled_exc) and (scope.cancel_called or engine.stopping):
                raise
            if timeout is not None:
                scope.deadline = math.inf
            await _failed(engine, handle, lane, exc)
            slot.current = None
        else:
            if timeout is not None:
                scope.deadline = math.inf
            slot.current = None
            if handle._cancel_reason is not None:  # the value raced a cancel() that was accepted
                engine.finish_cancelled(handle, handle._cancel_reason)
            elif engine.on_complete is None:
                engine.finish(handle, _SUCCEEDED, value, None, None)
            else:
                await engine.complete(handle, _SUCCEEDED, value, None, None)


async def _interrupted(engine: Engine, handle: TaskHandle[Any], lane: Lane) -> None:
    """The worker's scope was cancelled while ``handle`` ran: a timeout or a cancel."""
    reason = handle._cancel_reason
    if reason is not None:
        engine.finish_cancelled(handle, reason)
        return
    timeout = handle._options.timeout
    total = handle._options.retries + 1
    error = TaskTimeoutError(
        f"task {handle._name!r} ({handle.task_id}) timed out after {_format_seconds(timeout or 0)} "
        f"(attempt {handle._attempts} of {total}) — raise timeout= or make the task faster"
    )
    await _failed(engine, handle, lane, error)

async def _failed(engine: Engine, handle: TaskHandle[Any], lane: Lane, exc: BaseException) -> None:
    """An attempt of running ``handle`` raised ``exc``: retry it, or record the failure."""
    if handle._cancel_reason is not None:  # cancel() was accepted while it ran: it ends cancelled
        engine.finish_cancelled(handle, handle._cancel_reason, exc)
        return
    options = handle._options
    retry = (handle._attempts <= options.retries and isinstance(exc, options.retry_on)
             and not engine.stopping)
    if retry:
        handle._status = TaskStatus.RETRYING
        if engine.on_retry is not None:
            await call_hook(engine.on_retry, handle, exc)
        reason = handle._cancel_reason
        if reason is not None:  # cancelled while its on_retry hook ran
            engine.finish_cancelled(handle, reason)
            return
        engine.release(lane)
        lane.queued += 1
        delay = options.retry_delay * options.backoff ** (handle._attempts - 1)
        if delay > 0:
            engine.timers.schedule(handle, time.monotonic() + delay)
        else:
            engine.make_ready(handle, lane)
        return
    if isinstance(exc, TaskTimeoutError):
        message = str(exc)
    else:
        tries = f" after {handle._attempts} attempts" if handle._attempts > 1 else ""
        message = f"failed{tries}: {type(exc).__name__}: {exc}"
    result = await engine.complete(handle, TaskStatus.FAILED, None, exc, message)
    if result is not None and engine.failure_listener is not None:
        engine.failure_listener(handle)

