"""Ready tasks: one `Lane` per backend, holding its ready tasks, its parked workers, its counters.

A lane orders its ready tasks by priority, then by submission (a task submitted earlier
starts earlier, even if it became ready later: a pipeline's later steps for early items go
before the first steps of later ones). Each priority has a `Bucket`; a heap of the
priorities in use finds the lowest.
Cancelling a ready task removes it lazily: its handle's place changes, the lane's live
count drops at once, and the stale entry is skipped when it reaches the front.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Any

from .._handle import READY, TaskHandle

if TYPE_CHECKING:
    from ..backends.base import Backend
    from .worker import Worker

__all__ = ("Bucket", "Lane")


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
    """The ready tasks of one backend, its parked workers, and its counters.

    The counters are plain ints a progress display reads at its own pace (`osiiso._progress`).
    Only `osiiso._engine.engine.Engine` changes the counters; a lane's own methods keep
    ``size`` (its live ready tasks) in step with its buckets.
    """

    __slots__ = (
        "backend",
        "buckets",
        "cancelled",
        "cap",
        "direct",
        "done",
        "failed",
        "held",
        "hooking",
        "idle",
        "open",
        "parallel",
        "priorities",
        "queued",
        "retrying",
        "running",
        "size",
        "spare",
        "workers",
    )

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.buckets: dict[int, Bucket] = {}
        self.priorities: list[int] = []
        self.size = 0  # live ready tasks
        self.idle: deque[Worker] = deque()  # parked workers, waiting to be handed a task
        self.queued = 0  # submitted, not running, not done (waiting, scheduled or ready)
        self.running = 0  # tasks handed to a worker and not yet released, `held` ones excepted
        self.held = 0  # tasks handed to a worker that the backend holds in a batch (`Engine.batched`)
        self.done = 0  # tasks with a result; of them, `failed` failed and `cancelled` were cancelled
        self.failed = 0
        self.cancelled = 0
        self.retrying = 0  # tasks that failed an attempt and will run again (waiting, or running it)
        self.workers = 0  # worker coroutines started and not yet returned
        self.hooking = 0  # of them, those awaiting an on_complete hook (their slot is free meanwhile)
        self.cap = 0  # most running tasks (and workers, held ones aside) this lane may have; set when it opens
        self.open = False  # its backend has started: the engine may hand its tasks out
        self.parallel = 1  # how many of its tasks can be executing at once (`Backend.parallel`), set when it opens
        #: its tasks run as direct attempts, without a coroutine each (`osiiso._engine.direct`),
        #: and the direct workers it keeps for them
        self.direct = False
        self.spare: list[Any] = []

    @property
    def busy(self) -> int:
        """Its workers that count against its cap: not those of its batched tasks, nor (up to ``cap``
        of them) those awaiting an ``on_complete`` hook, so that a slow hook leaves room for a worker."""
        return self.workers - self.held - min(self.hooking, self.cap)

    def slots(self) -> int:
        """The queue-wide slots its tasks take: as many of its tasks handed over (running, or batched)
        as its workers (processes, threads) can be executing at once, since those beyond wait in
        its backend until one of them ends (`Engine.running` is the sum over lanes)."""
        handed = self.running + self.held
        return handed if handed < self.parallel else self.parallel

    def batches_full(self) -> bool:
        """Whether its backend holds all the batched tasks it takes (`Backend.batch_limit`): a task
        handed over now could not be batched, and would wait behind them holding a slot."""
        return 0 < self.held >= self.backend.batch_limit

    def takes_more(self) -> bool:
        """Whether a task handed to this lane now takes no more queue-wide slots: its tasks already take
        one per worker, and it waits in its backend (`Engine.dispatch` may hand it past a full queue)."""
        return self.running + self.held >= self.parallel

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
        priorities = self.priorities
        if priorities:  # the usual case, in a few steps: the head of the first deque, no latecomers
            bucket = self.buckets[priorities[0]]
            fresh = bucket.fresh
            if fresh and not bucket.late and fresh[0]._where is READY:
                self.size -= 1
                return fresh.popleft()
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
