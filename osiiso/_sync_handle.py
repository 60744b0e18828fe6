"""Blocking handles: `SyncTaskHandle`, `SyncTaskGroup` and `iter_completed`, for `osiiso.Queue`.

A `SyncTaskHandle` wraps the engine's `TaskHandle` (the task's one record) and adds waits
that block the calling thread: ``result(timeout=None)``, ``value(timeout=None)``. A wait
registers a done callback (which the engine runs on its loop's thread) that sets a
``threading.Event``; nothing polls and nothing crosses to the loop when the task has
already ended. A wait starts the queue's workers if they are not running yet, as ``join()``
does, since otherwise the task could never end. A Ctrl-C during a wait cancels the run, as
one during ``run()`` does (`cancelling_on_interrupt`).
"""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ._group import TaskGroup, summarize, values_of
from ._handle import TaskHandle
from ._loopthread import check_not_in_event_loop
from ._results import RunSummary, TaskResult, TaskStatus

if TYPE_CHECKING:
    from ._options import TaskOptions

__all__ = ("LoopDriver", "SyncTaskGroup", "SyncTaskHandle", "cancelling_on_interrupt", "iter_completed")

T = TypeVar("T")


class LoopDriver(Protocol):
    """What a blocking handle needs of the `osiiso._driver.Driver` of its queue's loop thread.

    A protocol, so that this module needs no import of ``_driver``.
    """

    def ensure_serving(self) -> None:
        """Start the queue's workers unless they run (something is about to wait for a task)."""

    def interrupted(self) -> None:
        """A wait for the queue's tasks was interrupted (Ctrl-C): cancel the run, as ``run()`` does."""


def cancelling_on_interrupt(drivers: Iterable[LoopDriver], wait: Callable[..., T], /, *args: Any) -> T:
    """``wait(*args)``, a blocking wait for tasks of the queues of ``drivers``; a Ctrl-C (any
    interrupt that is not an ``Exception``) there cancels their runs before it goes on."""
    try:
        return wait(*args)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            for driver in drivers:
                driver.interrupted()
        raise


class SyncTaskHandle(Generic[T]):
    """A task submitted to a blocking `osiiso.Queue`; its waits block the calling thread.

    ``result(timeout=None)`` waits for the `TaskResult`; ``value(timeout=None)`` for the
    value (raising the task's error, or `TaskCancelledError`); both raise the built-in
    ``TimeoutError`` if ``timeout`` seconds pass first. A handle passed as an argument to
    another task is a dependency, as with `AsyncQueue`. Handed out by the queue.
    """

    __slots__ = ("_driver", "_handle")

    def __init__(self, handle: TaskHandle[T], driver: LoopDriver) -> None:
        self._handle = handle
        self._driver = driver

    # -- identity (the engine's record) ---------------------------------------------------
    @property
    def task_id(self) -> str:
        """The task's id, unique within its queue (``"task-<n>"``)."""
        return self._handle.task_id

    @property
    def name(self) -> str:
        """The ``name`` option, or the function's name when none was given."""
        return self._handle.name

    @property
    def backend(self) -> str:
        """The backend that runs the task (``"auto"`` already resolved)."""
        return self._handle.backend

    @property
    def priority(self) -> int:
        """The ``priority`` option (lower runs first)."""
        return self._handle.priority

    @property
    def group_id(self) -> str | None:
        """The ``group_id`` option."""
        return self._handle.group_id

    @property
    def metadata(self) -> Mapping[str, Any] | None:
        """The ``metadata`` option."""
        return self._handle.metadata

    @property
    def options(self) -> TaskOptions:
        """The task's merged, validated options."""
        return self._handle.options

    @property
    def status(self) -> TaskStatus:
        """``pending``, ``running``, ``retrying``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self._handle.status

    @property
    def attempts(self) -> int:
        """How many attempts have started so far."""
        return self._handle.attempts

    # -- outcome --------------------------------------------------------------------------
    def done(self) -> bool:
        """Whether the task has its result (never waits)."""
        return self._handle.done()

    def cancelled(self) -> bool:
        """Whether the task ended cancelled (never waits)."""
        return self._handle.cancelled()

    def result(self, timeout: float | None = None) -> TaskResult:
        """Wait for the task to end and return its `TaskResult`.

        ``TimeoutError`` if it has not ended after ``timeout`` seconds (``None``: no limit).
        """
        if not self._handle.done():
            wait_all((self,), timeout)
        return self._handle.result()

    def wait(self, timeout: float | None = None) -> TaskResult:
        """The same as `result` (the original osiiso's name for it)."""
        return self.result(timeout)

    def value(self, timeout: float | None = None) -> T:
        """Wait for the task and return its value; raise its exception, or `TaskCancelledError`."""
        if not self._handle.done():
            wait_all((self,), timeout)
        return self._handle.value()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task and return its exception, or ``None`` if it succeeded."""
        return self.result(timeout).exception

    def cancel(self, reason: str | None = None) -> bool:
        """Ask for the task to be cancelled (from any thread); ``False`` if it had already ended."""
        return self._handle.cancel(reason)

    def add_done_callback(self, fn: Callable[[SyncTaskHandle[T]], object]) -> None:
        """Call ``fn(handle)`` when the task ends (at once if it has); ``fn`` runs on the loop's thread."""
        if not callable(fn):
            raise TypeError(f"add_done_callback() takes a callable fn(handle), got {fn!r}")
        self._handle.add_done_callback(lambda _: fn(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SyncTaskHandle):
            return self._handle is other._handle
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._handle)

    def __repr__(self) -> str:
        return f"<SyncTaskHandle {self.task_id} {self.name!r} {self.status.value}>"


def wait_all(handles: Sequence[SyncTaskHandle[Any]], timeout: float | None) -> None:
    """Block until every handle has ended; ``TimeoutError`` after ``timeout`` seconds."""
    pending = [h for h in handles if not h._handle.done()]
    if not pending:
        return
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout < 0):
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    check_not_in_event_loop("waiting for a task of an osiiso.Queue")
    drivers = {id(h._driver): h._driver for h in pending}.values()
    for driver in drivers:
        driver.ensure_serving()
    left = [len(pending)]
    lock = threading.Lock()
    finished = threading.Event()

    def one_done(_: object) -> None:
        with lock:
            left[0] -= 1
            if not left[0]:
                finished.set()

    for handle in pending:
        handle._handle.add_done_callback(one_done)
    if not cancelling_on_interrupt(drivers, finished.wait, timeout):
        unfinished = sum(1 for h in pending if not h._handle.done())
        if len(handles) == 1:
            first = handles[0]
            raise TimeoutError(f"task {first.name!r} ({first.task_id}) has not ended after {timeout:g}s")
        raise TimeoutError(f"{unfinished} of {len(handles)} tasks have not ended after {timeout:g}s")


class SyncTaskGroup(Generic[T]):
    """Tasks submitted by one ``group()`` call of a blocking `osiiso.Queue`; handed out by the queue.

    ``wait(timeout=None)`` blocks for every task and gives a `RunSummary`;
    ``values(timeout=None)`` the values in input order (`ExecutionError` if any did not
    succeed); ``as_completed(timeout=None)`` yields the handles as they end.
    """

    __slots__ = ("_group", "handles")

    def __init__(self, group: TaskGroup[T], driver: LoopDriver) -> None:
        self._group = group
        self.handles: tuple[SyncTaskHandle[T], ...] = tuple(SyncTaskHandle(h, driver) for h in group.handles)

    @property
    def group_id(self) -> str | None:
        """The group's id (the ``group_id`` of every task in it)."""
        return self._group.group_id

    def __len__(self) -> int:
        return len(self.handles)

    def __iter__(self) -> Iterator[SyncTaskHandle[T]]:
        return iter(self.handles)

    def __getitem__(self, index: int) -> SyncTaskHandle[T]:
        return self.handles[index]

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Block until every task has ended; their results in submission order.

        ``timeout`` is one budget for the whole group (``TimeoutError`` when it runs out).
        """
        wait_all(self.handles, timeout)
        return summarize([h._handle.result() for h in self.handles])

    def values(self, timeout: float | None = None) -> tuple[T, ...]:
        """The values in input order; `ExecutionError` if any task did not succeed."""
        return values_of(self.wait(timeout), self.group_id)

    def as_completed(self, timeout: float | None = None) -> Iterator[SyncTaskHandle[T]]:
        """Yield the group's handles as they end, earliest first (``timeout``: one budget for all)."""
        return iter_completed(self.handles, timeout)

    def cancel(self) -> int:
        """Cancel every task of the group that has not ended; return how many."""
        return self._group.cancel()

    def done(self) -> bool:
        """Whether every task has ended."""
        return self._group.done()

    def __repr__(self) -> str:
        finished = sum(1 for h in self.handles if h.done())
        return f"<SyncTaskGroup {self.group_id!r} {finished}/{len(self.handles)} done>"


def iter_completed(handles: Iterable[SyncTaskHandle[T]], timeout: float | None = None) -> Iterator[SyncTaskHandle[T]]:
    """Yield the handles of a blocking `osiiso.Queue` as their tasks end, earliest first.

    Blocks the calling thread between items; ``timeout`` is one budget for the whole
    iteration, after which ``TimeoutError`` is raised.
    """
    items = list(handles)
    for item in items:
        if not isinstance(item, SyncTaskHandle):
            raise TypeError(f"iter_completed() takes the handles of an osiiso.Queue, got {item!r} — "
                            "for AsyncQueue handles use `async for h in osiiso.as_completed(handles)`")
    return _completed(items, timeout)


def _completed(items: list[SyncTaskHandle[T]], timeout: float | None) -> Iterator[SyncTaskHandle[T]]:
    if not items:
        return
    check_not_in_event_loop("iter_completed()")
    drivers = {id(h._driver): h._driver for h in items if not h.done()}.values()
    for driver in drivers:
        driver.ensure_serving()
    arrived: stdlib_queue.SimpleQueue[SyncTaskHandle[T]] = stdlib_queue.SimpleQueue()
    for handle in items:
        handle._handle.add_done_callback(lambda _, h=handle: arrived.put(h))  # type: ignore[misc]
    deadline = None if timeout is None else time.monotonic() + timeout
    for given in range(len(items)):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            yield cancelling_on_interrupt(drivers, arrived.get, True, remaining)
        except stdlib_queue.Empty:
            raise TimeoutError(f"{len(items) - given} of {len(items)} tasks have not ended after "
                               f"{timeout:g}s") from None


#: the argument types that are, or may hold, a blocking handle (one level deep, as the engine scans)
_MAY_HOLD = frozenset({SyncTaskHandle, list, tuple, dict})


def unwrap_arg(value: Any) -> Any:
    """One argument with blocking handles replaced by the engine's handles (so they are
    dependencies): the argument itself, or the items of a list/tuple or values of a dict."""
    kind = type(value)
    if kind is SyncTaskHandle:
        return value._handle
    if (kind is tuple or kind is list) and SyncTaskHandle in map(type, value):
        return kind(h._handle if type(h) is SyncTaskHandle else h for h in value)
    if kind is dict and SyncTaskHandle in map(type, value.values()):
        return {k: (h._handle if type(h) is SyncTaskHandle else h) for k, h in value.items()}
    return value


def unwrap_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Positional arguments with blocking handles replaced (cheap when none can hold one)."""
    if not args or _MAY_HOLD.isdisjoint(map(type, args)):
        return args
    return tuple(map(unwrap_arg, args))


def unwrap(value: Any) -> Any:
    """One element of a fan-out (a tuple of args, a dict of keyword args, or one arg) with its
    blocking handles replaced by the engine's handles."""
    kind = type(value)
    if kind is tuple:
        return unwrap_args(value)
    if kind is dict:
        return unwrap_kwargs(value)
    return unwrap_arg(value)


def unwrap_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments with blocking handles replaced by the engine's handles."""
    if not kwargs or _MAY_HOLD.isdisjoint(map(type, kwargs.values())):
        return kwargs
    return {k: unwrap_arg(v) for k, v in kwargs.items()}
