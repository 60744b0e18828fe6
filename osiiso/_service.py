"""A background task that outlives the call that starts it, on asyncio and on trio.

The queue's workers live in one anyio task group inside such a service task, so
``await q.start()`` can return while the workers go on, and code in the caller's
task (an ``async with`` body, a cancel scope, an exception) never tangles with the
workers' cancel scopes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ("spawn_service",)

logger = logging.getLogger("osiiso")


def spawn_service(fn: Callable[[], Awaitable[Any]], finished: anyio.Event) -> None:
    """Run ``fn()`` as a detached task of the current loop; set ``finished`` when it ends.

    ``fn`` must not raise: anything it lets through is logged, since no caller awaits it.
    """

    async def service() -> None:
        try:
            await fn()
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException:  # pragma: no cover - the engine catches its own errors
            logger.exception("osiiso: the queue's service task failed")
        finally:
            finished.set()

    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio

        async def system_task() -> None:
            try:
                await service()
            except trio.Cancelled:
                pass

        trio.lowlevel.spawn_system_task(system_task, name="osiiso-queue")
        return
    task = loop.create_task(service(), name="osiiso-queue")
    _running_tasks.add(task)
    task.add_done_callback(_running_tasks.discard)


_running_tasks: set[Any] = set()
