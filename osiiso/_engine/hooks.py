"""Calling the queue's hooks: sync or async, and never letting one break the queue."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Records

__all__ = ("await_hook", "call_hook", "spawn_hook")

logger = logging.getLogger("osiiso")


async def call_hook(hook: Callable[..., object], *args: Any) -> None:
    """Call ``hook(*args)``, awaiting it if it is async; log and swallow its exceptions."""
    try:
        outcome = hook(*args)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:
        logger.exception("osiiso: hook %r raised; the queue goes on", hook)


def spawn_hook(engine: Records, hook: Callable[..., object], args: tuple[Any, ...]) -> None:
    """Call a hook from synchronous engine code: a sync hook now, an async one in the service.

    An async hook counts as a running hook until it ends, so a run waits for it as it waits
    for the hooks its workers await (`Engine.spawn_awaitable`).
    """
    try:
        outcome = hook(*args)
    except Exception:
        logger.exception("osiiso: hook %r raised; the queue goes on", hook)
        return
    if inspect.isawaitable(outcome):
        engine.spawn_awaitable(hook, outcome)


async def await_hook(hook: Callable[..., object], outcome: Awaitable[Any]) -> None:
    """Await what an async hook returned; log and swallow its exceptions."""
    try:
        await outcome
    except Exception:
        logger.exception("osiiso: hook %r raised; the queue goes on", hook)
