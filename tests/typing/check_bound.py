"""Type-checking only (mypy --strict runs over it in CI): bound tasks keep the function's types."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

import osiiso


async def typed_usage() -> None:
    q = osiiso.AsyncQueue()

    @q.task(retries=2)
    async def fetch(url: str, *, verbose: bool = False) -> bytes:
        return url.encode()

    @q.task(backend="process")
    def crunch(n: int) -> float:
        return n / 2

    handle = fetch("https://example.com", verbose=True)
    assert_type(handle, osiiso.TaskHandle[bytes])
    assert_type(crunch(3), osiiso.TaskHandle[float])
    assert_type(await handle, osiiso.TaskResult)
    assert_type(handle.value(), bytes)
    assert_type(fetch.map(["a", "b"]), list[osiiso.TaskHandle[bytes]])
    assert_type(fetch.group(["a"]), osiiso.TaskGroup[bytes])
    def plain(n: int) -> float:
        return n * 1.5

    assert_type(q.submit(plain, 2), osiiso.TaskHandle[float])

    async def coro(n: int) -> str:
        return str(n)

    assert_type(q.submit(coro, 1), osiiso.TaskHandle[str])
    summary = await q.run()
    assert_type(summary, osiiso.RunSummary)
    _: Any = summary.values
