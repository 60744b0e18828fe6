"""Printing a `osiiso.RunSummary`: a rich table when rich is installed, plain text otherwise.

Both read the figures of `osiiso._report.summary_dict`, so the printed report, the plain text
and ``to_json`` always agree.
"""

from __future__ import annotations

import sys
from typing import Any

from ._report import Summary as Summary
from ._report import summary_dict

__all__ = ("Summary", "print_summary", "summary_lines")

_COUNTS = ("tasks", "succeeded", "failed", "cancelled", "timeouts", "retries")


def _rate(data: dict[str, Any]) -> str:
    if data["duration"] <= 0:
        return "-"
    return f"{data['total_submitted'] / data['duration']:,.0f} tasks/s"


def _secs(value: float) -> str:
    return f"{value:.3f}s"


def _title(data: dict[str, Any]) -> str:
    return f"osiiso run: {data['total_submitted']} tasks in {data['duration']:.3f}s ({_rate(data)})"


def summary_lines(summary: Summary, limit: int = 20) -> list[str]:
    """The plain-text report, line by line."""
    data = summary_dict(summary, limit=limit, results=False)
    lines = [
        _title(data),
        f"  succeeded {data['succeeded']}  failed {data['failed']}  "
        f"cancelled {data['cancelled']}  timeouts {data['timeouts']}"
        + (f"  restored {data['restored']} (from a checkpoint, not run)" if data["restored"] else ""),
        f"  run timed out: {'yes, it stopped at its time limit' if data['timed_out'] else 'no'}",
    ]
    backends = data["backends"]
    if backends:
        lines.append("  by backend: " + ", ".join(f"{name} {b['tasks']}" for name, b in backends.items()))
        lines.append(f"  retries {data['retries']}  attempts timed out {data['attempts_timed_out']}  "
                     f"waiting {_secs(data['waiting'])}  running {_secs(data['running'])} (summed over attempts)")
        for name, b in backends.items():
            counts = "  ".join(f"{key} {b[key]}" for key in _COUNTS)
            lines.append(f"    {name:<8} {counts}  waiting {_secs(b['waiting'])}  running {_secs(b['running'])}")
    if data["slowest"]:
        lines.append("  slowest:")
        lines.extend(f"    {_secs(r['duration'])}  {r['name']} ({r['task_id']}, {r['backend']})"
                     for r in data["slowest"][:min(limit, 5)])
    failures = data["failures"]
    if failures:
        lines.append("  did not succeed:")
    for r in failures:
        lines.append(f"    {r['status']:<9} {r['name']} ({r['task_id']}): {r['message']}")
    if data["more_failures"]:
        lines.append(f"  … and {data['more_failures']} more")
    return lines


def print_summary(summary: Summary, *, file: Any = None, limit: int = 20) -> None:
    """Print ``summary`` to ``file`` (standard output by default)."""
    out = file if file is not None else sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        print("\n".join(summary_lines(summary, limit)), file=out)
        return
    data = summary_dict(summary, limit=limit, results=False)
    console = Console(file=out)
    stopped = " — timed out: stopped at its time limit" if data["timed_out"] else ""
    table = Table(title=_title(data).replace("osiiso run:", "osiiso run —", 1) + stopped)
    times = Table(title="time of the attempts: waiting for a worker, running")
    for column in ("backend", *_COUNTS):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for column in ("backend", "attempts", "timed out", "waiting", "running"):
        times.add_column(column, justify="left" if column == "backend" else "right")
    for name, b in data["backends"].items():
        table.add_row(Text(name), *(str(b[key]) for key in _COUNTS))
        times.add_row(Text(name), str(b["attempts"]), str(b["attempts_timed_out"]), _secs(b["waiting"]),
                      _secs(b["running"]))
    table.add_row("all", str(data["total_submitted"]), str(data["succeeded"]), str(data["failed"]),
                  str(data["cancelled"]), str(data["timeouts"]), str(data["retries"]), style="bold")
    console.print(table)
    if data["backends"]:
        console.print(times)
    if data["restored"]:
        console.print(f"restored {data['restored']} (from a checkpoint, not run)")
    if data["slowest"]:
        slow = Table(title="slowest tasks")
        for column in ("task", "name", "backend", "attempts", "duration"):
            slow.add_column(column, justify="right" if column in ("attempts", "duration") else "left")
        for r in data["slowest"][:min(limit, 5)]:
            # names and messages are the user's text: rich must not read them as markup
            slow.add_row(Text(r["task_id"]), Text(r["name"]), Text(r["backend"]), str(r["attempts"]),
                         _secs(r["duration"]))
        console.print(slow)
    if data["failures"]:
        detail = Table(title="tasks that did not succeed", show_lines=False)
        for column in ("task", "name", "status", "attempts", "message"):
            detail.add_column(column)
        for r in data["failures"]:
            detail.add_row(Text(r["task_id"]), Text(r["name"]), r["status"], str(r["attempts"]), Text(r["message"]))
        console.print(detail)
        if data["more_failures"]:
            console.print(f"… and {data['more_failures']} more")
