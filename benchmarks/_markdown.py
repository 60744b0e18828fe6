"""Turn a ``--json`` file of the harness into the markdown tables of ``docs/benchmarks.md``.

``python -m benchmarks._markdown out.json`` prints one section per workload: the contenders'
medians, spreads, rates and ratios, the target metrics, and the workload's notes.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def report_markdown(report: dict[str, Any]) -> list[str]:
    """The lines of one workload's section."""
    out = [f"### {report['id']}: {report['title']}", "", f"Wall time of this workload: {report['seconds']:.1f} s.", ""]
    if report["rows"]:
        out += ["| contender | loop | median s | min s | max s | tasks/s | ratio | vs |",
                "|---|---|--:|--:|--:|--:|--:|---|"]
        for row in report["rows"]:
            if not row["times"]:
                out.append(f"| {_cell(row['name'])} | {row['loop']} | - | - | - | - | - | "
                           f"{_cell(row['error'] or 'no data')} |")
                continue
            out.append(f"| {_cell(row['name'])} | {row['loop']} | {row['median']:.4f} | {row['min']:.4f} | "
                       f"{row['max']:.4f} | {row['tasks_per_s']:,.0f} | {_ratio(row['ratio'])} | "
                       f"{_cell(row['vs'] or '')} |")
        out.append("")
    if report["metrics"]:
        out += ["| metric | value | target | ok |", "|---|--:|--:|---|"]
        for metric in report["metrics"]:
            ok = "" if metric["ok"] is None else ("yes" if metric["ok"] else "**no**")
            out.append(f"| {_cell(metric['name'])} | {_cell(metric['value'])} | {_cell(metric['target'])} | {ok} |")
        out.append("")
    out += [f"- {note}" for note in report["notes"]]
    out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks._markdown RESULTS.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        data = json.load(f)
    lines: list[str] = []
    for report in data["reports"]:
        lines += report_markdown(report)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
