"""``python -m osiiso``: a short demo run that prints its summary.

Several hundred coroutine tasks stand in for network calls: most succeed, some fail
once and succeed on retry, a few hang past their timeout. No network is needed.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

import anyio

import osiiso

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m osiiso", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400, help="how many tasks to run (default 400)")
    parser.add_argument("--workers", type=int, default=32, help="tasks running at once (default 32)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for latencies and failures")
    parser.add_argument("--loop", choices=("asyncio", "trio"), default="asyncio", help="event loop")
    parser.add_argument("--progress", action="store_true", help="show a live progress bar")
    return parser


async def _demo(tasks: int, workers: int, seed: int, progress: bool) -> osiiso.RunSummary:
    rng = random.Random(seed)
    flaky_left: dict[int, int] = {}
    queue = osiiso.AsyncQueue(workers=workers)

    @queue.task(retries=2, retry_delay=0.01, timeout=0.5, name="fetch")
    async def fetch(page: int) -> int:
        """Pretend to download a page: sleep for a latency, fail now and then."""
        await anyio.sleep(rng.uniform(0.001, 0.02))
        if flaky_left.get(page, 0) > 0:
            flaky_left[page] -= 1
            raise ConnectionError(f"page {page}: connection reset")
        if page % 97 == 13:
            await anyio.sleep(60)  # hangs: the 0.5 s timeout ends each attempt
        return len(str(page)) * 1024

    urgent = fetch.options(priority=0)
    for page in range(tasks):
        if rng.random() < 0.1:
            flaky_left[page] = 1
        (urgent if page % 10 == 0 else fetch)(page)
    return await queue.run(progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit status 0 when every task ended as expected."""
    args = _parser().parse_args(argv)
    if args.tasks < 1 or args.workers < 1:
        print("--tasks and --workers must be at least 1", file=sys.stderr)
        return 2
    summary = osiiso.run(_demo, args.tasks, args.workers, args.seed, args.progress, backend=args.loop)
    summary.display()
    total_bytes = sum(summary.values)
    print(f"fetched {summary.succeeded} pages ({total_bytes:,} bytes); "
          f"{summary.timed_out} timed out after 3 attempts of 0.5s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
