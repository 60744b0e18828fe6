"""`Held`: how a task gives its worker slot back — when it ends, and while its backend holds it in a batch.

A base of `osiiso._engine.engine.Engine`, beside `osiiso._engine.records.Records`. A task
handed to a worker counts in ``running`` (queue-wide and in its lane) and holds one of the
queue's ``workers`` slots. A backend that queues an attempt in a batch behind others
(`osiiso.backends.base.Attempt.batched`) moves it to ``held`` (`Held.batched`): the slot goes
to the next ready task, the task stays its worker's until it ends. `Held.release` uncounts a
task that leaves the running state (a retry; `Records.finish` does it inline), and the worker
of a batched task that finds nothing to do retires (`Held.surplus`).
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
    limiter: RateLimiter | None
    dispatch_wanted: bool
    timers: Timers

    def release(self, lane: Lane, worker: Worker | None = None) -> None:
        """A task leaves the running state: its slot is free (a batched task's was already, `batched`)."""
        if worker is not None and worker.held:
            worker.held = False
            self.held -= 1
            lane.held -= 1
        else:
            self.running -= 1
            lane.running -= 1

    def batched(self, worker: Worker) -> bool:
        """``worker``'s backend asks to queue its attempt in a batch: the slot goes to the next ready task.

        The task stays ``worker``'s until it ends, counted in ``held``. A backend holds at most
        ``batch_capacity`` such attempts and runs one per worker process at a time. Refused
        (``False``) under a rate limit: the limiter spaces hand-overs, and batched tasks handed
        over while their worker is busy would start back to back once it frees.
        """
        if self.limiter is not None:
            return False
        if not worker.held and worker.current is not None:
            worker.held, lane = True, worker.lane
            self.running, lane.running, self.held, lane.held = self.running - 1, lane.running - 1, \
                self.held + 1, lane.held + 1
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
