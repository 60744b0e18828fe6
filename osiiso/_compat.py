"""ThreadQueue and ProcessQueue: blocking Queues for scripts written for the original osiiso.

Each is a `Queue` whose tasks run on threads (processes) unless their options say
otherwise, and which takes the original's constructor arguments: ``workers`` sizes the
pool as it did there, ``context`` is the original's name for ``mp_context``, and, as in the
original, ``submit()``/``map()``/``group()`` and bound tasks (their ``map()`` and ``group()``
too) on a queue at its ``size`` limit wait for room instead of raising `QueueFullError`
(a fan-out too big to fit at once goes in a task at a time). ``docs/guides/migrating.md``
maps the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from ._blocking import Queue
from ._options import TaskOptions
from ._result import TaskResult
from ._sync_handle import SyncTaskHandle

__all__ = ("ProcessQueue", "ThreadQueue")

StartHook = Callable[[SyncTaskHandle[Any]], object]
RetryHook = Callable[[SyncTaskHandle[Any], BaseException], object]


def _defaults_with(backend: str, defaults: TaskOptions | None) -> TaskOptions:
    """``defaults`` with ``backend`` as its backend, unless it names one itself."""
    base = TaskOptions(backend=backend)
    if defaults is None:
        return base
    if not isinstance(defaults, TaskOptions):
        raise ValueError(f"defaults must be a TaskOptions or None, got {defaults!r}")
    return base.merged(defaults)


class ThreadQueue(Queue):
    """A blocking `Queue` whose tasks run in its thread pool by default.

    ``workers`` is the number of threads, as in the original osiiso (and the cap on
    running tasks); ``threads`` may still be given apart. Tasks may choose another backend
    with their options (``backend="process"``, ``"async"``). On a queue at its ``size``
    limit, ``submit()``, ``map()``, ``group()`` and bound tasks wait for room.
    """

    _wait_for_room: ClassVar[bool] = True

    def __init__(
        self, *, workers: int | None = None, size: int = 0, timeout: float | None = None, mode: str = "finite",
        fail_policy: str = "continue", on_timeout: str = "complete", rate: float | None = None, burst: int = 1,
        initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = (),
        on_start: StartHook | None = None, on_complete: Callable[[TaskResult], object] | None = None,
        on_retry: RetryHook | None = None, threads: int | None = None, processes: int | None = None,
        defaults: TaskOptions | None = None, mp_context: Any = None, max_tasks_per_child: int | None = None,
        dask: Any = None, keep_results: bool | int = True, process_batching: bool = True,
        thread_batching: bool = True, loop: str = "asyncio",
    ) -> None:
        super().__init__(
            workers=workers, threads=workers if threads is None else threads, processes=processes, size=size,
            timeout=timeout, mode=mode, fail_policy=fail_policy, on_timeout=on_timeout, rate=rate, burst=burst,
            defaults=_defaults_with("thread", defaults), on_start=on_start, on_complete=on_complete,
            on_retry=on_retry, initializer=initializer, initargs=initargs, mp_context=mp_context,
            max_tasks_per_child=max_tasks_per_child, dask=dask, keep_results=keep_results,
            process_batching=process_batching, thread_batching=thread_batching, loop=loop)


class ProcessQueue(Queue):
    """A blocking `Queue` whose tasks run in its pool of worker processes by default.

    ``workers`` is the number of worker processes, as in the original osiiso (and the cap
    on running tasks); ``context`` is the original's name for ``mp_context`` (a start
    method name or a multiprocessing context). Functions travel with cloudpickle, so lambdas
    and functions of ``__main__`` work, with or without a ``__main__`` guard. On a queue at
    its ``size`` limit, ``submit()``, ``map()``, ``group()`` and bound tasks wait for room.
    """

    _wait_for_room: ClassVar[bool] = True

    def __init__(
        self, *, workers: int | None = None, size: int = 0, timeout: float | None = None, mode: str = "finite",
        fail_policy: str = "continue", on_timeout: str = "complete", rate: float | None = None, burst: int = 1,
        context: Any = None, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = (),
        on_start: StartHook | None = None, on_complete: Callable[[TaskResult], object] | None = None,
        on_retry: RetryHook | None = None, threads: int | None = None, processes: int | None = None,
        defaults: TaskOptions | None = None, mp_context: Any = None, max_tasks_per_child: int | None = None,
        dask: Any = None, keep_results: bool | int = True, process_batching: bool = True,
        thread_batching: bool = True, loop: str = "asyncio",
    ) -> None:
        if context is not None and mp_context is not None:
            raise TypeError("ProcessQueue() takes mp_context= or its older name context=, not both")
        super().__init__(
            workers=workers, threads=threads, processes=workers if processes is None else processes, size=size,
            timeout=timeout, mode=mode, fail_policy=fail_policy, on_timeout=on_timeout, rate=rate, burst=burst,
            defaults=_defaults_with("process", defaults), on_start=on_start, on_complete=on_complete,
            on_retry=on_retry, initializer=initializer, initargs=initargs,
            mp_context=context if mp_context is None else mp_context,
            max_tasks_per_child=max_tasks_per_child, dask=dask, keep_results=keep_results,
            process_batching=process_batching, thread_batching=thread_batching, loop=loop)
