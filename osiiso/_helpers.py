"""One-call helpers: ``run`` a main coroutine, and ordered maps (``amap``, ``tmap``, ``pmap``)."""

from __future__ import annotations

import inspect
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, overload

import anyio

from ._checkpoint import Checkpoint
from ._engine.service import stop_every_queue
from ._loops import LoopCaller, current_loop_caller
from ._loopthread import running_event_loop
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


def _check_run(main: object, args: tuple[Any, ...], backend: object, use_uvloop: object, sigterm: object) -> None:
    """Refuse `run`'s bad arguments, and a call from a thread that runs an event loop already."""
    if backend not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    if not isinstance(sigterm, bool):
        raise ValueError(f"sigterm must be True or False, got {sigterm!r}")
    if use_uvloop is not None and not isinstance(use_uvloop, bool):
        raise ValueError(f"use_uvloop must be True, False or None (uvloop when it is installed), got {use_uvloop!r}")
    if inspect.iscoroutine(main):
        if backend == "trio":
            raise TypeError("under trio pass the async function itself (osiiso.run(main, backend='trio')), "
                            "not a coroutine object")
        if args:
            raise TypeError("arguments go with an async function, not with a coroutine object")
    running = running_event_loop()
    if running is not None:
        raise RuntimeError(f"osiiso.run() starts an event loop, but this thread is already running an {running} "
                           "event loop — in async code await the coroutine (`await main()`) instead")


def run(main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any, backend: str = "asyncio",
        use_uvloop: bool | None = None, sigterm: bool = True) -> T:
    """Run ``main`` (an async function and its args, or on asyncio a coroutine) to completion.

    ``backend="asyncio"`` uses uvloop when it is installed (``use_uvloop=False`` turns
    that off); ``backend="trio"`` runs under trio.

    With ``sigterm=True`` (the default, in the main thread) the first SIGTERM stops every queue
    as ``queue.cancel()`` does: running work is cancelled, ``run()`` returns its summary after
    the ``on_complete`` hooks, and once ``main`` returns the process exits with status 143
    (``SystemExit(143)``). With no queue running, ``main`` is cancelled instead. A second
    SIGTERM ends the process at once. ``sigterm=False`` leaves SIGTERM alone.
    """
    try:
        _check_run(main, args, backend, use_uvloop, sigterm)
    except BaseException:
        if inspect.iscoroutine(main):
            main.close()  # refused: it never runs, and Python would warn it was never awaited
        raise
    if inspect.iscoroutine(main):
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
    stop = _SigtermStop(fn) if sigterm and _can_handle_sigterm() else None
    if stop is not None:
        fn = stop.main
    try:
        if backend == "asyncio" and sys.version_info < (3, 11):
            value = _run_with_ctrl_c_as_cancel(fn, args, options)
        else:
            value = anyio.run(fn, *args, backend=backend, backend_options=options)
    except BaseException as exc:
        if stop is not None and stop.received:
            raise SystemExit(128 + signal.SIGTERM) from exc
        raise
    finally:
        if stop is not None:
            stop.uninstall()
    if stop is not None and stop.received:
        raise SystemExit(128 + signal.SIGTERM)
    return value


def _can_handle_sigterm() -> bool:
    """SIGTERM is handled in the main thread, when nobody else has taken it over."""
    return (hasattr(signal, "SIGTERM") and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)


class _SigtermStop:
    """The first SIGTERM stops the queues (or cancels ``main`` when none runs); the second kills."""

    def __init__(self, fn: Callable[..., Awaitable[Any]]) -> None:
        self.fn = fn
        self.received = False
        self.installed = False
        self.caller: LoopCaller | None = None
        self.scope: anyio.CancelScope | None = None

    async def main(self, *args: Any) -> Any:
        self.caller = current_loop_caller()
        with anyio.CancelScope() as scope:
            self.scope = scope
            signal.signal(signal.SIGTERM, self._on_signal)
            self.installed = True
            try:
                return await self.fn(*args)
            finally:
                self.scope = None
        return None  # cancelled by SIGTERM: run() exits with status 143

    def _on_signal(self, signum: int, frame: object) -> None:
        # a Python-level handler, in the main thread: restore the default first, so that a
        # second SIGTERM ends the process at once even if the loop never gets to the stop
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.received = True
        if self.caller is not None:
            self.caller.call(self._stop)

    def _stop(self) -> None:
        if not stop_every_queue("cancelled: the process received SIGTERM") and self.scope is not None:
            self.scope.cancel()  # no queue runs: stop main itself, as Ctrl-C would

    def uninstall(self) -> None:
        stop_every_queue(None)
        if self.installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self.installed = False


def _run_with_ctrl_c_as_cancel(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                               options: dict[str, Any]) -> T:
    """Python 3.10's asyncio raises Ctrl-C wherever the loop happens to be; 3.11+ cancels the main
    task instead, so the work is cancelled and recorded cleanly. Do the same here, then raise
    ``KeyboardInterrupt`` as 3.11+ does."""
    import asyncio

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
            await queue.run()  # a run: fail_policy="fail_first" applies
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


#: the `AsyncQueue` settings a one-shot map takes (not ``size``, ``mode``, ``keep_results`` or ``defaults``,
#: which mean nothing there, nor ``timeout``, which is the task option there: each attempt's limit)
_QUEUE_ARGS = ("workers", "threads", "processes", "mp_context", "initializer", "initargs", "max_tasks_per_child",
               "rate", "burst", "fail_policy", "on_start", "on_complete", "on_retry", "dask", "process_batching",
               "thread_batching")
_NOT_FOR_MAPS = ("size", "mode", "keep_results", "defaults", "on_timeout")


def _split_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if "context" in kwargs:  # the original osiiso's name for mp_context
        if "mp_context" in kwargs:
            raise TypeError("give mp_context= or its older name context=, not both")
        kwargs["mp_context"] = kwargs.pop("context")
    refused = sorted(k for k in kwargs if k in _NOT_FOR_MAPS)
    if refused:
        raise TypeError(f"{', '.join(refused)}: a queue setting a one-shot map does not take (it submits every "
                        "input at once and returns every value) — make an AsyncQueue (or osiiso.Queue) for it")
    queue_args = {k: kwargs.pop(k) for k in list(kwargs) if k in _QUEUE_ARGS}
    return queue_args, kwargs


@overload
async def amap(fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
               checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
               namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
@overload
async def amap(fn: Callable[..., T], iterable: Iterable[Any], /, *,
               checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
               namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
async def amap(fn: Callable[..., Any], iterable: Iterable[Any], /, *,
               checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
               namespace: str | None = None, **options: Any) -> tuple[Any, ...]:
    """Run ``fn`` over ``iterable`` in a fresh queue; a tuple of the values in input order.

    Queue settings (``workers``, ``threads``, ``processes``, ``mp_context``, ``initializer``,
    ``initargs``, ``max_tasks_per_child``, ``rate``, ``burst``, ``fail_policy``, the hooks
    ``on_start``/``on_complete``/``on_retry``, ``dask``, ``process_batching``,
    ``thread_batching``) and task options (``timeout`` is each attempt's) may both be given.
    Raises `ExecutionError` if any task fails. With ``checkpoint=``, inputs it
    holds are restored instead of run, and the new values are committed before it returns.
    """
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "amap()")
    return await _ordered(fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))


def _refuse_in_event_loop(name: str, backend: str) -> None:
    """``pmap``/``tmap`` start an event loop of their own: in async code, point at ``amap``."""
    running = running_event_loop()
    if running is not None:
        raise RuntimeError(
            f"osiiso.{name}() runs an event loop of its own and blocks until every task is done, but this "
            f"thread is already running an {running} event loop — in async code use "
            f"`await osiiso.amap(fn, items, backend={backend!r})` instead")


@overload
def tmap(fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
@overload
def tmap(fn: Callable[..., T], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
def tmap(fn: Callable[..., Any], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[Any, ...]:
    """From synchronous code: ``fn`` over ``iterable`` on threads; a tuple of the values in input order.

    In async code (a running event loop) it raises ``RuntimeError``: use `amap` there.
    """
    _refuse_in_event_loop("tmap", "thread")
    options.setdefault("backend", "thread")
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "tmap()")
    return anyio.run(_ordered, fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))


@overload
def pmap(fn: Callable[..., Coroutine[Any, Any, T]], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
@overload
def pmap(fn: Callable[..., T], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[T, ...]: ...
def pmap(fn: Callable[..., Any], iterable: Iterable[Any], /, *,
         checkpoint: Checkpoint | None = None, key: Callable[[Any], str | bytes] | None = None,
         namespace: str | None = None, **options: Any) -> tuple[Any, ...]:
    """From synchronous code: ``fn`` over ``iterable`` on processes; a tuple of the values in input order.

    In async code (a running event loop) it raises ``RuntimeError``: use `amap` there.
    """
    _refuse_in_event_loop("pmap", "process")
    options.setdefault("backend", "process")
    queue_args, task_options = _split_args(dict(options))
    reject_unknown(task_options, "pmap()")
    return anyio.run(_ordered, fn, iterable, queue_args, task_options, _resume_args(checkpoint, key, namespace))
