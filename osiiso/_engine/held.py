"""`Held`: how a task gives its worker slot back — when it ends, and while its backend holds it in a batch.

A base of `osiiso._engine.engine.Engine`, beside `osiiso._engine.records.Records`. A task
handed to a worker counts in its lane's ``running`` (`Held.take_slot`). A backend that queues
an attempt in a batch behind others (`osiiso.backends.base.Attempt.batched`) moves it to the
lane's ``held`` (`Held.batched`): the lane has room for the next ready task, and the task
stays its worker's until it ends.

The queue-wide ``running``, which ``workers`` caps, is the sum of `Lane.slots`: a lane's
running tasks, and of its batched ones as many as its workers (processes, threads) not busy
with a running one could be executing. So batched tasks never let more tasks execute at once
than ``workers``, across backends: while a lane's batches take every worker of it, the slots
they take stay taken, and only that lane may be handed more tasks past a full queue
(`Lane.takes_more`), which take no more slots. `Held.release` uncounts a task that leaves
the running state (a retry; `Records.finish` too), and the worker of a batched task that
finds nothing to do retires (`Held.surplus`).
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

    # The changes of `Lane.slots` below are its formula worked out for each step (``r`` running,
    # ``h`` held, ``P`` parallel): the invariants check the sum against it.
    def take_slot(self, lane: Lane) -> None:
        """A task of ``lane`` is handed to a worker: it takes a slot (none more if `Lane.takes_more`)."""
        if not (lane.held and lane.takes_more()):  # no batched tasks (the usual case): no call
            self.running += 1
        lane.running += 1

    def release(self, lane: Lane, worker: Worker | None = None) -> None:
        """A task leaves the running state: its slot is free (for a batched task, if it took one, `Lane.slots`)."""
        running, held, parallel = lane.running, lane.held, lane.parallel
        if worker is not None and worker.held:
            worker.held = False
            self.held -= 1
            lane.held = held - 1
            if running + held <= parallel:  # it was one of those its workers could be executing
                self.running -= 1
        else:
            lane.running = running - 1
            if not lane.takes_more():  # then it took a slot of its own
                self.running -= 1

    @property
    def active(self) -> int:
        """Tasks handed to a worker and not ended, batched ones included."""
        return sum(lane.running + lane.held for lane in self.lane_list)

    def batched(self, worker: Worker) -> bool:
        """``worker``'s backend asks to queue its attempt in a batch: its lane has room for the next ready task.

        The task stays ``worker``'s until it ends, counted in ``held``; of the queue's slots it
        keeps one only while its lane's workers could be executing it (`Lane.slots`). A backend holds at most
        ``batch_capacity`` such attempts and runs one per worker process at a time. Refused
        (``False``) under a rate limit: the limiter spaces hand-overs, and batched tasks handed
        over while their worker is busy would start back to back once it frees.
        """
        if self.limiter is not None:
            return False
        if not worker.held and worker.current is not None:
            worker.held, lane = True, worker.lane
            if lane.running > lane.parallel:  # more running than workers: it was not executing, its slot is free
                self.running -= 1
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
