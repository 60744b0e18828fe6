"""CPU-bound fan-out over every core with process tasks, timed against a plain serial loop.

What it shows
-------------
* ``@q.task(backend="process")`` on a CPU-heavy function: each call submits a task that
  runs in a pool of worker processes (one per core by default), so pure-Python number
  crunching is not held back by the GIL.
* ``bound.map(...)``: one task per chunk of the work, results read back in input order.
* A lambda (and a closure over a local variable) submitted with ``backend="process"``:
  osiiso ships functions with cloudpickle, so functions defined in this very script work
  in the workers, and the workers never re-import or re-run the script.
* The serial time, the parallel time and the speedup (close to the number of cores when
  there is more than one).

Run it with::

    python examples/cpu_fanout.py
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time

import osiiso

LIMIT = 1_000_000  # count the primes below this number
CHUNKS = 12  # split the range into this many tasks (a few per core balances the load)

# A module-level queue, so that ``@q.task`` can decorate module-level functions. It starts
# no thread or process yet: the workers start with the first run, inside ``main()``.
q = osiiso.AsyncQueue()


def count_primes(lo: int, hi: int) -> int:
    """Count the primes in ``[lo, hi)`` by trial division: slow, pure Python, CPU-bound on purpose."""
    count = 0
    for n in range(max(lo, 2), hi):
        if n < 4:
            count += 1
            continue
        if n % 2 == 0 or n % 3 == 0:
            continue
        k = 5
        while k * k <= n:
            if n % k == 0 or n % (k + 2) == 0:
                break
            k += 6
        else:
            count += 1
    return count


@q.task(backend="process", name="count_primes")
def primes_in(lo: int, hi: int) -> tuple[int, int]:
    """The process task: count the primes of one chunk and say which worker process did it."""
    return count_primes(lo, hi), os.getpid()


async def main() -> None:
    bounds = [LIMIT * i // CHUNKS for i in range(CHUNKS + 1)]
    chunks = list(itertools.pairwise(bounds))

    # 1. The reference: the same chunks, one after the other, in this process.
    began = time.perf_counter()
    serial_total = sum(count_primes(lo, hi) for lo, hi in chunks)
    serial = time.perf_counter() - began

    # 2. A lambda in a process task, with a closure over a local variable. This first run
    #    also starts the worker processes; they stay up and are reused by the next run.
    salt = b"osiiso"
    began = time.perf_counter()
    digests = q.map(lambda i: hashlib.sha256(salt + bytes([i])).hexdigest()[:12], range(4), backend="process")
    await q.run(strict=True)  # strict: raise ExecutionError if any task failed
    warmup = time.perf_counter() - began
    print("lambda results:", ", ".join(h.value() for h in digests))

    # 3. The fan-out: one process task per chunk. Tuples are positional arguments.
    handles = primes_in.map(chunks)
    summary = await q.run()
    parallel = summary.duration
    results = [h.value() for h in handles]  # input order, whatever order they finished in
    parallel_total = sum(count for count, _pid in results)
    pids = {pid for _count, pid in results}

    await q.shutdown()  # stop the worker processes

    summary.display()
    assert parallel_total == serial_total, (parallel_total, serial_total)
    print(f"primes below {LIMIT:,}: {parallel_total:,} ({CHUNKS} chunks, {len(pids)} worker processes)")
    print(f"worker start-up + lambda run: {warmup:.2f}s (once per queue)")
    print(f"serial {serial:.2f}s, parallel {parallel:.2f}s: speedup x{serial / parallel:.1f} "
          f"on {os.cpu_count()} CPUs")


# The guard is good practice but optional with osiiso: its worker processes receive the
# tasks' functions by value (cloudpickle) and never import or re-run this script, so a
# script without the guard does not start workers recursively.
if __name__ == "__main__":
    osiiso.run(main)
