"""`Held`: how a task gives its worker slot back — when it ends, and while its backend holds it in a batch.

A base of `osiiso._engine.engine.Engine`, beside `osiiso._engine.records.Records`. A task
handed to a worker counts in its lane's ``running`` (`Engine._hand`). A backend that queues
an attempt in a batch behind others (`osiiso.backends.base.Attempt.batched`) moves it to the
lane's ``held`` (`Held.batched`): the lane has room for the next ready task, and the task
stays its worker's until it ends.

The queue-wide ``running``, which ``workers`` caps, is the sum of `Lane.slots`: of a lane's
tasks handed over (running or batched), as many as its workers (processes, threads) can be
executing at once. So no more tasks execute at once than ``workers``, across backends, and a
backend's tasks waiting in it behind busy workers (queued ahead in a worker process, or in a
batch) take no slot that another backend's task could use: while a lane's tasks take every
worker of it, a task handed to it takes no more slots, and it may be handed more past a full
queue (`Lane.takes_more`), up to its cap. `Held.release` uncounts a task that leaves the
running state (a retry; `Records.finish` too), and the worker of a batched task that finds
nothing to do retires (`Held.surplus`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lanes import Lane
    from .ratelimit import RateLimiter
    from .timers import Timers
    from .worker import Worker

__all__ = ("Held",)


class Held:
    """Slot accounting for tasks that leave the running state or wait in a backend's batch."""

    # state set up by `Engine.__init__`
    running: int
    held: int
    lane_list: tuple[Lane, ...]
    limiter: RateLimiter | None
    dispatch_wanted: bool
    timers: Timers

    # The changes of `Lane.slots` below are its formula, min(r + h, P), worked out for each step
    # (``r`` running, ``h`` held, ``P`` parallel): the invariants check the sum against it.
    def release(self, lane: Lane, worker: Worker | None = None) -> None:
        """A task leaves the running state: a slot is free, unless its lane's tasks still fill its workers."""
        running, held = lane.running, lane.held
        if running + held <= lane.parallel:
            self.running -= 1
        if worker is not None and worker.held:
            worker.held = False
            self.held -= 1
            lane.held = held - 1
        else:
            lane.running = running - 1

    @property
    def active(self) -> int:
        """Tasks handed to a worker and not ended, batched ones included."""
        return sum(lane.running + lane.held for lane in self.lane_list)

    def batched(self, worker: Worker) -> bool:
        """``worker``'s backend asks to queue its attempt in a batch: its lane has room for the next ready task.

        The task stays ``worker``'s until it ends, counted in ``held``; the lane's slots do not
        change (`Lane.slots`). A backend holds at most
        ``batch_capacity`` such attempts and runs one per worker process at a time. Refused
        (``False``) under a rate limit: the limiter spaces hand-overs, and batched tasks handed
        over while their worker is busy would start back to back once it frees.
        """
        if self.limiter is not None:
            return False
        if not worker.held and worker.current is not None:
            worker.held, lane = True, worker.lane
            # running to held: the lane's tasks handed over, and so its slots, stay as they were
            lane.running, lane.held, self.held = lane.running - 1, lane.held + 1, self.held + 1
            if lane.size and not self.dispatch_wanted:
                self.dispatch_wanted = True
                self.timers.poke()
        return worker.held

    def surplus(self, worker: Worker) -> bool:
        """Whether idle ``worker`` is one too many (batched tasks had more) and no task waits: then it
        is unparked, to retire (while tasks wait, it parks: batches will need it again)."""
        lane = worker.lane
        if lane.size or lane.workers - lane.held <= lane.cap:
            return False
        self.unpark(worker)
        return True

    def unpark(self, worker: Worker) -> None:
        """Forget a parked worker that is returning (the service stops)."""
        try:
            worker.lane.idle.remove(worker)
        except ValueError:
            pass
