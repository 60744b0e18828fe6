"""Parking an awaiting coroutine until a pool says its job is done, without an anyio Event.

On asyncio and uvloop the waiter is a future of the running loop; on trio the parked task
itself, rescheduled when the job ends. Both are cancelled by the engine's anyio cancel scope
like any other await, and cost less than an ``anyio.Event`` per attempt. A job object only
needs a ``waiter`` attribute; ``wake(job)`` must be called on the loop's thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ("Waiter", "waiter_for_running_loop")


class _FutureWaiter:
    """asyncio/uvloop: the job's waiter is a future of the running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._create_future = loop.create_future

    def prepare(self, job: Any) -> None:
        job.waiter = self._create_future()

    async def wait(self, job: Any) -> None:
        await job.waiter

    @staticmethod
    def wake(job: Any) -> None:
        future = job.waiter
        if not future.done():
            future.set_result(None)


class _TrioWaiter:
    """trio: the job's waiter is the parked task, rescheduled when the job ends."""

    def __init__(self) -> None:
        import trio

        self._lowlevel = trio.lowlevel

    def prepare(self, job: Any) -> None:
        job.waiter = None

    async def wait(self, job: Any) -> None:
        lowlevel = self._lowlevel
        job.waiter = lowlevel.current_task()

        def abort(_: object) -> Any:
            job.waiter = None
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)

    def wake(self, job: Any) -> None:
        task, job.waiter = job.waiter, None
        if task is not None:
            self._lowlevel.reschedule(task)


def waiter_for_running_loop() -> Waiter:
    """The waiter kind for the event loop running in this thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _TrioWaiter()  # anyio runs on asyncio or trio only
    return _FutureWaiter(loop)


Waiter = _FutureWaiter | _TrioWaiter
