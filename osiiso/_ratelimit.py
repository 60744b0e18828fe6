"""A rate limiter for attempt starts: the generic cell rate algorithm (GCRA).

``rate`` attempts per second on average, with up to ``burst`` allowed back to back
after an idle spell. Each caller reserves the next free slot and sleeps until it, so
waiting callers are served in order and no two share a slot.
"""

from __future__ import annotations

import time

import anyio

__all__ = ("RateLimiter",)


class RateLimiter:
    """GCRA: the theoretical arrival time ``tat`` advances by ``1/rate`` per start."""

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.tat = 0.0

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait before using it (0 = now)."""
        tat = max(self.tat, now)
        allowed_at = tat - self.tolerance
        self.tat = tat + self.interval
        return max(0.0, allowed_at - now)

    async def acquire(self) -> None:
        """Wait for a slot."""
        wait = self.reserve(time.monotonic())
        if wait > 0:
            await anyio.sleep(wait)
