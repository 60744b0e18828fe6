"""Calling the queue's hooks: sync or async, and never letting one break the queue.

A hook is user code: whatever it raises — ``Exception`` or ``BaseException`` alike
(``SystemExit``, ``KeyboardInterrupt``, a stray ``CancelledError``) — is logged to the
``"osiiso"`` logger and the queue goes on. Only a real cancellation of the task awaiting an
async hook (the service stops, a run's time limit cuts the hook short) goes through.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio

from .._events import osiiso_logger
from .text import safe_repr

if TYPE_CHECKING:
    from .records import Records

__all__ = ("IN_HOOK", "await_hook", "call_hook", "cancel_pending", "cancel_requested", "current_asyncio_task",
           "is_async_hook", "is_cancelled_here", "is_stopped_from_outside", "log_hook_error", "outside_hooks",
           "spawn_hook", "take_back_own_cancel")

logger = osiiso_logger
#: the engine whose hook the current task is running (join() there would wait for itself)
IN_HOOK: ContextVar[Records | None] = ContextVar("osiiso_in_hook", default=None)


def outside_hooks(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` as code that is none of the queues' hooks: a task it spawns inherits a context
    in which it may wait for a queue's hooks (`Records.wait_idle`), even when called from one."""
    token = IN_HOOK.set(None)
    try:
        return fn(*args)
    finally:
        IN_HOOK.reset(token)


def is_cancelled_here(exc: BaseException) -> bool:
    """Whether ``exc`` is the loop's cancellation of the running task (not one user code raised).

    It is when it is the loop's cancellation exception and a cancel scope around the caller has
    been cancelled (anyio then reports an effective deadline of minus infinity).
    """
    return isinstance(exc, anyio.get_cancelled_exc_class()) and anyio.current_effective_deadline() == -float("inf")


def current_asyncio_task() -> asyncio.Task[Any] | None:
    """The asyncio task running now, or ``None`` (outside a task, or under trio)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no asyncio loop here (trio): only cancel scopes cancel there
        return None


def cancel_requested(task: Any) -> bool:
    """Whether ``task.cancel()`` was called on asyncio task ``task`` and not taken back
    (``Task.cancelling()``, Python 3.11+; ``False`` where it cannot be told, and for ``None``)."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


def cancel_pending(task: Any) -> bool:
    """Whether asyncio task ``task`` (not the running one) has been cancelled with ``task.cancel()``
    and has not run since. `cancel_requested` on Python 3.11+; on 3.10, which keeps no count, the
    future it waits on is cancelled, or the cancel waits for its next step (``False`` for ``None``)."""
    if task is None:
        return False
    if hasattr(task, "cancelling"):
        return cancel_requested(task)
    if getattr(task, "_must_cancel", False):
        return True
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and bool(waiter.cancelled())


def is_stopped_from_outside(exc: BaseException, *, unsure: bool = False) -> bool:
    """Whether ``exc`` is the cancellation of the running task itself, by a scope or by the loop:
    `is_cancelled_here`, or an asyncio task cancelled with ``task.cancel()`` (as ``asyncio.run``
    does to the tasks left when its main coroutine returns). Python 3.10 cannot tell the
    latter from a ``CancelledError`` that code raised: there the answer is ``unsure``."""
    if is_cancelled_here(exc):
        return True
    task = current_asyncio_task() if isinstance(exc, asyncio.CancelledError) else None
    if task is None:
        return False
    return cancel_requested(task) if hasattr(task, "cancelling") else unsure


def take_back_own_cancel(exc: BaseException) -> None:
    """A task's code cancelled the asyncio task that runs it (``current_task().cancel()``): ``exc``
    is the task's own outcome, so the request is taken back and the worker goes on, its scopes intact."""
    task = current_asyncio_task() if isinstance(exc, asyncio.CancelledError) else None
    if task is not None and cancel_requested(task):
        task.uncancel()  # type: ignore[attr-defined]  # Python 3.11+, as cancel_requested is


def is_async_hook(hook: object) -> bool:
    """Whether calling ``hook`` makes a coroutine: an ``async def`` function or method, a partial of
    one, or an object whose ``__call__`` is one."""
    call = type(hook).__dict__.get("__call__") if not inspect.isroutine(hook) else None
    return inspect.iscoroutinefunction(hook) or (call is not None and inspect.iscoroutinefunction(call))


def log_hook_error(hook: object, exc: BaseException) -> None:
    """Log what ``hook`` raised, with its traceback; the queue goes on."""
    logger.error("osiiso: hook %s raised %s; the queue goes on", safe_repr(hook), type(exc).__name__,
                 exc_info=(type(exc), exc, exc.__traceback__))


async def call_hook(hook: Callable[..., object], *args: Any) -> None:
    """Call ``hook(*args)``, awaiting it if it is async; log and swallow whatever it raises."""
    try:
        outcome = hook(*args)
        if inspect.isawaitable(outcome):
            await outcome
    except BaseException as exc:
        if is_cancelled_here(exc):
            raise
        log_hook_error(hook, exc)


def spawn_hook(engine: Records, hook: Callable[..., object], args: tuple[Any, ...]) -> None:
    """Call a hook from synchronous engine code: a sync hook now, an async one in the service.

    An async hook counts as a running hook until it ends, so a run waits for it as it waits
    for the hooks its workers await (`Engine.spawn_awaitable`).
    """
    try:
        outcome = hook(*args)
    except BaseException as exc:  # sync engine code: nothing here is a cancellation of ours
        log_hook_error(hook, exc)
        return
    if inspect.isawaitable(outcome):
        engine.spawn_awaitable(hook, outcome)


async def await_hook(hook: Callable[..., object], outcome: Awaitable[Any]) -> None:
    """Await what an async hook returned; log and swallow whatever it raises."""
    try:
        await outcome
    except BaseException as exc:
        if is_cancelled_here(exc):
            raise
        log_hook_error(hook, exc)
