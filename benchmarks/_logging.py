"""W1's logging rows: osiiso with the ``"osiiso"`` logger at WARNING, and at DEBUG (every event built).

At WARNING (the default) no event is built: the row must match plain ``osiiso``. At DEBUG every
task makes a start and a finish record, handed to a `logging.NullHandler`: the price of
asking for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import _async_peers as peers
from ._async_peers import Task
from ._runner import Contender, Metric, Row, run_on

#: at WARNING the events must cost nothing measurable against plain osiiso
TARGET = 1.05


def _with_level(level: int, task: Task, n: int, limit: int) -> Callable[[], float]:
    def once() -> float:
        logger = logging.getLogger("osiiso")
        handler = logging.NullHandler()
        before = logger.level
        logger.setLevel(level)
        logger.addHandler(handler)
        try:
            return run_on("asyncio", lambda: peers.osiiso_queue(task, n, limit))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(before)

    return once


def logging_contenders(task: Task, n: int, limit: int) -> list[Contender]:
    """The two logging rows of W1, on asyncio."""
    return [Contender("osiiso, logging at WARNING", _with_level(logging.WARNING, task, n, limit), "asyncio", True),
            Contender("osiiso, logging at DEBUG", _with_level(logging.DEBUG, task, n, limit), "asyncio", True)]


def logging_metrics(rows: list[Row]) -> list[Metric]:
    """Each logging row's median / plain osiiso's on asyncio (WARNING: target <= 1.05x; DEBUG: shown)."""
    base = next((r for r in rows if r.name == "osiiso" and r.loop == "asyncio" and r.times), None)
    metrics = []
    for row in rows:
        if not row.name.startswith("osiiso, logging at"):
            continue
        warning = row.name.endswith("WARNING")
        target = f"<= {TARGET}x" if warning else ""
        if base is None or not row.times:
            metrics.append(Metric(f"{row.name} / osiiso", "no data", target, False if warning else None))
            continue
        ratio = row.median / base.median
        metrics.append(Metric(f"{row.name} / osiiso", f"{ratio:.2f}x", target, ratio <= TARGET if warning else None))
    return metrics
