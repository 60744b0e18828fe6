"""``run(progress=True)``: a live line of done/total, failures, rate and ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._result import TaskResult

__all__ = ("ProgressBar",)


class ProgressBar:
    """Draws the run's progress with rich when installed, as a plain line otherwise."""

    def __init__(self, results: list[TaskResult], outstanding: Callable[[], int]) -> None:
        self._results = results  # the run's results, growing as tasks end
        self._outstanding = outstanding
        self.began = time.perf_counter()
        self._seen = self._failed = 0
        self._closed = False
        self._rich: Any = None
        self._task: Any = None
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:
            return
        self._rich = Progress(TextColumn("osiiso"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                              TimeRemainingColumn(), transient=False)
        self._task = self._rich.add_task("run", total=None, failed=0, rate="")
        self._rich.start()

    def _counts(self) -> tuple[int, int, int, float]:
        results = self._results
        done = len(results)
        self._failed += sum(1 for r in results[self._seen:done] if r.status != "succeeded")
        self._seen = done
        failed = self._failed
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        return done, done + self._outstanding(), failed, done / elapsed

    def draw(self) -> None:
        """Show the current counts once."""
        done, total, failed, rate = self._counts()
        if self._rich is not None:
            self._rich.update(self._task, completed=done, total=total, failed=failed, rate=f"{rate:,.0f}/s")
            return
        eta = (total - done) / rate if rate > 0 else float("inf")
        sys.stderr.write(f"\rosiiso {done}/{total} done, {failed} failed, {rate:,.0f}/s, ETA {eta:,.1f}s ")
        sys.stderr.flush()

    async def run(self) -> None:
        """Redraw ten times a second until closed (runs in the queue's service)."""
        while not self._closed:
            self.draw()
            await anyio.sleep(0.1)

    def close(self) -> None:
        """Draw the final counts and release the terminal."""
        self._closed = True
        self.draw()
        if self._rich is not None:
            self._rich.stop()
        else:
            sys.stderr.write("\n")
