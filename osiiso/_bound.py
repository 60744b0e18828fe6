"""Bound tasks: ``@q.task(...)`` turns a function into a callable that submits it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._calls import BoundCalls
from ._intake import NO_KWARGS, refuse_generator
from ._options import OPTION_NAMES, TaskOptions, merge_options, reject_unknown
from ._shadow import refuse_shadowed, required_options
from .backends.coroutine import refuse_sync

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint
    from ._group import TaskGroup
    from ._handle import TaskHandle

P = ParamSpec("P")

R = TypeVar("R")

__all__ = ("BoundTask", "Submitter", "TaskDecorator", "make_bound")


class Submitter(Protocol):
    """What a `BoundTask` needs of the queue it is bound to: an `osiiso.AsyncQueue`.

    Its defaults, its way in for one call (``_enqueue``, which skips ``submit``'s argument
    packing), and ``map``/``group``. A protocol, so that this module needs no import of
    the queue's, which imports it.
    """

    @property
    def _defaults(self) -> TaskOptions: ...

    def _enqueue(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 options: TaskOptions) -> TaskHandle[Any]: ...

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], /, *, opts: TaskOptions | None = None,
            checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
            namespace: str | None = None, **options: Any) -> list[TaskHandle[Any]]: ...

    def group(self, fn: Callable[..., Any], iterable: Iterable[Any], /, *, group_id: str | None = None,
              opts: TaskOptions | None = None, checkpoint: Checkpoint | None = None,
              key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
              **options: Any) -> TaskGroup[Any]: ...


class BoundTask(BoundCalls[P, "TaskHandle[R]"], Generic[P, R]):
    """A function bound to a queue with preset options. Calling it submits a task.

    Keyword arguments whose names are option fields override the preset options for
    that call; all other arguments go to the function. ``map`` and ``group`` submit
    many calls with the same options; ``options(...)`` returns a copy with new presets.
    How type checkers see a call (handles as arguments, options as keywords): `osiiso._calls`.
    """

    def __init__(self, queue: Submitter, fn: Callable[..., Any], opts: TaskOptions | None,
                 overrides: Mapping[str, Any]) -> None:
        # its name, doc and __wrapped__ from fn, not fn's __dict__: a callable's own attributes
        # (a class's methods, an object's _options) must not take the place of the task's
        functools.update_wrapper(self, fn, updated=())
        self._queue = queue
        self._fn = fn
        self._opts = opts
        self._overrides = dict(overrides)
        self._options = merge_options(queue._defaults, opts, self._overrides, "task()")
        if self._options.backend == "async":  # refused now, not at every call
            refuse_sync(fn, "@q.task(backend='async')")
        self._required = required_options(fn)  # option names fn needs as arguments (usually none)

    def _layers(self) -> tuple[Callable[..., Any], TaskOptions]:
        """The function and the options this task was given (not its queue's defaults), for a
        task bound again (`make_bound`): its options combine with the new ones."""
        return self._fn, (self._opts or TaskOptions()).merged(None, self._overrides)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Read through an instance (a method decorated in a class body): the instance goes first."""
        return self if instance is None else BoundMethod(self, instance)

    @property
    def queue(self) -> Submitter:
        """The queue the task submits to (an `osiiso.AsyncQueue`)."""
        return self._queue

    @property
    def default_options(self) -> TaskOptions:
        """The merged options every call starts from."""
        return self._options

    def _split(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[TaskOptions, dict[str, Any]]:
        if not kwargs:
            return self._options, kwargs
        changes = {k: v for k, v in kwargs.items() if k in OPTION_NAMES}
        if not changes:
            return self._options, kwargs
        if self._required:
            refuse_shadowed(self._fn, args, changes, "a bound task's call", self._required)
        call_kwargs = {k: v for k, v in kwargs.items() if k not in OPTION_NAMES}
        return self._options.merged(None, changes), call_kwargs

    def _call(self, *args: Any, **kwargs: Any) -> TaskHandle[R]:
        if not kwargs:  # the common call, straight in: no options to split off
            return self._queue._enqueue(self._fn, args, NO_KWARGS, self._options)
        options, call_kwargs = self._split(args, kwargs)
        return self._queue._enqueue(self._fn, args, call_kwargs, options)

    if not TYPE_CHECKING:  # type checkers see `BoundCalls.__call__`
        __call__ = _call

    def map(self, iterable: Iterable[Any], /, *, checkpoint: Checkpoint | None = None,
            key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
            **options: Any) -> list[TaskHandle[R]]:
        """Submit one call per element (tuple → positional args, dict → keyword args).

        ``checkpoint``, ``key`` and ``namespace`` work as in `AsyncQueue.map`.
        """
        reject_unknown(options, "map()")
        return self._queue.map(self._fn, iterable, opts=self._options, checkpoint=checkpoint, key=key,
                               namespace=namespace, **options)

    def group(self, iterable: Iterable[Any], /, *, group_id: str | None = None,
              checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
              namespace: str | None = None, **options: Any) -> TaskGroup[R]:
        """Submit one call per element as a `TaskGroup` (``checkpoint`` as in `map`)."""
        reject_unknown(options, "group()")
        return self._queue.group(self._fn, iterable, group_id=group_id, opts=self._options, checkpoint=checkpoint,
                                 key=key, namespace=namespace, **options)

    def options(self, opts: TaskOptions | None = None, /, **options: Any) -> BoundTask[P, R]:
        """A copy of this bound task with ``opts``/``options`` laid over its presets."""
        merge_options(self._options, opts, options, "options()")  # a clear error for bad options, now
        fn, given = self._layers()
        return BoundTask(self._queue, fn, given.merged(opts, None), options)

    def __repr__(self) -> str:
        return f"<BoundTask {getattr(self._fn, '__qualname__', self._fn)!r} {self._options!r}>"


class TaskDecorator(Protocol):
    """What ``q.task(...)`` returns: apply it to an async or a sync function."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> BoundTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> BoundTask[P, R]: ...


class BoundMethod:
    """A bound task read through an instance: calls, ``map`` and ``group`` pass the instance as
    the function's first argument (as a method's ``self``)."""

    __slots__ = ("__self__", "_task")

    def __init__(self, task: Any, instance: object) -> None:
        self._task = task
        self.__self__ = instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task(self.__self__, *args, **kwargs)

    def _calls(self, iterable: Iterable[Any]) -> list[Any]:
        return [(self.__self__, *_positional(item)) for item in iterable]

    def map(self, iterable: Iterable[Any], /, **options: Any) -> Any:
        """``map`` of the task, each call with the instance first."""
        return self._task.map(self._calls(iterable), **options)

    def group(self, iterable: Iterable[Any], /, **options: Any) -> Any:
        """``group`` of the task, each call with the instance first."""
        return self._task.group(self._calls(iterable), **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def __repr__(self) -> str:
        return f"<bound method {self._task!r} of {self.__self__!r}>"


def _positional(item: Any) -> tuple[Any, ...]:
    if isinstance(item, Mapping):
        raise TypeError("map()/group() of a method take positional arguments after the instance: give "
                        f"tuples or single values, not {item!r}")
    return item if isinstance(item, tuple) else (item,)


def make_bound(queue: Submitter, fn: Callable[..., Any], opts: TaskOptions | None,
               overrides: Mapping[str, Any]) -> BoundTask[Any, Any]:
    """Bind ``fn`` to ``queue``. A bound task given as ``fn`` (decorators stacked, or a task bound
    again to another queue) gives its function, and its options under the new ones."""
    if not callable(fn):
        raise TypeError(f"@q.task() decorates a function, got {fn!r}")
    if isinstance(fn, BoundCalls):
        fn, given = fn._layers()  # type: ignore[attr-defined]
        opts = given.merged(opts, None)
    refuse_generator(fn)
    return BoundTask(queue, fn, opts, overrides)
