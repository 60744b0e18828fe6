"""W1 for the original osiiso (PyPI ``osiiso==1.1.0``, which needs Python 3.13).

It cannot share a process with this repository's osiiso (same import name, older Python),
so it runs here on its own, interleaved with the two asyncio peers in the same Python 3.13
process (``asyncio.gather`` + ``Semaphore(64)`` and 64 workers over one iterator). Compare
the *ratios* with ``python -m benchmarks --only W1``, not the absolute times: the
interpreters differ. Plain asyncio loop for all three (the original's ``osiiso.run`` would
pick uvloop if installed; it is not installed in this venv).

Set-up and run, from the repository root::

    PYENV_VERSION=3.13.0 pyenv exec python -m venv /tmp/venv313
    /tmp/venv313/bin/pip install osiiso==1.1.0
    /tmp/venv313/bin/python benchmarks/original_osiiso.py [--rounds 9]

Run it as a script (not ``-m``), so that ``import osiiso`` finds the PyPI package and not
the one in this repository. The original's API for this workload is the same as ours:
``AsyncQueue(workers=64)``, ``q.submit(f, i)``, ``await q.run()`` -> ``RunSummary``.
"""

from __future__ import annotations

import argparse
import sys
import time

if __package__:
    sys.exit("run me as a script: /tmp/venv313/bin/python benchmarks/original_osiiso.py")

# siblings, loaded by path (this folder is sys.path[0]); both import only the standard library at the top
import _async_peers as peers
from _runner import Contender, Report, interleave, print_report, run_on

import osiiso  # the PyPI package: this file's folder, not the repository root, is on sys.path

N, LIMIT = 20_000, 64


async def noop(i: int) -> int:
    return i


def contender(name: str, fn, *extra, osiiso_row: bool = False) -> Contender:  # type: ignore[no-untyped-def]
    async def once() -> float:
        return await fn(noop, N, LIMIT, *extra)  # type: ignore[no-any-return]

    return Contender(name, lambda: run_on("asyncio", once), "asyncio", osiiso_row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    if not hasattr(osiiso, "ThreadQueue"):
        sys.exit(f"{osiiso.__file__} is not the PyPI osiiso 1.1.0; see this file's docstring")
    report = Report("W1-original", f"original osiiso (PyPI 1.1.0) on Python {sys.version.split()[0]}")
    start = time.perf_counter()
    report.rows = interleave([
        contender("original osiiso AsyncQueue", peers.osiiso_queue, osiiso.AsyncQueue, osiiso_row=True),
        contender("asyncio.gather + Semaphore", peers.asyncio_gather),
        contender(f"{LIMIT} workers over one iterator", peers.asyncio_workers),
    ], N, rounds)
    report.seconds = time.perf_counter() - start
    report.notes.append("ratio = peer median / original osiiso median (>1: the original is faster)")
    print_report(report)
    failed = [row.name for row in report.rows if row.error is not None]
    if failed:
        sys.exit(f"these rows failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
