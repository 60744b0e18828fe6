"""Command line: ``python -m benchmarks [--quick] [--only W1,W8] [--rounds N] [--json out.json]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from . import WORKLOADS
from ._runner import Config, Report, dump_json, print_report


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller scaling runs (< 3 min)")
    parser.add_argument("--only", default="", help=f"comma-separated workload ids, from {', '.join(WORKLOADS)}")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (overrides the defaults)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    wanted = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    args.wanted = wanted or list(WORKLOADS)
    return args


def run_workload(wid: str, config: Config) -> Report:
    try:
        module = importlib.import_module(WORKLOADS[wid])
    except Exception as exc:  # a backend still being written must not stop the other workloads
        return Report(wid, "(not run)", notes=[f"skipped: cannot import {WORKLOADS[wid]}: {type(exc).__name__}: {exc}"])
    return module.run(config)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = Config(quick=args.quick, rounds=args.rounds)
    start = time.perf_counter()
    reports = []
    for wid in args.wanted:
        report = run_workload(wid, config)
        print_report(report)
        reports.append(report)
    print(f"total {time.perf_counter() - start:.1f}s, Python {sys.version.split()[0]}")
    if args.json:
        dump_json(args.json, reports)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
