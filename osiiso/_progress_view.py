"""How ``run(progress=True)`` draws a `ProgressSnapshot`: on a terminal, or as log lines elsewhere.

Everything goes to standard error, never standard output (the program's own output stays
clean, piped or not):

* on a terminal with rich installed, a live table (`RichView`): one row for the run, one per
  backend, redrawn in place ten times a second (also in a notebook with ipywidgets);
* on a terminal without rich, one line redrawn in place with a carriage return (`LineView`);
* anywhere else (a pipe, a file, CI, a notebook without widgets), a plain line every
  `LOG_EVERY` seconds and one at the end (`LogView`): no carriage returns, no escape codes.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from typing import Any

from ._progress import REFRESH, BackendProgress, ProgressSnapshot, View

__all__ = ("choose_view", "describe")

#: seconds between two lines off a terminal
LOG_EVERY = 5.0


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _tail(row: BackendProgress) -> str:
    parts = [f"{row.failed:,} failed"]
    if row.cancelled:
        parts.append(f"{row.cancelled:,} cancelled")
    if row.retrying:
        parts.append(f"{row.retrying:,} retrying")
    parts.append(f"{row.running:,} running")
    return ", ".join(parts)


def describe(snapshot: ProgressSnapshot) -> str:
    """One plain line: the run's counts, rate and ETA, then each backend's."""
    row = snapshot.overall
    head = "finished" if snapshot.final else f"{row.rate:,.1f}/s, ETA {_clock(row.eta)}"
    line = f"osiiso: {row.done:,}/{row.total:,} done, {_tail(row)}; {head} ({snapshot.elapsed:,.1f}s)"
    backends = "; ".join(f"{name} {b.done:,}/{b.total:,} ({_tail(b)})" for name, b in snapshot.backends.items())
    return f"{line} | {backends}" if backends else line


class LogView:
    """Off a terminal: a line every `LOG_EVERY` seconds, and the final one."""

    every = 1.0  # the watcher's pace: a line is due every LOG_EVERY seconds

    def __init__(self) -> None:
        self._next = time.monotonic() + LOG_EVERY

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        now = time.monotonic()
        if not snapshot.final and now < self._next:
            return
        self._next = now + LOG_EVERY
        sys.stderr.write(describe(snapshot) + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        """Nothing to release."""


class LineView:
    """On a terminal without rich: one line, redrawn in place."""

    every = REFRESH

    def __init__(self) -> None:
        self._width = 0

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        line = describe(snapshot)
        pad = max(0, self._width - len(line))
        self._width = len(line)
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()

    def close(self) -> None:
        """End the line."""
        sys.stderr.write("\n")
        sys.stderr.flush()


class RichView:
    """On a terminal with rich: a live table, the run's row then one per backend."""

    every = REFRESH

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        # rich's own refresh thread stays off (the watcher redraws), and print() is left alone:
        # redirecting stdout would send the program's output to stderr with the table
        self._live = Live(console=console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        self._live.update(_table(snapshot), refresh=True)

    def close(self) -> None:
        """Leave the last table on the screen."""
        self._live.stop()


def _table(snapshot: ProgressSnapshot) -> Any:
    from rich import box
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    title = f"osiiso: finished in {snapshot.elapsed:,.1f}s" if snapshot.final else \
        f"osiiso: {snapshot.elapsed:,.1f}s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("backend", "progress", "done", "failed", "cancelled", "retrying", "running", "rate", "ETA"):
        table.add_column(column, justify="left" if column in ("backend", "progress") else "right")
    rows = [snapshot.overall, *snapshot.backends.values()]
    for row in rows:
        table.add_row(row.backend, ProgressBar(total=max(row.total, 1), completed=row.done, width=24),
                      f"{row.done:,}/{row.total:,}", f"[red]{row.failed:,}[/]" if row.failed else "0",
                      f"{row.cancelled:,}", f"{row.retrying:,}", f"{row.running:,}", f"{row.rate:,.0f}/s",
                      "done" if row.remaining <= 0 else _clock(row.eta),
                      style="bold" if row is snapshot.overall else None)
    return table


def _rich_console() -> Any:
    """A rich console on standard error, if rich is installed and it can draw live there."""
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(stderr=True)
    if console.is_terminal or (console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None):
        return console
    return None


def choose_view(progress: bool | Callable[[ProgressSnapshot], object]) -> tuple[View, Callable[[], None] | None,
                                                                                float]:
    """The view for ``run(progress=...)``, what closes it, and the seconds between snapshots."""
    if callable(progress):
        return progress, None, REFRESH  # type: ignore[return-value]  # what it returns is ignored
    view: LogView | LineView | RichView
    console = _rich_console()
    if console is not None:
        view = RichView(console)
    elif sys.stderr.isatty():
        view = LineView()
    else:
        view = LogView()
    return view, view.close, view.every
