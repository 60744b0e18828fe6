"""Intake: how a task gets into an `osiiso.AsyncQueue`, the base class that owns the way in.

It owns the route of each callable (``backend="auto"`` resolved, generator functions
refused, the backend's check, all cached per callable), the building of a task's handle and
its admission to the engine, the ``size`` limit (refusing, or waiting for room), and the
hand-over of tasks submitted from other threads to the event loop, in batches. `AsyncQueue`
derives from it and keeps the public methods and the life cycle; a method here is the
queue's own method, so the per-submit path (``submit`` → ``_enqueue``, which reads the route
cache itself, → ``Engine.admit``) has no extra call layer.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from threading import get_ident
from typing import Any

import anyio.lowlevel

from ._config import QueueSettings
from ._engine import Engine
from ._engine.deps import dependencies_of
from ._engine.handover import admit_handed_over
from ._errors import ClosedError, QueueFullError
from ._handle import TaskHandle
from ._options import TaskOptions, merge_options
from .backends.coroutine import is_async_callable

__all__ = ("NO_KWARGS", "Call", "Intake", "arguments_of", "refuse_generator")

#: the keyword arguments of a task submitted without any (never mutated: dependencies make a new dict)
NO_KWARGS: dict[str, Any] = {}
Call = tuple[Any, tuple[Any, ...], dict[str, Any]]


def arguments_of(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of one element of a fan-out: a tuple is positional args, a dict keyword args."""
    if isinstance(item, tuple):
        return item, NO_KWARGS
    if isinstance(item, dict):
        return (), item
    return (item,), NO_KWARGS


def _is_generator_function(fn: Any) -> str | None:
    """``"a generator"`` or ``"an async generator"`` if calling ``fn`` makes one, else None."""
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - an object whose __call__ yields
    for target in (fn, None if inspect.isfunction(fn) or inspect.ismethod(fn) else call):
        if target is None:
            continue
        if inspect.isasyncgenfunction(target):
            return "an async generator"
        if inspect.isgeneratorfunction(target):
            return "a generator"
    return None


def refuse_generator(fn: Any) -> None:
    """Refuse a generator or async generator function at submit, with the fix.

    Its call only makes a generator: the body would run later, wherever the value is
    consumed, outside the task's timeout, retries and backend. So it is refused on every
    backend rather than run half-way; the task should return a list.
    """
    kind = _is_generator_function(fn)
    if kind is not None:
        qualname = getattr(fn, "__qualname__", None)
        name = repr(qualname) if isinstance(qualname, str) else repr(fn)
        raise TypeError(f"{name} is {kind} function: a task must return its value, and calling it only "
                        f"makes {kind} whose body would run outside the task — return a list instead "
                        f"(e.g. `return list(...)`), or submit one task per item")


class Intake:
    """The way into a queue: routes, handles, the size limit, the hand-over from other threads.

    The base class of `osiiso.AsyncQueue` (see the module docstring); never used alone.
    """

    def __init__(self, settings: QueueSettings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._defaults = settings.defaults
        self._seq = itertools.count(1)
        self._routes: dict[tuple[Any, str], tuple[Any, str]] = {}
        self._options_cache: dict[tuple[tuple[str, Any], ...], TaskOptions] = {}
        self._closed = False
        self._inbound = 0
        self._inbound_lock = threading.Lock()
        self._handovers: collections.deque[tuple[TaskHandle[Any], Any]] = collections.deque()
        self._drain_scheduled = False
        self._handovers_open = True
        self._coroutines: weakref.WeakSet[Any] = weakref.WeakSet()  # coroutine objects submitted (`_claim`)

    def _merged(self, options: dict[str, Any]) -> TaskOptions:
        """The queue defaults with keyword ``options`` on top, cached for repeated calls."""
        key = tuple(options.items())
        try:
            return self._options_cache[key]
        except (KeyError, TypeError):  # a miss, or an unhashable value (metadata={...})
            pass
        # merged outside the except block: a user's error never carries the cache miss as its context
        merged = merge_options(self._defaults, None, options, "submit()")
        try:
            if len(self._options_cache) >= 256:
                self._options_cache.clear()
            self._options_cache[key] = merged
        except TypeError:  # unhashable: merged again next time
            pass
        return merged

    @property
    def _unfinished(self) -> int:
        """Tasks without a result: those admitted, and those handed over from other threads and not
        admitted yet. Exact on the loop's thread (or before there is a loop); elsewhere, a batch
        being admitted at that moment may count twice."""
        return self._engine.outstanding + self._inbound

    # -- the size limit ----------------------------------------------------------------------
    async def _wait_for_room(self) -> None:
        """Wait until the queue is below its ``size`` limit (or closed)."""
        size, engine = self._settings.size, self._engine
        while size and engine.outstanding + self._inbound >= size and not self._closed:
            if engine.outstanding >= size:
                await engine.wait_room(size, lambda: self._closed)
            else:  # tasks other threads handed over take the rest: the loop admits them on its next turn
                await anyio.lowlevel.checkpoint()

    def _check_room(self, count: int) -> None:
        """Raise `QueueFullError` unless ``count`` more tasks fit under the ``size`` limit."""
        size = self._settings.size
        if size and self._engine.outstanding + self._inbound + count > size:
            raise QueueFullError(f"{count} tasks do not fit: the queue holds {self._engine.outstanding} "
                                 f"unfinished tasks and its size limit is {size} — submit fewer, or raise size=")

    # -- one task, or many ---------------------------------------------------------------------
    def _enqueue_all(self, calls: list[Call], options: TaskOptions) -> list[TaskHandle[Any]]:
        """Submit every call or none: each is checked, and the size limit too, before any is queued."""
        coroutines = []
        for fn, args, kwargs in calls:
            self._lane_for(fn, args, kwargs, options)
            if inspect.iscoroutine(fn):
                coroutines.append(fn)
        if coroutines and (len(set(map(id, coroutines))) < len(coroutines) or any(c in self._coroutines
                                                                                 for c in coroutines)):
            raise ValueError("a coroutine object in the group was submitted already, or is in it twice: a coroutine "
                             "object runs once — submit a new one for each (call the coroutine function again)")
        self._check_room(len(calls))
        return [self._enqueue(fn, args, kwargs, options) for fn, args, kwargs in calls]

    def _enqueue_each(self, fn: Any, items: Iterable[Any], options: TaskOptions) -> list[TaskHandle[Any]]:
        """``fn`` once per element of ``items`` (split by `arguments_of`), every call or none.

        What `_enqueue_all` does, with the route looked up and the queue's state checked once
        for the whole fan-out rather than per call (a map of tiny tasks spends most of its
        intake there). An awaitable, a closed queue and a call from another thread take the
        general path, which says what is wrong or hands the tasks over."""
        calls = [arguments_of(item) for item in items]
        engine = self._engine
        caller = engine.caller
        if (not calls or self._closed or inspect.isawaitable(fn)
                or (caller is not None and caller.thread_id != get_ident())):
            return self._enqueue_all([(fn, args, kwargs) for args, kwargs in calls], options)
        lane, fn_name = self._lane_for(fn, *calls[0], options)
        self._check_room(len(calls))
        admit, seq, clock = engine.admit, self._seq, time.time
        backend, name = lane.backend.name, options.name or fn_name
        handles = []
        for args, kwargs in calls:
            handle: TaskHandle[Any] = TaskHandle(engine, next(seq), fn, args, kwargs, options, backend, name, clock())
            admit(handle, lane)
            handles.append(handle)
        return handles

    def _enqueue(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: TaskOptions) -> TaskHandle[Any]:
        if self._closed:
            raise ClosedError("the queue is shut down and accepts no new task — create a new queue "
                              "(or call reset() once it is idle)")
        try:  # `_lane_for`, inline on this per-submit path
            route = self._routes[fn, options.backend]
        except (KeyError, TypeError):
            route = None
        lane, fn_name = route if route is not None else self._route(fn, args, kwargs, options)
        engine = self._engine
        size = self._settings.size
        caller = engine.caller
        foreign = caller is not None and caller.thread_id != get_ident()  # `in_loop_thread`, inline
        if size and engine.outstanding + self._inbound >= size:
            raise QueueFullError(f"the queue holds {size} unfinished tasks, its size limit — "
                                 "await q.put(...) to wait for room, or raise size=")
        if route is None and inspect.iscoroutine(fn):  # not cached: maybe a coroutine object, which runs once
            self._claim(fn)
        handle: TaskHandle[Any] = TaskHandle(engine, next(self._seq), fn, args, kwargs, options,
                                             lane.backend.name, options.name or fn_name, time.time())
        if not foreign:
            engine.admit(handle, lane)
            return handle
        dependencies_of(handle)  # refuse a handle of another queue here, in the caller's thread
        # handed over in batches: one wake-up of the loop per batch, not per task (a thread
        # submitting thousands of tasks would otherwise trade the GIL with the loop at each one)
        with self._inbound_lock:
            self._inbound += 1
            self._handovers.append((handle, lane))
            if self._drain_scheduled:
                return handle
            self._drain_scheduled = True
        if not caller.call(self._admit_foreign):  # type: ignore[union-attr]
            self._strand_handovers(handle)
        return handle

    def _claim(self, coroutine: Any) -> None:
        """Refuse a coroutine object submitted to this queue before: it can be awaited only once."""
        with self._inbound_lock:  # from any thread
            if coroutine in self._coroutines:
                raise ValueError(f"{coroutine!r} was submitted already: a coroutine object runs once — submit a "
                                 "new one (call the coroutine function again), or the function and its arguments")
            self._coroutines.add(coroutine)

    def _restorer(self) -> tuple[Engine, Iterator[int]]:
        """What a checkpointed fan-out needs to hand out restored handles: the engine, the task numbers."""
        return self._engine, self._seq

    # -- routes ------------------------------------------------------------------------------
    def _lane_for(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  options: TaskOptions) -> tuple[Any, str]:
        """The lane and default name for ``fn``: from the cache, else resolved and checked."""
        try:
            return self._routes[fn, options.backend]
        except (KeyError, TypeError):
            pass
        return self._route(fn, args, kwargs, options)  # outside the except: no KeyError as the context

    def _route(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: TaskOptions) -> tuple[Any, str]:
        """Resolve and check the backend for ``fn`` (cached per callable)."""
        backend = options.backend
        awaitable = inspect.isawaitable(fn)
        refuse_generator(fn)
        if backend == "auto":
            backend = "async" if awaitable or is_async_callable(fn) else "thread"
        if awaitable:
            if inspect.iscoroutine(fn) and inspect.getcoroutinestate(fn) != inspect.CORO_CREATED:
                raise ValueError(f"{fn!r} has started already: a coroutine object runs once — submit a new one "
                                 "(call the coroutine function again), or the function and its arguments")
            if args or kwargs:
                raise TypeError(f"{fn!r} is an awaitable; it takes no arguments — pass the coroutine "
                                "function and its arguments instead")
            if options.retries:
                raise ValueError(f"retries need a coroutine function: {fn!r} is a coroutine object, which "
                                 "can run only once — submit the function and its arguments instead")
        elif not callable(fn):
            raise TypeError(f"a task must be a callable or an awaitable, got {fn!r}")
        lane = self._engine.lane(backend)
        lane.backend.check(fn)
        name = getattr(fn, "__name__", None) or type(fn).__name__
        if not awaitable:
            if len(self._routes) > 1024:
                self._routes.clear()
            try:
                self._routes[fn, options.backend] = (lane, name)
            except TypeError:  # an unhashable callable: resolved again next time
                pass
        return lane, name

    # -- the hand-over from other threads ------------------------------------------------------
    def _admit_foreign(self) -> None:
        """On the loop: admit the tasks other threads handed over, in the order they came."""
        with self._inbound_lock:  # take the batch; a task handed over from now on schedules a new one
            batch = list(self._handovers)  # the deque stays: a dropped queue's finalizer counts what it holds
            self._handovers.clear()
            self._drain_scheduled = False
        refused = None
        if self._closed and not self._handovers_open:  # shutdown() had drained when it arrived
            refused = "cancelled: the queue shut down before this task, submitted from another thread, reached it"
        try:
            admit_handed_over(self._engine, batch, refused)  # and cancels those a cancel() reached first
        finally:  # counted as inbound until admitted: the size limit is never overshot meanwhile
            with self._inbound_lock:
                self._inbound -= len(batch)

    def _strand_handovers(self, mine: TaskHandle[Any]) -> None:
        """The loop is gone before a batch reached it: refuse ``mine``, cancel the rest of the batch."""
        with self._inbound_lock:
            stranded = list(self._handovers)
            self._handovers.clear()
            self._inbound -= len(stranded)
            self._drain_scheduled = False
        for handle, lane in stranded:
            if handle is not mine:  # submitted from another thread meanwhile, and already handed out
                self._engine.admit(handle, lane)
                self._engine.cancel(handle, "cancelled: the queue's event loop stopped before this task "
                                            "reached it")
        raise ClosedError("the queue's event loop has stopped; nothing more can be submitted")
