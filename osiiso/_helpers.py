"""One-call helpers: ``run`` a main coroutine, and ordered maps (``amap``, ``tmap``, ``pmap``)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import anyio

from ._checkpoint import Checkpoint
from ._options import reject_unknown
from .backends.coroutine import is_async_callable

__all__ = ("amap", "pmap", "run", "tmap")

T = TypeVar("T")


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any, backend: str = "asyncio",
        use_uvloop: bool | None = None) -> T:
    """Run ``main`` (an async function and its args, or on asyncio a coroutine) to completion.

    ``backend="asyncio"`` uses uvloop when it is installed (``use_uvloop=False`` turns
    that off); ``backend="trio"`` runs under trio.
    """
    if backend not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    if inspect.iscoroutine(main):
        if backend == "trio":
            main.close()
            raise TypeError("under trio pass the async function itself (osiiso.run(main, backend='trio')), "
                            "not a coroutine object")
        if args:
            raise TypeError("arguments go with an async function, not with a coroutine object")
        coro: Coroutine[Any, Any, T] = main

        async def main_fn() -> T:
            return await coro

        fn: Callable[..., Awaitable[T]] = main_fn
    elif callable(main) and is_async_callable(main):
        fn = main
    else:
        raise TypeError(f"osiiso.run() takes an async function (or, on asyncio, a coroutine), got {main!r}, "
                        "which is synchronous — define it with `async def`, or call it directly")
    options: dict[str, Any] = {}
    if backend == "asyncio":
        if use_uvloop is None:
            use_uvloop = _uvloop_available()
        options["use_uvloop"] = bool(use_uvloop)
    if backend == "asyncio" and sys.version_info < (3, 11):
        return _run_with_ctrl_c_as_cancel(fn, args, options)
    return anyio.run(fn, *args, backend=backend, backend_options=options)


def _run_with_ctrl_c_as_cancel(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                               options: dict[str, Any]) -> T:
    """Python 3.10's asyncio raises Ctrl-C wherever the loop happens to be; 3.11+ cancels the main
    task instead, so the work is cancelled and recorded cleanly. Do the same here, then raise
    ``KeyboardInterrupt`` as 3.11+ does."""
    import asyncio
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return anyio.run(fn, *args, backend="asyncio", backend_options=options)
    interrupted = False

    async def guarded(*call_args: Any) -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            if task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await fn(*call_args)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return anyio.run(guarded, *args, backend="asyncio", backend_options=options)
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise


async def _ordered(fn: Callable[..., Any], iterable: Iterable[Any], queue_args: dict[str, Any],
                   options: dict[str, Any], resume: dict[str, Any]) -> tuple[Any, ...]:
    from ._queue import AsyncQueue

    checkpoint = resume.get("checkpoint")
    try:
        async with AsyncQueue(**queue_args) as queue:
            group = queue.group(fn, iterable, **resume, **options)
            values = await group.values()
    finally:
        if isinstance(checkpoint, Checkpoint):  # what the map computed is in the file when it returns
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(checkpoint._wait_written)
    return values


def _resume_args(checkpoint: Checkpoint | None, key: Callable[[Any], str | bytes] | None,
                 namespace: str | None) -> dict[str, Any]:
    given = {"checkpoint": checkpoint, "key": key, "namespace": namespace}
    return {name: value for name, value in given.items() if value is not None}


_QUEUE_ARGS = ("workers", "threads", "processes", "mp_context", "initializer", "initargs", "max_tasks_per_child",
               "rate", "burst")


def _split_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if "context" in kwargs:  # the original osiiso's name for mp_context
        if "mp_context" in kwargs:
            raise TypeError("give mp_context= or its older name context=, not both")
        kwargs["mp_context"] = kwargs.pop("context")
    queue_args = {k: kwargs.pop(k) for k in list(kwargs) if k in _QUEUE_ARGS}
    return queue_args, kwargs


async def amap(fn: Callable[..., Any], iterable: Iterable[Any], /, *, checkpoint: Checkpoint | None = None,
               key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
               **options: Any) -> tuple[Any, ...]:
    """Run ``fn`` over ``iterable`` in a fresh queue; a tuple of the values in input order.

    Queue settings (``workers``, ``threads``, ``processes``, ``rate``, ``burst``…) and task
    options may both be given. Raises `ExecutionError` if any task fails. With ``checkpoint=``, inputs it
    holds are restored instead of run, and the new values are committed before it returns.
    """
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "amap()")
    return await _ordered(fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))


def tmap(fn: Callable[..., Any], iterable: Iterable[Any], /, *, checkpoint: Checkpoint | None = None,
         key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
         **options: Any) -> tuple[Any, ...]:
    """From synchronous code: ``fn`` over ``iterable`` on threads; a tuple of the values in input order."""
    options.setdefault("backend", "thread")
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "tmap()")
    return anyio.run(_ordered, fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))


def pmap(fn: Callable[..., Any], iterable: Iterable[Any], /, *, checkpoint: Checkpoint | None = None,
         key: Callable[[Any], str | bytes] | None = None, namespace: str | None = None,
         **options: Any) -> tuple[Any, ...]:
    """From synchronous code: ``fn`` over ``iterable`` on processes; a tuple of the values in input order."""
    options.setdefault("backend", "process")
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "pmap()")
    return anyio.run(_ordered, fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))
