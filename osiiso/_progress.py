"""``run(progress=...)``: what a run's progress is (`ProgressSnapshot`) and how it is watched.

The engine keeps plain counters per backend (`osiiso._engine.lanes.Lane`: queued, running,
done, failed, cancelled, retrying); nothing here runs per task. A `ProgressWatcher`, a task
of the queue's service, reads them at the refresh rate, turns them into a frozen
`ProgressSnapshot` (this run's counts, overall and per backend, with a recent rate and an
ETA) and hands it to a view (`osiiso._progress_view`): a live table on a terminal, a log
line every few seconds elsewhere, or the user's function. The last snapshot, drawn when the
run ends, has ``final=True`` and the run's real totals.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import anyio

from ._events import osiiso_logger

__all__ = ("BackendProgress", "ProgressSnapshot", "ProgressWatcher")

logger = osiiso_logger

#: seconds between two snapshots (a terminal redraw, a call of ``progress=callable``)
REFRESH = 0.1
#: the rate is measured over about this many recent seconds (the ETA follows it)
RATE_WINDOW = 10.0


@dataclass(frozen=True)
class BackendProgress:
    """The counts of one backend (or of the whole run) at one moment of a run.

    ``total`` is every task this run knows of: the ones that ended during the run and those
    still to end (it grows as tasks are submitted). ``done`` counts results, of which
    ``failed`` failed and ``cancelled`` were cancelled (``succeeded`` is the rest).
    ``retrying`` counts unfinished tasks that failed an attempt and will run again (waiting
    for it or running it); ``running`` the tasks holding a worker; ``queued`` the rest of the
    unfinished ones (ready, waiting on a dependency, on a delay or a retry delay).
    ``rate`` is results per second over the last few seconds; ``eta`` the seconds left at
    that rate (``None`` when nothing has ended yet, 0 when nothing is left).
    """

    backend: str
    total: int
    done: int
    failed: int
    cancelled: int
    retrying: int
    running: int
    queued: int
    rate: float
    eta: float | None

    @property
    def succeeded(self) -> int:
        """Results that are successes."""
        return self.done - self.failed - self.cancelled

    @property
    def remaining(self) -> int:
        """Tasks without a result yet."""
        return self.total - self.done


def _no_backends() -> Mapping[str, BackendProgress]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ProgressSnapshot:
    """What ``run(progress=callable)`` receives: a run's progress at one moment. Frozen.

    ``overall`` holds the counts of the whole run (``backend == "all"``), ``backends`` the
    same counts per backend name (``"async"``, ``"thread"``, ``"process"``, ``"dask"``), in
    the order the backends were first used. ``elapsed`` is seconds since the run began;
    ``final`` is true for the one snapshot taken when the run has ended. The counts of
    ``overall`` are also readable on the snapshot itself (``snapshot.done``, ``.total``, …).
    """

    elapsed: float
    overall: BackendProgress
    backends: Mapping[str, BackendProgress] = field(default_factory=_no_backends)
    final: bool = False

    @property
    def total(self) -> int:
        """Every task of the run so far."""
        return self.overall.total

    @property
    def done(self) -> int:
        """Tasks with a result."""
        return self.overall.done

    @property
    def failed(self) -> int:
        """Tasks that failed."""
        return self.overall.failed

    @property
    def cancelled(self) -> int:
        """Tasks that were cancelled."""
        return self.overall.cancelled

    @property
    def retrying(self) -> int:
        """Unfinished tasks that failed an attempt and will run again."""
        return self.overall.retrying

    @property
    def running(self) -> int:
        """Tasks holding a worker."""
        return self.overall.running

    @property
    def rate(self) -> float:
        """Results per second, recently."""
        return self.overall.rate

    @property
    def eta(self) -> float | None:
        """Seconds left at the recent rate (``None`` while unknown)."""
        return self.overall.eta


class Counters(Protocol):
    """What the watcher reads of a backend's lane (`osiiso._engine.lanes.Lane`)."""

    queued: int
    running: int
    done: int
    failed: int
    cancelled: int
    retrying: int


#: the lanes of the queue, by backend name, in the order they were made
LaneSource = Callable[[], Iterable[tuple[str, Counters]]]
#: what draws snapshots: called with each one; ``close`` is called after the final one
View = Callable[[ProgressSnapshot], None]


class _Rate:
    """Results per second over the last `RATE_WINDOW` seconds, from samples taken at each snapshot."""

    __slots__ = ("samples",)

    def __init__(self, began: float) -> None:
        self.samples: deque[tuple[float, int]] = deque([(began, 0)])

    def update(self, now: float, done: int) -> float:
        samples = self.samples
        samples.append((now, done))
        while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
            samples.popleft()
        then, done_then = samples[0]
        return (done - done_then) / (now - then) if now > then else 0.0


def _counts(name: str, total: int, done: int, failed: int, cancelled: int, retrying: int, running: int,
            rate: float) -> BackendProgress:
    remaining = total - done
    eta = 0.0 if remaining <= 0 else (remaining / rate if rate > 0 else None)
    return BackendProgress(name, total, done, failed, cancelled, retrying, running,
                           max(0, remaining - running), rate, eta)


class ProgressWatcher:
    """Reads the engine's counters at the refresh rate and hands snapshots to a view."""

    def __init__(self, lanes: LaneSource, view: View, *, close: Callable[[], None] | None = None,
                 every: float = REFRESH) -> None:
        self._lanes = lanes
        self._view: View | None = view
        self._close_view = close
        self._every = every
        self.began = time.perf_counter()
        # what each backend had already counted when the run began: the run shows its own work
        self._base = {name: (lane.done, lane.failed, lane.cancelled) for name, lane in lanes()}
        self._rates: dict[str, _Rate] = {}
        self._stop = anyio.Event()
        self._closed = False

    def snapshot(self, *, final: bool = False) -> ProgressSnapshot:
        """This run's counts now."""
        now = time.perf_counter()
        rows: dict[str, BackendProgress] = {}
        total = done = failed = cancelled = retrying = running = 0
        for name, lane in self._lanes():
            base_done, base_failed, base_cancelled = self._base.get(name, (0, 0, 0))
            row = _counts(name, lane.queued + lane.running + lane.done - base_done, lane.done - base_done,
                          lane.failed - base_failed, lane.cancelled - base_cancelled, lane.retrying,
                          lane.running, self._rate(name, now, lane.done - base_done))
            rows[name] = row
            total, done, failed = total + row.total, done + row.done, failed + row.failed
            cancelled, retrying, running = cancelled + row.cancelled, retrying + row.retrying, running + row.running
        overall = _counts("all", total, done, failed, cancelled, retrying, running, self._rate("", now, done))
        return ProgressSnapshot(now - self.began, overall, MappingProxyType(rows), final)

    def _rate(self, name: str, now: float, done: int) -> float:
        rate = self._rates.get(name)
        if rate is None:
            rate = self._rates[name] = _Rate(self.began)
        return rate.update(now, done)

    def _show(self, snapshot: ProgressSnapshot) -> None:
        view = self._view
        if view is None:
            return
        try:
            view(snapshot)
        except Exception:  # a broken terminal or a failing callback must never stop the run
            self._view = None
            logger.exception("osiiso: the progress display failed and is turned off for this run")

    async def run(self) -> None:
        """Show a snapshot every ``every`` seconds until closed (a task of the queue's service)."""
        while not self._closed:
            with anyio.move_on_after(self._every):
                await self._stop.wait()
            if not self._closed:
                self._show(self.snapshot())

    def close(self) -> None:
        """The run has ended: show the final snapshot, with every result counted, and release the view."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._show(self.snapshot(final=True))
        if self._close_view is not None:
            try:
                self._close_view()
            except Exception:
                logger.exception("osiiso: the progress display could not be closed")
