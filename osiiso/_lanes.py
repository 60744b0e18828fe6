"""Ready queues: one `Lane` per backend, and the timer heap for tasks that start later.

A lane orders its ready tasks by priority, then by submission (a task submitted earlier
starts earlier, even if it became ready later: a pipeline's later steps for early items go
before the first steps of later ones). Each priority has a `Bucket`; a heap of the
priorities in use finds the lowest.
Cancelling a ready task removes it lazily: its handle's place changes, the lane's live
count drops at once, and the stale entry is skipped when it reaches the front.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from ._handle import READY, SCHEDULED, TaskHandle

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ("Bucket", "Lane", "Timers")


class Bucket:
    """The ready tasks of one priority: a deque in submission order, and a heap for latecomers.

    Tasks mostly become ready in the order they were submitted and go to the deque (O(1)).
    One submitted before the deque's last task (a dependent whose inputs are done, a retry,
    a delayed task coming due) goes to the heap, keyed by submission number instead.
    """

    __slots__ = ("fresh", "late")

    def __init__(self) -> None:
        self.fresh: deque[TaskHandle[Any]] = deque()
        self.late: list[tuple[int, TaskHandle[Any]]] = []


class Lane:
    """The ready tasks of one backend, its idle workers, and its counters."""

    __slots__ = (
        "active",
        "backend",
        "buckets",
        "cap",
        "coming",
        "done",
        "idle",
        "priorities",
        "queued",
        "running",
        "size",
        "started",
        "workers",
    )

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.buckets: dict[int, Bucket] = {}
        self.priorities: list[int] = []
        self.size = 0  # live ready tasks
        self.idle: deque[anyio.Event] = deque()
        self.queued = 0  # submitted, not running, not done (waiting, scheduled or ready)
        self.running = 0
        self.done = 0
        self.workers = 0  # worker coroutines started (or asked of the timer loop)
        self.active = 0  # of those, the ones not parked in `idle`
        self.coming = 0  # of those, the ones started or woken that have not looked for a task yet
        self.cap = 0  # most workers this lane may have; 0 until the lane is open
        self.started = False

    def push(self, handle: TaskHandle[Any]) -> None:
        """Make ``handle`` ready, in submission order within its priority."""
        handle._where = READY
        priority = handle._options.priority
        bucket = self.buckets.get(priority)
        if bucket is None:
            bucket = self.buckets[priority] = Bucket()
            heapq.heappush(self.priorities, priority)
        fresh = bucket.fresh
        if not fresh or fresh[-1]._seq < handle._seq:
            fresh.append(handle)
        else:  # submitted before tasks already waiting: a dependent, a retry, a delayed task
            # (submission numbers are unique within a queue: entries never compare handles)
            heapq.heappush(bucket.late, (handle._seq, handle))
        self.size += 1

    def pop(self) -> TaskHandle[Any] | None:
        """The first live ready task (lowest priority, then earliest submitted), or ``None``."""
        handle = self.peek()
        if handle is None:
            return None
        bucket = self.buckets[self.priorities[0]]
        if bucket.fresh and bucket.fresh[0] is handle:
            bucket.fresh.popleft()
        else:
            heapq.heappop(bucket.late)
        self.size -= 1
        return handle

    def peek(self) -> TaskHandle[Any] | None:
        """The live ready task `pop` would return, left in place (stale entries are dropped)."""
        priorities = self.priorities
        buckets = self.buckets
        while priorities:
            bucket = buckets[priorities[0]]
            fresh, late = bucket.fresh, bucket.late
            while fresh and fresh[0]._where is not READY:
                fresh.popleft()
            while late and late[0][1]._where is not READY:
                heapq.heappop(late)
            if fresh:
                if late and late[0][0] < fresh[0]._seq:
                    return late[0][1]
                return fresh[0]
            if late:
                return late[0][1]
            del buckets[heapq.heappop(priorities)]
        return None

    def ready(self) -> list[TaskHandle[Any]]:
        """Every live ready task, in no particular order."""
        found: list[TaskHandle[Any]] = []
        for bucket in self.buckets.values():
            found.extend(h for h in bucket.fresh if h._where is READY)
            found.extend(h for _, h in bucket.late if h._where is READY)
        return found

    def discard(self, handle: TaskHandle[Any]) -> None:
        """Forget a ready task that is being cancelled (its entry is skipped later)."""
        self.size -= 1

    def wake_one(self) -> bool:
        """Wake one idle worker of this lane (active from now on); ``False`` if none was idle."""
        if self.idle:
            self.idle.popleft().set()
            self.active += 1
            self.coming += 1
            return True
        return False


class Timers:
    """Tasks that start later (``delay``, ``run_at``, retry delays), soonest first.

    Due times are ``time.monotonic()`` values, so they mean the same on every event loop.
    """

    __slots__ = ("counter", "heap", "live", "wakeup")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, TaskHandle[Any]]] = []
        self.live = 0
        self.counter = 0
        self.wakeup: anyio.Event | None = None

    def schedule(self, handle: TaskHandle[Any], due: float) -> None:
        """Hold ``handle`` until the monotonic time ``due``."""
        handle._where = SCHEDULED
        self.counter += 1
        is_first = not self.heap or due < self.heap[0][0]
        heapq.heappush(self.heap, (due, self.counter, handle))
        self.live += 1
        if is_first and self.wakeup is not None:
            self.wakeup.set()

    def poke(self) -> None:
        """Wake the timer loop now (it also starts tasks the engine asked for)."""
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

    async def wait_next(self) -> None:
        """Sleep until the soonest entry is due or an earlier one is scheduled."""
        self.wakeup = anyio.Event()
        due = self.next_due()
        if due is None:
            await self.wakeup.wait()
            return
        with anyio.move_on_after(max(0.0, due - time.monotonic())):
            await self.wakeup.wait()
