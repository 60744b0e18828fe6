"""Retries with backoff, per-attempt timeouts, ``fail_policy`` and ``must_complete``.

What it shows
-------------
Run 1 (``fail_policy="continue"``, the default: every task runs, failures are counted):

* a flaky coroutine that fails twice, then succeeds on its third attempt
  (``retries=3, retry_delay=0.05, backoff=2``: it waits 0.05 s, then 0.1 s);
* one that keeps failing and ends ``failed`` after 1 + 3 attempts;
* an error that is not in ``retry_on``: it fails at once, without retrying;
* a call that hangs: ``timeout=0.2`` ends each attempt, and after its one retry it
  ends ``failed`` with ``TaskTimeoutError`` (the summary counts it in ``timeouts``);
* the ``on_retry`` hook, called before each retry.

Run 2 (``fail_policy="fail_first"``): the first failure cancels the tasks still waiting
or running, except the one marked ``must_complete=True``, which is left to finish.

Everything is simulated with ``anyio.sleep``: no network, about a second in all.

Run it with::

    python examples/retries_and_timeouts.py
"""

from __future__ import annotations

import collections

import anyio

import osiiso

attempts_seen: collections.Counter[str] = collections.Counter()


async def flaky(service: str, failures: int) -> str:
    """Fails with ``ConnectionError`` on its first ``failures`` attempts, then answers."""
    attempts_seen[service] += 1
    await anyio.sleep(0.01)
    if attempts_seen[service] <= failures:
        raise ConnectionError(f"{service}: connection reset (attempt {attempts_seen[service]})")
    return f"{service}: ok"


async def bad_request(service: str) -> str:
    """Fails with an error that retrying will not fix."""
    await anyio.sleep(0.01)
    raise ValueError(f"{service}: 400 bad request")


async def hangs(service: str) -> str:
    """Never answers in time."""
    await anyio.sleep(30)
    return f"{service}: too late"


async def work(name: str, seconds: float) -> str:
    await anyio.sleep(seconds)
    return f"{name} done"


def show(title: str, summary: osiiso.RunSummary) -> None:
    """One line per task: what happened to it, and after how many attempts."""
    print(f"{title} ({summary.duration:.2f}s)")
    for r in summary.results:
        print(f"  {r.name:<16} {r.status:<9} attempts={r.attempts}  {r.message}")


async def main() -> tuple[osiiso.RunSummary, osiiso.RunSummary]:
    def on_retry(handle: osiiso.TaskHandle[object], exc: BaseException) -> None:
        print(f"  retrying {handle.name} after {type(exc).__name__} (attempt {handle.attempts} failed)")

    # Queue-wide defaults for every task: up to 3 retries with exponential backoff,
    # but only for connection errors and timeouts.
    defaults = osiiso.TaskOptions(retries=3, retry_delay=0.05, backoff=2.0,
                                  retry_on=(ConnectionError, TimeoutError))
    q = osiiso.AsyncQueue(defaults=defaults, on_retry=on_retry)

    # --- run 1: fail_policy="continue" ---------------------------------------------------------
    print("run 1: retries, backoff and timeouts")
    q.submit(flaky, "inventory", 2, name="flaky-then-ok")
    q.submit(flaky, "billing", 99, name="always-failing")
    q.submit(bad_request, "search", name="not-retryable")
    # TaskTimeoutError is a TimeoutError, so it is retried: here once (retries=1 overrides 3).
    q.submit(hangs, "reports", name="hangs", timeout=0.2, retries=1)
    first = await q.run()
    show("run 1", first)

    # --- run 2: fail_policy="fail_first" -------------------------------------------------------
    print("\nrun 2: the first failure cancels the rest, except must_complete")
    q.submit(bad_request, "payments", name="fails-fast")
    for i in range(3):
        q.submit(work, f"batch-{i}", 1.0, name=f"batch-{i}")
    q.submit(work, "checkpoint", 0.3, name="save-checkpoint", must_complete=True)
    second = await q.run(fail_policy="fail_first")
    show("run 2", second)

    await q.shutdown()
    return first, second


if __name__ == "__main__":
    first, second = osiiso.run(main)
    print()
    second.display()
    print(f"run 1: {first.succeeded} succeeded, {first.failed} failed ({first.timeouts} timed out); "
          f"run 2: {second.succeeded} succeeded, {second.failed} failed, {second.cancelled} cancelled")
