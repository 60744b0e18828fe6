"""Bound tasks of a blocking `osiiso.Queue`: the same as `BoundTask`, handing out blocking handles."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._bound import BoundMethod
from ._calls import BoundCalls
from ._group import TaskGroup
from ._sync_handle import LoopDriver, SyncTaskGroup, SyncTaskHandle, unwrap, unwrap_args, unwrap_kwargs

if TYPE_CHECKING:
    from ._bound import BoundTask
    from ._options import TaskOptions

__all__ = ("BlockingSubmitter", "SyncBoundTask", "SyncTaskDecorator")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class BlockingSubmitter(Protocol):
    """What a `SyncBoundTask` needs of the queue it is bound to: a blocking `osiiso.Queue`.

    The driver its handles hold, and its submission (of one task, or a fan-out) that waits for
    room on a full ``ThreadQueue``/``ProcessQueue``. A protocol, so that this module needs no import of
    ``_blocking``, which imports it.
    """

    @property
    def _driver(self) -> LoopDriver: ...

    def _when_full(self, submit: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...

    def _fan_out(self, submit: Callable[[list[Any], str | None], TaskGroup[Any]], items: list[Any],
                 group_id: str | None = None) -> TaskGroup[Any]: ...


class SyncBoundTask(BoundCalls[P, SyncTaskHandle[R]], Generic[P, R]):
    """A function bound to a blocking `osiiso.Queue` with preset options; calling it submits a task.

    It behaves as `BoundTask` does — keyword arguments named like options override the
    presets for that call, ``map``/``group``/``options`` work the same — and hands out
    `SyncTaskHandle` / `SyncTaskGroup`.
    """

    def __init__(self, queue: BlockingSubmitter, bound: BoundTask[P, R]) -> None:
        functools.update_wrapper(self, bound.__wrapped__, updated=())  # type: ignore[attr-defined]
        self._queue = queue
        self._bound = bound

    def _layers(self) -> tuple[Callable[..., Any], TaskOptions]:
        """As `BoundTask._layers`: what a task bound again from this one starts from."""
        return self._bound._layers()

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Read through an instance (a method decorated in a class body): the instance goes first."""
        return self if instance is None else BoundMethod(self, instance)

    @property
    def queue(self) -> BlockingSubmitter:
        """The queue the task submits to (an `osiiso.Queue`)."""
        return self._queue

    @property
    def default_options(self) -> TaskOptions:
        """The merged options every call starts from."""
        return self._bound.default_options

    def _call(self, *args: Any, **kwargs: Any) -> SyncTaskHandle[R]:
        bound, queue = self._bound, self._queue
        if args:
            args = unwrap_args(args)
        if kwargs:
            kwargs = unwrap_kwargs(kwargs)
        return SyncTaskHandle(queue._when_full(bound, *args, **kwargs), queue._driver)

    if not TYPE_CHECKING:  # type checkers see `BoundCalls.__call__`
        __call__ = _call

    def map(self, iterable: Iterable[Any], /, **options: Any) -> list[SyncTaskHandle[R]]:
        """Submit one call per element (tuple → positional args, dict → keyword args)."""
        bound, queue = self._bound, self._queue
        mapped = queue._fan_out(lambda part, _: TaskGroup(bound.map(part, **options), None),
                                list(map(unwrap, iterable)))
        return [SyncTaskHandle(h, queue._driver) for h in mapped.handles]

    def group(self, iterable: Iterable[Any], /, *, group_id: str | None = None,
              **options: Any) -> SyncTaskGroup[R]:
        """Submit one call per element as a `SyncTaskGroup`."""
        bound, queue = self._bound, self._queue
        group = queue._fan_out(lambda part, gid: bound.group(part, group_id=gid, **options),
                               list(map(unwrap, iterable)), group_id)
        return SyncTaskGroup(group, queue._driver)

    def options(self, opts: TaskOptions | None = None, /, **options: Any) -> SyncBoundTask[P, R]:
        """A copy of this bound task with ``opts``/``options`` laid over its presets."""
        return SyncBoundTask(self._queue, self._bound.options(opts, **options))

    def __repr__(self) -> str:
        fn = self._bound.__wrapped__  # type: ignore[attr-defined]
        return f"<SyncBoundTask {getattr(fn, '__qualname__', fn)!r} {self.default_options!r}>"


class SyncTaskDecorator(Protocol):
    """What ``Queue.task(...)`` returns: apply it to an async or a sync function."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> SyncBoundTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncBoundTask[P, R]: ...
