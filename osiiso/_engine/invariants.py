"""The engine's invariants, as code the tests run (see docs/internals.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._handle import READY, RUNNING, SCHEDULED, WAITING
from .._result import TaskStatus

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ("check_invariants",)


def check_invariants(engine: Engine) -> None:
    """Assert that every unfinished task is in exactly one place and the counters agree."""
    held = [w.current for w in engine.crew if w.current is not None and w.current._where is RUNNING]
    places = {
        READY: sum(lane.size for lane in engine.lanes.values()),
        SCHEDULED: engine.timers.live,
        WAITING: len(engine.waiting),
        RUNNING: len(held),
    }
    total = sum(places.values())
    assert total == engine.outstanding, f"{places} accounts for {total} tasks, {engine.outstanding} unfinished"
    per_lane = {name: lane.running + lane.held for name, lane in engine.lanes.items()}
    assert engine.active == sum(per_lane.values()) == len(held), \
        f"running counters disagree: {engine.active} vs {per_lane} vs {len(held)} held by workers"
    slots = sum(lane.slots() for lane in engine.lanes.values())
    assert engine.running == slots, f"the queue counts {engine.running} slots taken, its lanes {slots}"
    batched = [w for w in engine.crew if w.held]
    assert len(batched) == engine.held == sum(lane.held for lane in engine.lanes.values()), \
        f"{len(batched)} workers hold a batched task, the counters say {engine.held}"
    for worker in batched:
        assert worker.current is not None and worker.current._where is RUNNING, "a batched worker holds no task"
        assert worker.lane.held <= worker.lane.backend.batch_capacity, "more batched tasks than the backend holds"
    assert engine.running <= engine.workers, "more tasks run than the workers cap allows"
    unfinished = engine.unfinished()
    assert len({id(h) for h in unfinished}) == len(unfinished) == engine.outstanding, "a task is in two places"
    for handle in unfinished:
        assert handle._result is None, f"{handle!r} has a result but is still placed"
    queued = sum(lane.queued for lane in engine.lanes.values())
    assert queued + engine.active == engine.outstanding, "queued + running != unfinished"
    retrying = {name: 0 for name in engine.lanes}
    for handle in unfinished:
        if handle._attempts > 1 or handle._status is TaskStatus.RETRYING:
            retrying[handle._backend] += 1
    for name, lane in engine.lanes.items():
        assert lane.retrying == retrying[name], f"lane {name!r} counts {lane.retrying} retrying, holds {retrying[name]}"
        assert 0 <= lane.failed + lane.cancelled <= lane.done, f"lane {name!r}: more failures than results"
        assert 0 <= lane.running <= lane.cap or lane.running == lane.cap == 0, \
            f"lane {name!r} runs {lane.running} tasks, more than its cap of {lane.cap}"
        # the workers of batched tasks, and up to `cap` awaiting hooks, are beyond the cap: one that is
        # done returns once it sees it is one too many
        assert 0 <= lane.workers <= 2 * lane.cap + lane.backend.batch_capacity or lane.workers == lane.cap == 0, \
            f"lane {name!r} has {lane.workers} workers, more than twice its cap of {lane.cap} and its batches"
        assert 0 <= lane.hooking <= lane.workers, f"lane {name!r}: {lane.hooking} workers in hooks of {lane.workers}"
        assert len(lane.idle) <= lane.workers, f"lane {name!r}: more parked workers than workers"
        for worker in lane.idle:
            assert worker.current is None, f"lane {name!r}: a parked worker holds {worker.current!r}"
        if (lane.open and lane.size and engine.running < engine.workers and lane.running < lane.cap
                and not lane.batches_full()
                and all(other.open or not other.size for other in engine.lane_list)):
            # a slot is free and a task of this lane could take it: a dispatch must be on its way
            assert engine.dispatch_wanted or engine.dispatch_at is not None or not lane.idle, \
                f"lane {name!r}: a ready task, a free slot and a parked worker, and no dispatch asked"
