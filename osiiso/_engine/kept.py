"""`KeptResults`: the results list of a queue with ``keep_results`` (a bound on memory).

A queue made with ``keep_results=True`` (the default) keeps every result in a plain list.
With a bound ``n`` it keeps the ``n`` most recent ones; each result pushed out is counted
in `Dropped` first, so a run's summary still counts every task it ran.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .._report import new_counts, tally
from .._result import TaskResult

__all__ = ("Dropped", "KeptResults", "new_results")


class Dropped:
    """Counts of the results a `KeptResults` no longer holds: the restored ones, and the report's
    figures (`osiiso._report.tally`) of the others per backend, from which the status counts come."""

    __slots__ = ("backends", "restored")

    def __init__(self) -> None:
        self.restored = 0
        self.backends: dict[str, dict[str, Any]] = {}

    def add(self, result: TaskResult) -> None:
        if result.restored:
            self.restored += 1
            return
        counts = self.backends.get(result.backend)
        if counts is None:
            counts = self.backends[result.backend] = new_counts()
        tally(counts, result)

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """``(succeeded, failed, cancelled, timeouts, restored)``."""
        figures = self.backends.values()
        return (sum(f["succeeded"] for f in figures), sum(f["failed"] for f in figures),
                sum(f["cancelled"] for f in figures), sum(f["timeouts"] for f in figures), self.restored)


class KeptResults(deque[TaskResult]):
    """At most ``maxlen`` results, the newest; the counts of the others in `dropped`."""

    __slots__ = ("dropped",)

    def __init__(self, keep: int) -> None:
        super().__init__((), keep)
        self.dropped = Dropped()

    def append(self, result: TaskResult) -> None:
        if len(self) == self.maxlen:  # full (always, for keep_results=False): the oldest goes
            self.dropped.add(self[0] if self else result)
        deque.append(self, result)

    def clear(self) -> None:
        deque.clear(self)
        self.dropped = Dropped()


def new_results(keep: int | None) -> Any:
    """A results list for a queue that keeps ``keep`` results (``None``: every one)."""
    return [] if keep is None else KeptResults(keep)
