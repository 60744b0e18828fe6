"""How ``run(progress=True)`` draws a `ProgressSnapshot`: on a terminal, or as log lines elsewhere.

Everything goes to standard error, never standard output (the program's own output stays
clean, piped or not):

* on a terminal with rich installed, a live table (`RichView`): one row for the run, one per
  backend, redrawn in place five times a second (also in a notebook with ipywidgets);
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
#: seconds between two frames on a terminal (five a second: smooth to the eye, about 1 ms each)
TERMINAL_REFRESH = 0.2


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

    every = TERMINAL_REFRESH

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

    every = TERMINAL_REFRESH

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        # rich's own refresh thread stays off (the watcher redraws), and print() is left alone:
        # redirecting stdout would send the program's output to stderr with the table
        self._live = Live(console=console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        # the final frame is drawn once, by stop()
        self._live.update(_table(snapshot), refresh=not snapshot.final)

    def close(self) -> None:
        """Draw the final table and leave it on the screen."""
        self._live.stop()


#: the live table's columns after the bar: (heading, width)
_COLUMNS = (("failed", 8), ("cancelled", 10), ("retrying", 9), ("running", 8), ("rate", 10), ("ETA", 8))
_BAR = 24


def _table(snapshot: ProgressSnapshot) -> Any:
    """The live table as one rich `Text` (a rich ``Table`` costs ten times as much to draw)."""
    from rich.text import Text

    rows = [snapshot.overall, *snapshot.backends.values()]
    name_width = max(7, *(len(row.backend) for row in rows))
    done_width = max(len(f"{row.done:,}/{row.total:,}") for row in rows) + 2
    title = f"osiiso: finished in {snapshot.elapsed:,.1f}s" if snapshot.final else \
        f"osiiso: {snapshot.elapsed:,.1f}s"
    text = Text()
    text.append(title + "\n", style="italic")
    text.append(f"{'backend':<{name_width}}  {'progress':<{_BAR}}{'done':>{done_width}}"
                + "".join(f"{heading:>{width}}" for heading, width in _COLUMNS) + "\n", style="bold")
    for row in rows:
        style = "bold" if row is snapshot.overall else ""
        filled = _BAR * row.done // max(row.total, 1)
        text.append(f"{row.backend:<{name_width}}  ", style=style)
        text.append("━" * filled, style="green" if row.done >= row.total else "magenta")
        text.append("━" * (_BAR - filled), style="grey30")
        text.append(f"{row.done:,}/{row.total:,}".rjust(done_width), style=style)
        text.append(f"{row.failed:>{_COLUMNS[0][1]},}", style="bold red" if row.failed else style)
        eta = "done" if row.remaining <= 0 else _clock(row.eta)
        cells = zip((f"{row.cancelled:,}", f"{row.retrying:,}", f"{row.running:,}", f"{row.rate:,.0f}/s", eta),
                    _COLUMNS[1:], strict=True)
        text.append("".join(cell.rjust(width) for cell, (_, width) in cells) + "\n", style=style)
    text.rstrip()
    return text


def _stderr_is_a_terminal() -> bool | None:
    """Whether standard error is a terminal; ``None`` when there is none to write to (``sys.stderr``
    is ``None``, as under pythonw, or closed)."""
    stream = sys.stderr
    if stream is None:
        return None
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # not a stream, or a closed one
        return None


def _no_view(snapshot: ProgressSnapshot) -> None:
    """The display when there is nowhere to draw it."""


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
    tty = _stderr_is_a_terminal()
    if tty is None:  # no standard error to draw on (pythonw, a daemon): the run goes on without a display
        return _no_view, None, LOG_EVERY
    view: LogView | LineView | RichView
    console = _rich_console()
    if console is not None:
        view = RichView(console)
    elif tty:
        view = LineView()
    else:
        view = LogView()
    return view, view.close, view.every
