"""A script written for the original osiiso's ProcessQueue (1.1, as its README shows it).

tests/test_migrating.py runs it against this package, unchanged: only the package differs.
"""

import multiprocessing
import time

import osiiso


def score(n: int) -> int:
    return sum(i * i for i in range(n))


def halve(n: int) -> float:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n / 2


if __name__ == "__main__":
    with osiiso.ProcessQueue(workers=4) as q:
        q.map(score, [10_000, 20_000, 30_000], name="score")
        summary = q.run(strict=True)

    print(summary.values)
    assert summary.ok and len(summary.values) == 3

    with osiiso.ProcessQueue(workers=1, context=multiprocessing.get_context("spawn")) as q:
        sleepy = q.submit(time.sleep, 10, timeout=0.5, name="sleepy")
        bad = q.submit(halve, -1, name="halve")
        summary = q.run()
    assert isinstance(sleepy.exception(), TimeoutError) and sleepy.result().status == "failed"
    assert isinstance(bad.exception(), ValueError) and summary.failed == 2
    print(sorted(r.name for r in summary.errors))

    group_queue = osiiso.ProcessQueue(workers=2)
    group = group_queue.group(halve, [2, 4, 6], group_id="halves")
    group_queue.run()
    print(group.values(timeout=30))
    group_queue.shutdown()

    print(osiiso.pmap(score, [1, 2, 3], workers=2))
    print("process script ok")
