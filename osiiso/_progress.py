"""``run(progress=True)``: the run's done/total, failures, rate and ETA, on stderr.

On a terminal it is a live bar (rich when installed, else one line redrawn in place);
off a terminal (piped, CI, a file) it is a plain line every few seconds and one at the
end — never carriage returns. The counts come from the engine's lanes, so they stay
true when the queue keeps few results (``keep_results``) and grow with tasks submitted
during the run. Nothing goes to stdout, which belongs to the program.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

import anyio

__all__ = ("ProgressBar",)

_LINE_EVERY = 5.0  # seconds between two lines off a terminal


class _Counted(Protocol):
    done: int
    failed: int


class _Engine(Protocol):
    """What the bar reads of the engine: its lanes' counters and its unfinished tasks."""

    @property
    def lane_list(self) -> Sequence[_Counted]: ...
    @property
    def outstanding(self) -> int: ...


class ProgressBar:
    """Draws a run's progress: rich or an in-place line on a terminal, periodic lines otherwise."""

    def __init__(self, engine: _Engine, stream: TextIO | None = None) -> None:
        self._engine = engine
        self._stream = stream if stream is not None else sys.stderr
        self._base_done, self._base_failed = self._totals()
        self.began = time.perf_counter()
        self._last_line = self.began
        self._closed = False
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._rich: Any = None
        self._task: Any = None
        if not self._tty:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:
            return
        self._rich = Progress(TextColumn("osiiso"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                              TimeRemainingColumn(), transient=False, console=Console(file=self._stream))
        self._task = self._rich.add_task("run", total=None, failed=0, rate="")
        self._rich.start()

    def _totals(self) -> tuple[int, int]:
        lanes = self._engine.lane_list
        return sum(lane.done for lane in lanes), sum(lane.failed for lane in lanes)

    def counts(self) -> tuple[int, int, int, float]:
        """``(done, total, failed, rate per second)`` of this run so far."""
        done, failed = self._totals()
        done -= self._base_done
        failed -= self._base_failed
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        return done, done + self._engine.outstanding, failed, done / elapsed

    def _text(self) -> str:
        done, total, failed, rate = self.counts()
        eta = f"ETA {(total - done) / rate:,.1f}s" if rate > 0 else "ETA ?"
        return f"osiiso {done}/{total} done, {failed} failed, {rate:,.0f}/s, {eta}"

    def draw(self, *, final: bool = False) -> None:
        """Show the current counts once (off a terminal: only every few seconds, and the final one)."""
        if self._rich is not None:
            done, total, failed, rate = self.counts()
            self._rich.update(self._task, completed=done, total=total, failed=failed, rate=f"{rate:,.0f}/s")
            return
        stream = self._stream
        if self._tty:
            stream.write(f"\r{self._text()} ")
        else:
            now = time.perf_counter()
            if not final and now - self._last_line < _LINE_EVERY:
                return
            self._last_line = now
            stream.write(f"{self._text()}\n")
        stream.flush()

    async def run(self) -> None:
        """Redraw ten times a second until closed (runs in the queue's service)."""
        while not self._closed:
            self.draw()
            await anyio.sleep(0.1)

    def close(self) -> None:
        """Draw the final counts and release the terminal."""
        if self._closed:
            return
        self._closed = True
        self.draw(final=True)
        if self._rich is not None:
            self._rich.stop()
        elif self._tty:
            self._stream.write("\n")
            self._stream.flush()
