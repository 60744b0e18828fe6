"""`Service`: the detached background task in which a queue's workers, timers and hooks live.

The service is one task group inside a detached task of the loop (`osiiso._loops.spawn_detached`),
so ``await q.start()`` can return while the workers go on, and code in the caller's task (an
``async with`` body, a cancel scope, an exception) never tangles with the workers' cancel
scopes. Its loop task serves the timer heap, runs the dispatches the engine asks for, and
starts the tasks other code asked for from plain callbacks (`Service.spawn`). It owns its task
group and start/stop; the engine owns everything the tasks do.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .._events import enabled, osiiso_logger
from .._loops import current_loop_caller, protect_from_ki, spawn_detached
from .hooks import cancel_pending, current_asyncio_task, is_cancelled_here, is_stopped_from_outside
from .worker import ENGINE_TASK_CODE, Worker, run_worker

if TYPE_CHECKING:
    from .engine import Engine
    from .lanes import Lane

__all__ = ("Service", "stop_every_queue", "stopping_reason")

logger = osiiso_logger
#: the name of every engine worker's task (given, so that anyio does not build one per worker)
_WORKER_NAME = "osiiso engine worker"

Spawnable = Callable[..., Coroutine[Any, Any, Any]]

#: every running service in the process, and why they all stop (set by SIGTERM under osiiso.run)
_live: set[Service] = set()
_stop: list[str] = []


def stop_every_queue(reason: str | None) -> int:
    """Stop every running queue of the process as ``queue.cancel()`` does; return how many.

    From any thread (or a signal handler): each queue's loop does it. Until called again with
    ``None``, a run that starts ends at once the same way (`stopping_reason`).
    """
    _stop[:] = [reason] if reason is not None else []
    if reason is None:
        return 0
    count = 0
    for service in list(_live):
        caller = service.engine.caller
        if caller is not None and caller.call(service.engine.stop_all, reason):
            count += 1
    return count


def stopping_reason() -> str | None:
    """Why every queue stops (``stop_every_queue``), or ``None``."""
    return _stop[0] if _stop else None


class Service:
    """Starts, runs and stops the task group of one engine's workers, timers and hooks."""

    def __init__(self, engine: Engine) -> None:
        # a weak reference: the engine owns its service, and a cycle between them would keep a
        # dropped queue's results (thousands of objects) until the cyclic collector ran
        self.engine: Engine = weakref.proxy(engine)
        self.task_group: anyio.abc.TaskGroup | None = None
        self.loop: object | None = None  # the event loop the backends last started on
        self.spawns: deque[tuple[Spawnable, tuple[Any, ...]]] = deque()
        self.extras = 0  # tasks of the service besides workers and the loop task (lanes opening, hooks, progress)
        self._done: anyio.Event | None = None
        self._serving: anyio.Event | None = None
        self.host: Any = None  # the asyncio task the service runs in (None on trio)

    @property
    def running(self) -> bool:
        """Whether the service task is alive."""
        return self._done is not None and not self._done.is_set()

    async def start(self) -> None:
        """Start the service on the running loop, if it is not running yet."""
        if self.running:
            return
        engine = self.engine
        caller = current_loop_caller()
        if self.loop is not None and self.loop is not caller.loop:
            # pools started on an earlier event loop report to it: restart them on this one
            for lane in list(engine.lanes.values()):
                await lane.backend.aclose()
        self.loop = caller.loop
        engine.caller = caller
        engine.stopping = False
        engine.broken = None
        engine.log_tasks = enabled("start")  # again at each run's start
        self._done = done = anyio.Event()
        self._serving = anyio.Event()
        spawn_detached(self._serve, done.set, "osiiso-queue")
        await self._serving.wait()
        _live.add(self)

    async def stop(self) -> None:
        """Stop the workers and the loop task (unfinished tasks stay where they are); wait for them."""
        done = self._done
        if done is None or done.is_set():
            return
        with anyio.CancelScope(shield=True):
            self._stop_serving()
            await done.wait()
        self.engine.caller = None

    def _stop_serving(self) -> None:
        """When every worker is parked and nothing else runs in the service (the usual end of a
        run), the workers are woken to return on their own, which costs a fraction of a
        cancellation with hundreds of workers; otherwise the task group is cancelled."""
        engine = self.engine
        engine.stopping = True
        tg = self.task_group
        if tg is None:
            return
        if self.extras or self.spawns or any(len(lane.idle) != lane.workers for lane in engine.lane_list):
            tg.cancel_scope.cancel()
            return
        for lane in engine.lane_list:
            parked = list(lane.idle)
            lane.idle.clear()  # at once: each worker taking itself out would cost a scan of them all
            for worker in parked:
                worker.wake()
        engine.timers.poke()

    def torn_down(self) -> bool:
        """Whether the loop is cancelling the service's own task (``asyncio.run`` ending under it)."""
        return cancel_pending(self.host)

    async def _serve(self) -> None:
        protect_from_ki(_PROTECTED)
        engine = self.engine
        self.host = current_asyncio_task()  # None on trio: cancel scopes only
        try:
            async with anyio.create_task_group() as tg:
                self.task_group = tg
                assert self._serving is not None
                self._serving.set()
                for lane in engine.lane_list:
                    self._start_extra(self._open_lane, (lane,))
                await self._guarded(self._loop_task)
        finally:
            # the one place where the service ends, however it ends: if the engine failed, no task
            # it held is left without a result, and the run waiting for them returns
            self.task_group = None
            _live.discard(self)
            if engine.broken is not None:
                engine.rescue()
            engine.stop_direct()
            self.spawns.clear()
            self.extras = 0
            engine.drop_hooks()
            engine.check_idle()  # a run waiting for those hooks would otherwise wait on
            engine.closed()

    async def _guarded(self, fn: Spawnable, *args: Any) -> None:
        """Run a task of the service; a failure of the engine's own code stops the service cleanly.

        Nothing propagates out of the service's tasks but their cancellation: an error would
        tear the task group down (and asyncio would let a KeyboardInterrupt out of the loop)
        with nobody recording the tasks left behind. `Engine.broke` records them instead.
        """
        try:
            await fn(*args)
        except BaseException as exc:
            # a cancel scope, or asyncio.run() ending with the queue started (engine code raises none)
            if is_stopped_from_outside(exc, unsure=True):
                raise
            self.engine.broke(exc)

    async def _loop_task(self) -> None:
        engine = self.engine
        timers, deadlines = engine.timers, engine.deadlines
        spawns = self.spawns
        lanes = engine.lanes
        while not engine.stopping:  # stopping: start nothing more (see `_stop_serving`)
            now = time.monotonic()
            due_now = timers.pop_due(now)
            if due_now:
                ready_at = time.time()
                for handle in due_now:
                    handle._ready_at = ready_at  # its delay (or retry delay) ends: its attempt is ready
                    engine.make_ready(handle, lanes[handle._backend])
            due = engine.dispatch_at
            if due is not None and due <= now:
                engine.dispatch_at = None
                engine.dispatch_wanted = True
            deadline = deadlines.next_due()
            if deadline is not None and deadline <= now:
                engine.expire(now)
            if engine.dispatch_wanted:
                engine.dispatch()
            while spawns:
                fn, args = spawns.popleft()
                self._start_extra(fn, args)
            due, deadline = engine.dispatch_at, deadlines.next_due()
            await timers.wait_next(due if deadline is None or (due is not None and due < deadline) else deadline)

    # -- starting tasks in the service ----------------------------------------------------------
    def start_worker(self, worker: Worker) -> None:
        """Start ``worker`` (it holds its first task) in the task group (from a task of the service)."""
        assert self.task_group is not None
        self.task_group.start_soon(run_worker, worker, name=_WORKER_NAME)  # a name: anyio need not make one

    def open_later(self, lane: Lane) -> None:
        """A lane was just made (from any thread): open it, if the service runs."""
        if self.task_group is not None:
            self.spawn(self._open_lane, lane)

    async def _open_lane(self, lane: Lane) -> None:
        if lane.open:
            return
        try:
            await lane.backend.start()
        except BaseException as exc:
            if is_cancelled_here(exc):
                raise
            # e.g. an initializer that cannot be pickled: the workers still start, and each
            # attempt fails with the backend's error instead of the run waiting forever
            logger.exception("osiiso: the %r backend failed to start", lane.backend.name)
        if not self.engine.stopping:
            self.engine.opened(lane)

    def spawn(self, fn: Spawnable, *args: Any) -> None:
        """Start ``fn(*args)`` in the service's task group, from any thread or callback.

        The loop task does the starting: a plain loop callback (a hand-over from another
        thread) cannot start anyio tasks itself.
        """
        self.spawns.append((fn, args))
        caller = self.engine.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self.engine.timers.poke)
        else:
            self.engine.timers.poke()

    def _start_extra(self, fn: Spawnable, args: tuple[Any, ...]) -> None:
        assert self.task_group is not None
        self.extras += 1
        self.task_group.start_soon(self._extra, fn, args)

    async def _extra(self, fn: Spawnable, args: tuple[Any, ...]) -> None:
        try:
            await self._guarded(fn, *args)
        finally:
            self.extras -= 1


# the engine's own tasks, kept free of Ctrl-C on trio (see `osiiso._loops.protect_from_ki`)
_PROTECTED = (*ENGINE_TASK_CODE, Service._serve, Service._guarded, Service._loop_task, Service._open_lane,
              Service._extra)
