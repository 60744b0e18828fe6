"""A rate limiter for attempt starts: the generic cell rate algorithm (GCRA).

``rate`` attempts per second on average, with up to ``burst`` allowed back to back
after an idle spell. The engine asks `RateLimiter.wait` before it hands a task to a
worker; when the answer is not 0 it hands out nothing more until then, so tasks still
leave in queue order and no worker holds a slot while it waits for the limiter.
"""

from __future__ import annotations

__all__ = ("RateLimiter",)


class RateLimiter:
    """GCRA: the theoretical arrival time ``tat`` advances by ``1/rate`` per start."""

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.tat = 0.0

    def wait(self, now: float) -> float:
        """How long from ``now`` until the next start is allowed (0: at once)."""
        return max(0.0, max(self.tat, now) - self.tolerance - now)

    def take(self, now: float) -> None:
        """Count one start at ``now`` (allowed: `wait` returned 0)."""
        self.tat = max(self.tat, now) + self.interval

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long from ``now`` until it may be used (0: at once)."""
        wait = self.wait(now)
        self.take(now)
        return wait
