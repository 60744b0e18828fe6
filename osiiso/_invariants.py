"""The engine's invariants, as code the tests run (see docs/internals.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._handle import READY, RUNNING, SCHEDULED, WAITING

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ("check_invariants",)


def check_invariants(engine: Engine) -> None:
    """Assert that every unfinished task is in exactly one place and the counters agree."""
    places = {
        READY: sum(lane.size for lane in engine.lanes.values()),
        SCHEDULED: engine.timers.live,
        WAITING: len(engine.waiting),
        RUNNING: sum(1 for slot in engine.slots if slot.current is not None),
    }
    total = sum(places.values())
    assert total == engine.outstanding, f"{places} accounts for {total} tasks, {engine.outstanding} unfinished"
    per_lane = {name: lane.running for name, lane in engine.lanes.items()}
    assert engine.running == sum(per_lane.values()), f"running counters disagree: {engine.running} vs {per_lane}"
    assert engine.running <= engine.workers, "more tasks run than the workers cap allows"
    unfinished = engine.unfinished()
    assert len({id(h) for h in unfinished}) == len(unfinished) == engine.outstanding, "a task is in two places"
    for handle in unfinished:
        assert handle._result is None, f"{handle!r} has a result but is still placed"
    queued = sum(lane.queued for lane in engine.lanes.values())
    assert queued + engine.running == engine.outstanding, "queued + running != unfinished"
    for name, lane in engine.lanes.items():
        assert 0 <= lane.workers <= lane.cap or lane.workers == lane.cap == 0, \
            f"lane {name!r} has {lane.workers} workers, more than its cap of {lane.cap}"
        assert 0 <= lane.active <= lane.workers, f"lane {name!r}: {lane.active} of {lane.workers} workers active"
        assert 0 <= lane.coming <= lane.active, f"lane {name!r}: {lane.coming} workers coming, {lane.active} active"
        assert len(lane.idle) <= lane.workers - lane.active, f"lane {name!r}: more idle entries than parked workers"
