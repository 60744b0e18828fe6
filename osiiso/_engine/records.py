"""`Records`: how the engine records outcomes — results, dependents settled, cancellations, idleness.

The half of `osiiso._engine.engine.Engine` that ends tasks: `Records.finish` is the only
place that makes a `TaskResult` (a later call for the same task does nothing), and settles the
task's dependents iteratively, so a chain of any length ends without recursion; `cancel`
removes a waiting task at once or interrupts a running one; hooks spawned from plain engine
code are counted until awaited. `Engine` inherits it; only their methods change the counters.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import TaskCancelledError
from .._handle import DONE, NEW, READY, RUNNING, SCHEDULED, WAITING, TaskHandle
from .._result import TaskResult, TaskStatus, pack_timings
from .attempts import last_timing
from .deps import dependency_error, resolve_arguments
from .events import cancelled, finished
from .hooks import IN_HOOK, await_hook, call_hook, spawn_hook
from .text import text_of

if TYPE_CHECKING:
    from .._loops import LoopCaller
    from .lanes import Lane
    from .run import Run
    from .service import Service
    from .timers import Timers
    from .worker import Worker

__all__ = ("Records",)

Hook = Callable[..., object]
_CANCELLED, _SUCCEEDED = TaskStatus.CANCELLED, TaskStatus.SUCCEEDED
_RETRYING = TaskStatus.RETRYING
_new_result = tuple.__new__


class Records:
    """Recording outcomes and cancellations (a base of `osiiso._engine.engine.Engine`)."""

    # state set up by `Engine.__init__`
    lanes: dict[str, Lane]
    lane_list: tuple[Lane, ...]
    timers: Timers
    service: Service
    caller: LoopCaller | None
    run: Run | None
    results: list[TaskResult]
    waiting: set[TaskHandle[Any]]
    crew: set[Worker]
    idle_waiters: list[anyio.Event]
    room_waiters: deque[anyio.Event]
    hook_scopes: set[anyio.CancelScope]
    hooks_cut: bool
    on_complete: Hook | None
    workers: int
    log_tasks: bool  # the "osiiso" logger takes DEBUG: start and finish events (asked per run)
    running: int
    held: int
    outstanding: int
    hooks_running: int
    hook_outcomes: set[Any]
    _settling: list[tuple[TaskHandle[Any], list[TaskHandle[Any]]]] | None

    def schedule_or_ready(self, handle: TaskHandle[Any], lane: Lane) -> None:
        """Defined by `Engine` (admission): a released dependent goes on."""
        raise NotImplementedError

    if TYPE_CHECKING:
        def dispatch(self) -> None:
            """Defined by `Engine`: hand out the free slots."""

        def release(self, lane: Lane, worker: Worker | None = None) -> None:
            """Defined by `Held` (a later base of `Engine`): a task leaves the running state."""

    def finish(self, handle: TaskHandle[Any], status: TaskStatus, value: Any,
               exc: BaseException | None, message: str | None, *, call_hook: bool = True) -> TaskResult | None:
        """Record the one result of ``handle`` (loop thread). Later calls do nothing. Dependents that
        can no longer run are recorded too, iteratively: a chain of any length ends without recursion
        (`_settle`). ``call_hook=False`` leaves ``on_complete`` to the caller (a worker awaits it)."""
        if handle._result is not None:
            return None
        lane = self.lanes[handle._backend]
        where = handle._where
        if where is RUNNING:
            if lane.held:  # its backend holds tasks in batches (`Engine.batched`): this one, maybe
                self.release(lane, handle._slot)
            else:  # as `release`, inline on this per-task path
                self.running -= lane.running <= lane.parallel
                lane.running -= 1
        else:
            lane.queued -= 1
            fn: Any = handle._fn
            if type(fn) is CoroutineType and not handle._attempts:  # a coroutine object that never ran:
                fn.close()  # closed, or Python warns it was never awaited
        if handle._attempts > 1 or handle._status is _RETRYING:  # counted when it first failed and retried
            lane.retrying -= 1
        now = time.time()
        started = handle._started_at
        options = handle._options
        if message is None and exc is not None:
            message = text_of(exc)  # user code decides what str() does: never let it stop this
        # From here the outcome is decided. A cancel() from another thread that finds the task
        # done waits for its result; one that does not has set the reason read just below.
        handle._where = DONE
        reason = handle._cancel_reason
        if reason is not None and status is not _CANCELLED:  # cancel() was accepted: it ends cancelled
            error = TaskCancelledError(reason)
            error.__cause__ = exc
            status, value, exc, message = _CANCELLED, None, error, reason
        elif message is None:
            message = "succeeded" if handle._attempts == 1 else f"succeeded on attempt {handle._attempts}"
        attempt_at = handle._attempt_at
        if status is _SUCCEEDED and attempt_at is not None:  # the common case, inline: one attempt closes
            timing = (  # a plain tuple, as `TaskResult` keeps each timing (an `AttemptTiming` when read)
                handle._attempts, handle._ready_at, attempt_at, now, "ok", handle._slot.where, "succeeded")
            timings = pack_timings((*handle._timings, timing)) if handle._timings else timing  # one: itself
        else:
            timings = pack_timings(last_timing(handle, where, status, exc, message, now))
        # every field is known and of its type here: build the tuple directly, without the
        # checks and defaults of TaskResult's keyword constructor (this runs once per task)
        result = _new_result(TaskResult, (
            f"task-{handle._seq}", handle._name, status, value, exc, handle._attempts, handle._backend,
            options.priority, options.group_id, options.metadata, options.detached,
            options.must_complete, message, handle._created_at, started, now,
            now - started if started is not None else 0.0, False, timings,
        ))
        lane.done += 1
        if status is not _SUCCEEDED:
            if status is _CANCELLED:
                lane.cancelled += 1
            else:
                lane.failed += 1
        self.outstanding -= 1
        self.results.append(result)  # queue.results keeps detached tasks too; a run's summary does not
        run = self.run
        if run is not None and not options.detached:
            run.results.append(result)
            run.seqs.append(handle._seq)  # the summary sorts by these (`run.in_submission_order`)
        handle._result, handle._status, handle._slot = result, status, None  # `TaskHandle._finish`, inline
        if handle._event is not None or handle._callbacks:  # someone waits for it
            handle._wake()
        if self.log_tasks:
            finished(result)
        dependents = handle._dependents
        if dependents:
            handle._dependents = None
            if self._settling is not None:  # inside `_settle`: it takes these next
                self._settling.append((handle, dependents))
            else:
                self._settle(handle, dependents)
        if call_hook and self.on_complete is not None:
            spawn_hook(self, self.on_complete, (result,))
        if self.room_waiters:
            self.room_waiters.popleft().set()
        if not self.outstanding:
            self.check_idle()
        return result

    def restore(self, handle: TaskHandle[Any], value: Any, message: str) -> TaskResult:
        """Record a new ``handle`` as restored from a checkpoint: succeeded, without running.

        The handle was never admitted: no lane, counter, results list or hook sees it (a
        restored input is not work done). Safe from any thread, since nobody holds the
        handle yet. With `finish`, the only place that creates a `TaskResult`.
        """
        options = handle._options
        created = handle._created_at
        result = TaskResult(
            f"task-{handle._seq}", handle._name, TaskStatus.SUCCEEDED, value, None, 0, handle._backend,
            options.priority, options.group_id, options.metadata, options.detached, options.must_complete,
            message, created, None, created, 0.0, True, (),
        )
        handle._finish(result)
        return result

    def _settle(self, done: TaskHandle[Any], dependents: list[TaskHandle[Any]]) -> None:
        """``done`` ended: release or fail its ``dependents``, and theirs, without recursion."""
        if self._settling is not None:  # already settling (a done-callback submitted): join that loop
            self._settling.append((done, dependents))
            return
        work = self._settling = [(done, dependents)]
        try:
            while work:
                dep, waiting = work.pop()
                result = dep._result
                assert result is not None
                for handle in waiting:
                    if handle._where is not WAITING:
                        continue
                    if result.status is not TaskStatus.SUCCEEDED:
                        self.waiting.discard(handle)
                        error = dependency_error(handle, dep, result)
                        self.finish(handle, TaskStatus.FAILED, None, error, str(error))  # queues its dependents
                        if result.status is _CANCELLED and self.run is not None:  # a failure of its own: fail_first
                            self.run.task_failed(handle)  # (a failed dependency has counted already)
                        continue
                    handle._deps -= 1
                    if handle._deps == 0:
                        self.waiting.discard(handle)
                        resolve_arguments(handle)
                        handle._ready_at = time.time()  # its dependencies are done: it is ready
                        self.schedule_or_ready(handle, self.lanes[handle._backend])
        finally:
            self._settling = None

    async def complete(self, handle: TaskHandle[Any], status: TaskStatus, value: Any,
                       exc: BaseException | None, message: str | None) -> TaskResult | None:
        """Record the result, then await ``on_complete``; the queue is idle only after the hook. The
        slot is free while the hook runs: it is dispatched before, with the worker counted as hooked."""
        hook = self.on_complete
        if hook is None:
            return self.finish(handle, status, value, exc, message)
        worker: Worker | None = handle._slot
        self.hooks_running += 1
        hooked = False
        try:
            result = self.finish(handle, status, value, exc, message, call_hook=False)
            if result is not None and worker is not None:
                hooked = True  # first: its lane counts it apart (`Lane.busy`), so another worker may start
                worker.hooking(True)  # a run past its time limit cancels the hook (`cut_hooks`)
            if self.running < self.workers:
                self.dispatch()
            if result is not None:
                if worker is not None and self.hooks_cut and worker.scope is not None:
                    worker.scope.cancel()
                token = IN_HOOK.set(self)
                try:
                    await call_hook(hook, result)
                finally:
                    IN_HOOK.reset(token)
        finally:
            if hooked and worker is not None:
                worker.hooking(False)
            self.hooks_running -= 1
            self.check_idle()
        return result

    def spawn_awaitable(self, hook: Hook, outcome: Any) -> None:
        """Await an async hook's ``outcome`` in the service; runs wait for it (``hooks_running``)."""
        self.hooks_running += 1
        self.hook_outcomes.add(outcome)
        self.service.spawn(self._await_hook, hook, outcome)

    async def _await_hook(self, hook: Hook, outcome: Any) -> None:
        token = IN_HOOK.set(self)
        try:
            with anyio.CancelScope() as scope:
                self.hook_scopes.add(scope)
                if self.hooks_cut:  # spawned as the limit passed, started after `cut_hooks`
                    scope.cancel()
                await await_hook(hook, outcome)
        finally:
            IN_HOOK.reset(token)
            self.hook_scopes.discard(scope)
            self.hook_outcomes.discard(outcome)
            self.hooks_running -= 1
            self.check_idle()

    def cut_hooks(self) -> None:
        """Cancel every async ``on_complete`` hook still running (a run's time limit has passed).

        Until the run clears ``hooks_cut``, a hook that starts later (its task ended in the
        same turn, its hook spawned but not yet begun) is cancelled as it begins.
        """
        self.hooks_cut = True
        for scope in list(self.hook_scopes):
            scope.cancel()
        for worker in self.crew:
            if worker.in_hook and worker.scope is not None:
                worker.scope.cancel()

    def drop_hooks(self) -> None:
        """The service stopped (forced) before awaiting some hooks: close, not leak, them."""
        for outcome in self.hook_outcomes:
            if inspect.iscoroutine(outcome):
                outcome.close()
        self.hooks_running -= len(self.hook_outcomes)
        self.hook_outcomes.clear()

    def check_idle(self) -> None:
        """Wake those waiting for the queue to be idle (they re-check what they wait for)."""
        if self.outstanding == 0 and self.idle_waiters:
            waiters, self.idle_waiters = self.idle_waiters, []
            for event in waiters:
                event.set()

    # -- cancellation ----------------------------------------------------------------------
    def request_cancel(self, handle: TaskHandle[Any], reason: str) -> None:
        """Cancel ``handle`` from any thread."""
        caller = self.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self.cancel, handle, reason)
        else:
            self.cancel(handle, reason)

    def cancel(self, handle: TaskHandle[Any], reason: str) -> None:
        """Cancel ``handle`` (loop thread): at once if it waits, by interruption if it runs."""
        where = handle._where
        if where is DONE:
            return
        handle._cancel_reason = reason = reason if reason.startswith("cancelled") else f"cancelled: {reason}"
        if where is NEW:  # handed over by another thread, not taken in yet: its admission cancels it
            return
        cancelled(handle, reason, where is RUNNING)
        if where is RUNNING:
            worker = handle._slot
            if worker is not None:
                worker.interrupt()  # a coroutine's scope is cancelled; a direct attempt is stopped
            return
        self.unplace(handle)
        self.finish_cancelled(handle, reason)

    def unplace(self, handle: TaskHandle[Any]) -> None:
        """Take a task that waits (ready, scheduled or on its dependencies) out of its place."""
        where = handle._where
        if where is READY:
            self.lanes[handle._backend].discard(handle)
        elif where is SCHEDULED:
            self.timers.discard(handle)
        elif where is WAITING:
            self.waiting.discard(handle)

    def finish_cancelled(self, handle: TaskHandle[Any], reason: str, cause: BaseException | None = None) -> None:
        """Record ``handle`` as cancelled for ``reason`` (``cause``: what its attempt did meanwhile)."""
        error = TaskCancelledError(reason)
        error.__cause__ = cause
        self.finish(handle, TaskStatus.CANCELLED, None, error, reason)

    def unfinished(self) -> list[TaskHandle[Any]]:
        """Every task without a result (for cancel-all), in no particular order."""
        found: list[TaskHandle[Any]] = [w.current for w in self.crew
                                        if w.current is not None and w.current._where is RUNNING]
        found.extend(self.waiting)
        found.extend(h for _, _, h in self.timers.heap if h._where is SCHEDULED)
        for lane in self.lane_list:
            found.extend(lane.ready())
        return found

    def cancel_all(self, reason: str, *, spare_must_complete: bool) -> int:
        """Cancel every unfinished task (optionally sparing ``must_complete`` ones)."""
        count = 0
        # dependents before what they wait for (a dependent is submitted after its dependencies), and
        # the running ones last: a task recorded cancelled first would settle its waiting dependents
        # as failed (a direct attempt is recorded as it is stopped) before they are cancelled too
        found = sorted(self.unfinished(), key=lambda h: -h._seq)
        for handle in [h for h in found if h._where is not RUNNING] + [h for h in found if h._where is RUNNING]:
            if spare_must_complete and handle._options.must_complete:
                continue
            if handle._where is not DONE:
                self.cancel(handle, reason)
                count += 1
        return count

    # -- waiting ---------------------------------------------------------------------------
    async def wait_idle(self, *, hooks: bool = True) -> None:
        """Wait until no task is unfinished (and, with ``hooks``, no on_complete hook runs); from
        inside one of this queue's own hooks that would wait for itself, ``RuntimeError``."""
        self.refuse_in_own_hook("waiting for the queue to be idle")
        while self.outstanding or (hooks and self.hooks_running):
            event = anyio.Event()
            self.idle_waiters.append(event)
            await event.wait()

    def refuse_in_own_hook(self, what: str) -> None:
        """``RuntimeError`` when called from one of this queue's own hooks, which ``what`` would wait for."""
        if IN_HOOK.get() is self:
            raise RuntimeError(
                f"{what} cannot be awaited inside one of the queue's own hooks: the queue is idle only "
                "once its hooks have returned, so the hook would wait for itself — await it from the "
                "code that runs the queue, or call q.cancel() (thread-safe) to stop the work")

    async def wait_room(self, size: int, closed: Callable[[], bool]) -> None:
        """Wait until fewer than ``size`` tasks are unfinished (or ``closed()``): ``put()``.

        Each ended task wakes one waiter (`finish`). A waiter that is cancelled leaves the line;
        one cancelled after it was woken passes the wake-up on, so room always reaches a live
        waiter.
        """
        waiters = self.room_waiters
        while self.outstanding >= size and not closed():
            event = anyio.Event()
            waiters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    if waiters:
                        waiters.popleft().set()
                else:
                    waiters.remove(event)
                raise
