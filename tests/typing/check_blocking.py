"""Type-checking only (mypy --strict runs over it in CI): the blocking Queue keeps the function's types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from typing_extensions import assert_type

import osiiso


def typed_usage() -> None:
    with osiiso.Queue(loop="trio") as q:

        @q.task(retries=2)
        async def fetch(url: str, *, verbose: bool = False) -> bytes:
            return url.encode()

        @q.task(backend="process")
        def crunch(n: int) -> float:
            return n / 2

        handle = fetch("https://example.com", verbose=True)
        assert_type(handle, osiiso.SyncTaskHandle[bytes])
        assert_type(crunch(3), osiiso.SyncTaskHandle[float])
        assert_type(handle.result(timeout=1), osiiso.TaskResult)
        assert_type(handle.value(), bytes)
        assert_type(handle.value(timeout=2.5), bytes)
        assert_type(fetch.map(["a", "b"]), list[osiiso.SyncTaskHandle[bytes]])
        group = fetch.group(["a"])
        assert_type(group, osiiso.SyncTaskGroup[bytes])
        assert_type(group.values(timeout=3), tuple[bytes, ...])
        assert_type(group.as_completed(), Iterator[osiiso.SyncTaskHandle[bytes]])
        assert_type(osiiso.iter_completed(group.handles), Iterator[osiiso.SyncTaskHandle[bytes]])
        assert_type(crunch.options(timeout=1)(4), osiiso.SyncTaskHandle[float])

        def plain(n: int) -> float:
            return n * 1.5

        assert_type(q.submit(plain, 2), osiiso.SyncTaskHandle[float])

        async def coro(n: int) -> str:
            return str(n)

        assert_type(q.submit(coro, 1), osiiso.SyncTaskHandle[str])
        summary = q.run(timeout=5, strict=True)
        assert_type(summary, osiiso.RunSummary)
        assert_type(summary.timed_out, bool)
        assert_type(summary.errors, tuple[osiiso.TaskResult, ...])
        _: Any = summary.values

    tq: osiiso.Queue = osiiso.ThreadQueue(workers=4, size=10)
    pq: osiiso.Queue = osiiso.ProcessQueue(workers=2, context="spawn")
    assert_type(tq.start(), osiiso.Queue)
    assert_type(osiiso.tmap(plain_fn, [1]), tuple[int, ...])
    pq.cancel()


def plain_fn(n: int) -> int:
    return n
