"""``python -m osiiso``: the built-in demo, a mixed pipeline on one queue.

Pages served by a local HTTP server are fetched by coroutine tasks, scored in worker
processes and written to SQLite by thread tasks; one run, one summary. No network
access is needed (the server listens on 127.0.0.1 only). ``--timeline run.html`` also
writes the run's task-stream page.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence

import osiiso

from ._demo import PageServer, best_pages, create_database, fetch, score, store

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m osiiso",
        description="Fetch pages with coroutines, score them in processes, store them from threads: "
                    "one osiiso queue, one run, one summary.")
    parser.add_argument("--pages", type=int, default=300, help="how many pages to fetch (default: 300)")
    parser.add_argument("--workers", type=int, default=32, help="tasks running at once (default: 32)")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes for the scoring stage (default: one per CPU)")
    parser.add_argument("--db", default=None, help="SQLite file to write (default: a new temporary file)")
    parser.add_argument("--loop", choices=("asyncio", "trio"), default="asyncio", help="event loop (default: asyncio)")
    parser.add_argument("--seed", type=int, default=7, help="seed for the flaky pages (default: 7)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a live progress bar (default: on a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--timeline", default=None, metavar="PATH",
                        help="also write the run's task-stream page (one HTML file) to PATH")
    return parser


async def _pipeline(pages: int, workers: int, processes: int | None, db: str, port: int,
                    progress: bool) -> osiiso.RunSummary:
    queue = osiiso.AsyncQueue(workers=workers, processes=processes)
    fetch_page = queue.task(fetch, retries=2, retry_delay=0.05, timeout=1.0, name="fetch")
    scoring = osiiso.TaskOptions(backend="process", timeout=30, name="score")
    storing = osiiso.TaskOptions(backend="thread", retries=2, name="store")
    for number in range(pages):
        page = fetch_page(port, number)  # a coroutine task on the event loop
        # a handle passed as an argument is a dependency: the task starts once it has a value
        scored = queue.submit(score, page, opts=scoring)  # parsed and scored in a worker process
        queue.submit(store, db, number, scored, opts=storing)  # written to SQLite from a thread
    try:
        return await queue.run(progress=progress)
    finally:
        await queue.shutdown()


async def _demo(args: argparse.Namespace, db: str, port: int, progress: bool) -> None:
    """The pipeline, then its report: printed here, so that a SIGTERM (which stops the run, then
    ends the process with status 143 once this returns) still shows what was done."""
    began = time.perf_counter()
    summary = await _pipeline(args.pages, args.workers, args.processes, db, port, progress)
    summary.display()
    if args.timeline:
        print(f"task-stream page: {summary.timeline(args.timeline, title=f'osiiso demo: {args.pages} pages')}")
    stages = {name: len(results) for name, results in summary.by_name().items()}
    stored = sum(1 for r in summary.by_name().get("store", ()) if r.ok)
    print(f"\n{args.pages} pages: {stages.get('fetch', 0)} fetches, {stages.get('score', 0)} scores, "
          f"{stored} rows stored in {time.perf_counter() - began:.1f}s")
    print(f"database: {db}")
    for number, value, top in best_pages(db):
        print(f"  page {number:>4}  score {value:6.2f}  most common word: {top}")


def _unwritable(path: str) -> str | None:
    """Why the page cannot be written to ``path``, or ``None``."""
    if os.path.isdir(path):
        return "it is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"there is no directory {folder}"
    if not os.access(folder, os.W_OK):
        return f"the directory {folder} cannot be written to"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print its summary; exit status 0 when the pipeline ran (2 for bad arguments,
    130 on Ctrl-C, 143 on SIGTERM, after the report of what ran)."""
    args = _parser().parse_args(argv)
    if args.pages < 1 or args.workers < 1 or (args.processes is not None and args.processes < 1):
        print("--pages, --workers and --processes must be at least 1", file=sys.stderr)
        return 2
    problem = _unwritable(args.timeline) if args.timeline else None
    if problem is not None:
        print(f"--timeline {args.timeline}: cannot write the page there ({problem})", file=sys.stderr)
        return 2
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="osiiso-demo-"), "pages.sqlite3")
    try:
        create_database(db)
    except (OSError, sqlite3.Error) as exc:
        print(f"--db {db}: cannot use it as the demo's SQLite database ({exc}) — give a new file's path "
              "in a directory you can write to", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        with PageServer(args.pages, args.seed) as server:
            osiiso.run(_demo, args, db, server.port, progress, backend=args.loop)
    except KeyboardInterrupt:
        print("\ninterrupted: the run was cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (`| head`): say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
