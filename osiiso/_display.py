"""Printing a `osiiso.RunSummary`: a rich table when rich is installed, plain text otherwise."""

from __future__ import annotations

import sys
from typing import Any, Protocol

from ._errors import TaskTimeoutError
from ._result import TaskResult

__all__ = ("Summary", "print_summary", "summary_lines")


class Summary(Protocol):
    """What the report reads of a `osiiso.RunSummary` (which imports this module to print itself)."""

    @property
    def results(self) -> tuple[TaskResult, ...]: ...
    @property
    def duration(self) -> float: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def total_submitted(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def cancelled(self) -> int: ...
    @property
    def timeouts(self) -> int: ...
    @property
    def restored(self) -> int: ...
    def by_backend(self) -> dict[str, tuple[TaskResult, ...]]: ...


def _rate(summary: Summary) -> str:
    if summary.duration <= 0:
        return "-"
    return f"{summary.total_submitted / summary.duration:,.0f} tasks/s"


def _problems(summary: Summary) -> list[TaskResult]:
    return [r for r in summary.results if not r.ok]


def summary_lines(summary: Summary, limit: int = 20) -> list[str]:
    """The plain-text report, line by line."""
    lines = [
        f"osiiso run: {summary.total_submitted} tasks in {summary.duration:.3f}s ({_rate(summary)})",
        f"  succeeded {summary.succeeded}  failed {summary.failed}  "
        f"cancelled {summary.cancelled}  timeouts {summary.timeouts}"
        + (f"  restored {summary.restored} (from a checkpoint, not run)" if summary.restored else ""),
        f"  run timed out: {'yes, it stopped at its time limit' if summary.timed_out else 'no'}",
    ]
    by_backend = summary.by_backend()
    if by_backend:
        parts = [f"{name} {n}" for name, results in sorted(by_backend.items())
                 if (n := sum(1 for r in results if not r.restored))]
        if parts:
            lines.append("  by backend: " + ", ".join(parts))
    problems = _problems(summary)
    for result in problems[:limit]:
        lines.append(f"  {result.status.value:<9} {result.name} ({result.task_id}): {result.message}")
    if len(problems) > limit:
        lines.append(f"  … and {len(problems) - limit} more")
    return lines


def print_summary(summary: Summary, *, file: Any = None, limit: int = 20) -> None:
    """Print ``summary`` to ``file`` (standard output by default)."""
    out = file if file is not None else sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print("\n".join(summary_lines(summary, limit)), file=out)
        return
    console = Console(file=out)
    stopped = " — timed out: stopped at its time limit" if summary.timed_out else ""
    table = Table(title=f"osiiso run — {summary.total_submitted} tasks in {summary.duration:.3f}s "
                        f"({_rate(summary)}){stopped}")
    for column in ("backend", "tasks", "succeeded", "failed", "cancelled", "timeouts"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, all_results in sorted(summary.by_backend().items()):
        results = [r for r in all_results if not r.restored]  # counts of work done
        if not results:
            continue
        counts = {s: sum(1 for r in results if r.status == s) for s in ("succeeded", "failed", "cancelled")}
        timed = sum(1 for r in results if isinstance(r.exception, TaskTimeoutError))
        table.add_row(name, str(len(results)), str(counts["succeeded"]), str(counts["failed"]),
                      str(counts["cancelled"]), str(timed))
    table.add_row("all", str(summary.total_submitted), str(summary.succeeded), str(summary.failed),
                  str(summary.cancelled), str(summary.timeouts), style="bold")
    console.print(table)
    if summary.restored:
        console.print(f"restored {summary.restored} (from a checkpoint, not run)")
    problems = _problems(summary)
    if problems:
        detail = Table(title="tasks that did not succeed", show_lines=False)
        for column in ("task", "name", "status", "attempts", "message"):
            detail.add_column(column)
        for result in problems[:limit]:
            detail.add_row(result.task_id, result.name, result.status.value, str(result.attempts), result.message)
        console.print(detail)
        if len(problems) > limit:
            console.print(f"… and {len(problems) - limit} more")
