"""The shared runner: contenders, interleaved rounds, ratios, the table and the JSON dump.

A *contender* is one way of doing a workload (osiiso on a loop, or a peer). Its ``fn`` runs
the workload once and returns the seconds it measured itself, from the creation of the
queue or primitive to the last result, so event-loop start-up is left out for everyone.
``interleave`` runs every contender once per round (A B C, B C A, ...) after one warm-up
call each, with a ``gc.collect()`` before every call.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Config:
    quick: bool = False
    rounds: int | None = None

    def pick(self, full: int, quick: int) -> int:
        """The number of rounds: ``--rounds`` if given, else the workload's quick or full count."""
        return self.rounds or (quick if self.quick else full)


@dataclass
class Contender:
    name: str
    fn: Callable[[], float]
    loop: str = "asyncio"
    osiiso: bool = False


@dataclass
class Row:
    name: str
    loop: str
    osiiso: bool
    tasks: int
    times: list[float] = field(default_factory=list)
    ratio: float | None = None
    vs: str | None = None
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def rate(self) -> float:
        return self.tasks / self.median


@dataclass
class Metric:
    name: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Report:
    id: str
    title: str
    rows: list[Row] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_on(loop: str, afn: Callable[[], Awaitable[float]]) -> float:
    """Run ``afn`` under ``asyncio``, ``uvloop`` or ``trio`` and return its value."""
    if loop == "trio":
        import trio

        return trio.run(afn)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(afn())  # type: ignore[arg-type]
    import asyncio

    return asyncio.run(afn())  # type: ignore[arg-type]


def interleave(contenders: list[Contender], tasks: int, rounds: int, warmup: int = 1) -> list[Row]:
    """Run the contenders in turn, ``rounds`` times, rotating who goes first."""
    rows = [Row(c.name, c.loop, c.osiiso, tasks) for c in contenders]
    for r in range(-warmup, rounds):
        shift = r % len(contenders)
        for i in [*range(shift, len(contenders)), *range(shift)]:
            if rows[i].error:
                continue
            gc.collect()
            try:
                elapsed = contenders[i].fn()
            except Exception as exc:  # a broken contender must not stop the others
                rows[i].error = f"{type(exc).__name__}: {exc}"
                continue
            if r >= 0:
                rows[i].times.append(elapsed)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[Row]) -> None:
    """ratio = peer median / osiiso median (>1: osiiso is faster), against osiiso on the same loop."""
    ours = [r for r in rows if r.osiiso and r.times]
    for row in rows:
        if row.osiiso or not row.times or not ours:
            continue
        base = next((o for o in ours if o.loop == row.loop), ours[0])
        row.ratio, row.vs = row.median / base.median, f"{base.name} on {base.loop}"


def run_guarded(report: Report, body: Callable[[], Any]) -> None:
    """Call ``body``; an exception becomes a note instead of ending the whole run."""
    try:
        body()
    except Exception as exc:
        report.notes.append(f"FAILED: {type(exc).__name__}: {exc}")


# -- output -------------------------------------------------------------------------------------
def _row_cells(row: Row) -> list[str]:
    if not row.times:
        return [row.name, row.loop, "-", "-", "-", "-", "-", row.error or "no data"]
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}x" if row.ratio >= 0.1 else f"{row.ratio:.3f}x"
    return [row.name, row.loop, f"{row.median:.4f}", f"{min(row.times):.4f}", f"{max(row.times):.4f}",
            f"{row.rate:,.0f}", ratio, row.vs or ""]


HEADERS = ["contender", "loop", "median s", "min s", "max s", "tasks/s", "ratio", "vs"]
METRIC_HEADERS = ["metric", "value", "target", "ok"]


def _ok(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def print_report(report: Report) -> None:
    tables = []
    if report.rows:
        tables.append((HEADERS, [_row_cells(r) for r in report.rows]))
    if report.metrics:
        tables.append((METRIC_HEADERS, [[m.name, m.value, m.target, _ok(m.ok)] for m in report.metrics]))
    title = f"{report.id} {report.title} ({report.seconds:.1f}s)"
    if installed("rich"):
        _print_rich(title, tables, report.notes)
    else:
        _print_plain(title, tables, report.notes)


def _print_rich(title: str, tables: list[tuple[list[str], list[list[str]]]], notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # rich would fold the table to 80 columns in a pipe or a file
        console = Console(width=160)
    for headers, cells in tables:
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i < 2 or h == "vs" else "right", no_wrap=i == 0)
        for line in cells:
            table.add_row(*line)
        console.print(table)
        title = ""
    for note in notes:
        console.print(f"  note: {note}", highlight=False)
    console.print()


def _print_plain(title: str, tables: list[tuple[list[str], list[list[str]]]], notes: list[str]) -> None:
    print(title)
    for headers, cells in tables:
        widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]
        for line in [headers, ["-" * w for w in widths], *cells]:
            print("  " + "  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)))
    for note in notes:
        print(f"  note: {note}")
    print()


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["python -m benchmarks", *sys.argv[1:]])}


def dump_json(path: str, reports: list[Report]) -> None:
    data = {"machine": machine(), "reports": []}
    for rep in reports:
        item = asdict(rep)
        for row, out in zip(rep.rows, item["rows"], strict=True):
            if row.times:
                out.update(median=row.median, min=min(row.times), max=max(row.times), tasks_per_s=row.rate)
        data["reports"].append(item)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
