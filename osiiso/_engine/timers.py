"""Tasks that start later: the one timer heap for ``delay``, ``run_at`` and retry delays.

None of these tasks holds a worker while it waits. The service's loop task sleeps until the
soonest entry is due (`Timers.wait_next`), and is poked awake for an earlier entry or when
the engine asks it for a dispatch.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import anyio
import anyio.lowlevel

from .._handle import SCHEDULED, TaskHandle

__all__ = ("Timers",)


class Timers:
    """Tasks that start later (``delay``, ``run_at``, retry delays), soonest first.

    Due times are ``time.monotonic()`` values, so they mean the same on every event loop.
    """

    __slots__ = ("counter", "heap", "live", "poked", "wakeup")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, TaskHandle[Any]]] = []
        self.live = 0
        self.counter = 0
        self.wakeup: anyio.Event | None = None
        #: poked since the loop task last began to wait: its next `wait_next` returns at once, so a
        #: poke while it is busy (a dispatch asked from inside a dispatch) is never lost
        self.poked = False

    def schedule(self, handle: TaskHandle[Any], due: float) -> None:
        """Hold ``handle`` until the monotonic time ``due``."""
        handle._where = SCHEDULED
        self.counter += 1
        is_first = not self.heap or due < self.heap[0][0]
        heapq.heappush(self.heap, (due, self.counter, handle))
        self.live += 1
        if is_first:
            self.poke()

    def poke(self) -> None:
        """Wake the service's loop task now (a dispatch or a spawn is wanted, or an earlier entry)."""
        self.poked = True
        if self.wakeup is not None:
            self.wakeup.set()

    def discard(self, handle: TaskHandle[Any]) -> None:
        """Forget a scheduled task that is being cancelled."""
        self.live -= 1

    def pop_due(self, now: float) -> list[TaskHandle[Any]]:
        """Remove and return the live tasks due by ``now``."""
        due: list[TaskHandle[Any]] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if handle._where is SCHEDULED:
                self.live -= 1
                due.append(handle)
        while heap and heap[0][2]._where is not SCHEDULED:
            heapq.heappop(heap)
        return due

    def next_due(self) -> float | None:
        """The monotonic time of the soonest entry, if any."""
        return self.heap[0][0] if self.heap else None

    async def wait_next(self, also: float | None = None) -> None:
        """Sleep until the soonest entry (or the monotonic time ``also``) is due, or until poked
        (only yield, if it was poked since it last waited)."""
        if self.poked:
            self.poked = False
            await anyio.lowlevel.checkpoint()
            return
        self.wakeup = anyio.Event()
        due = self.next_due()
        if also is not None and (due is None or also < due):
            due = also
        if due is None:
            await self.wakeup.wait()
        else:
            with anyio.move_on_after(max(0.0, due - time.monotonic())):
                await self.wakeup.wait()
        self.poked = False  # the loop task serves what the poke asked for next
