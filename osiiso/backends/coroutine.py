"""The async backend: coroutine tasks run on the queue's own event loop.

Interrupting an attempt is native here: the engine cancels its scope and the
coroutine receives the event loop's cancellation at its next ``await``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .base import Attempt, Backend

__all__ = ("AsyncBackend", "is_async_callable", "refuse_sync")


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (functions, partials, async ``__call__``)."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the type's __call__, not callable()
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def refuse_sync(fn: object, where: str = "backend='async'") -> None:
    """Raise ``TypeError`` unless ``fn`` is async (or an awaitable): ``where`` names what asked for it."""
    if is_async_callable(fn) or inspect.isawaitable(fn):
        return
    raise TypeError(
        f"{where} needs a coroutine function or an awaitable, got {fn!r}, "
        "which is synchronous — use backend='thread' or 'process' (or 'auto') for it"
    )


class AsyncBackend(Backend):
    """Runs coroutine functions (and awaitables) on the event loop, up to ``workers`` at once."""

    name = "async"

    @property
    def capacity(self) -> int:
        return self.config.workers

    def check(self, fn: Callable[..., Any]) -> None:
        refuse_sync(fn)

    def run(self, attempt: Attempt) -> Awaitable[Any]:
        # returns the coroutine itself: the engine awaits it with no extra frame between
        fn: Any = attempt.fn
        if attempt.args or attempt.kwargs or not inspect.isawaitable(fn):
            coro: Awaitable[Any] = fn(*attempt.args, **attempt.kwargs)
            return coro
        awaitable: Awaitable[Any] = fn
        return awaitable
