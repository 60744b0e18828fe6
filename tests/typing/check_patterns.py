"""Type-checking only (mypy --strict runs over it in CI): the patterns the guides teach keep their types.

Every check is an ``assert_type`` or an assignment to an annotated variable, so a pattern that
loses its type (``Any``) or stops type-checking fails mypy here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from typing_extensions import assert_type

import osiiso
from osiiso import TaskHandle


async def seed_page() -> None:
    """The seed page's complete example, as written."""
    events: list[str] = []
    q = osiiso.AsyncQueue(workers=3, on_complete=lambda r: events.append(f"{r.name}:{r.status}"))

    @q.task(retries=1, retry_delay=0.01, timeout=5, name="api-call")
    async def call_api(endpoint: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"endpoint": endpoint, "status": 200}

    users = call_api("/users")
    posts = call_api("/posts", priority=0)  # an option as a keyword of the call
    assert_type(users, TaskHandle[dict[str, Any]])
    assert_type(posts, TaskHandle[dict[str, Any]])
    assert_type(call_api("/x", timeout=30, name="x", metadata={"k": 1}), TaskHandle[dict[str, Any]])
    assert_type(call_api.options(priority=0)("/posts"), TaskHandle[dict[str, Any]])  # the fully checked spelling
    assert_type(call_api.map(["/comments", "/likes"], timeout=30), list[TaskHandle[dict[str, Any]]])
    summary = await q.run(strict=True)
    summary.display()


async def pipeline(url: str) -> None:
    """``store(parse(fetch(url)))``: handles as arguments of bound tasks."""
    q = osiiso.AsyncQueue()

    @q.task()
    async def fetch(url: str) -> bytes:
        return url.encode()

    @q.task(backend="process")
    def parse(page: bytes, *, strict: bool = False) -> dict[str, int]:
        return {"size": len(page)}

    @q.task(backend="thread")
    def store(record: dict[str, int]) -> None:
        pass

    stored = store(parse(fetch(url)))  # each handle stands for its value
    assert_type(stored, TaskHandle[None])
    parsed = parse(fetch(url), strict=True, priority=1)
    assert_type(parsed, TaskHandle[dict[str, int]])
    assert_type(parse(b"raw"), TaskHandle[dict[str, int]])
    await q.run()


async def maps_and_groups() -> None:
    """``q.map``, ``q.group`` and the one-shot maps keep the value type."""
    q = osiiso.AsyncQueue()

    def square(n: int) -> int:
        return n * n

    async def name_of(n: int) -> str:
        return str(n)

    assert_type(q.map(square, range(3)), list[TaskHandle[int]])
    assert_type(q.map(name_of, range(3), backend="thread"), list[TaskHandle[str]])
    group = q.group(square, range(3))
    assert_type(group, osiiso.TaskGroup[int])
    assert_type(q.group(name_of, [1, 2]), osiiso.TaskGroup[str])
    assert_type(q.group([(square, 1), (name_of, 2)]), osiiso.TaskGroup[Any])
    await q.run()
    squares: tuple[int, ...] = await group.values()
    assert_type(squares, tuple[int, ...])
    assert_type(await osiiso.amap(square, range(3)), tuple[int, ...])
    assert_type(await osiiso.amap(name_of, range(3)), tuple[str, ...])


def one_shot_maps() -> None:
    """``tmap`` and ``pmap`` from synchronous code."""
    def square(n: int) -> int:
        return n * n

    assert_type(osiiso.tmap(square, range(3)), tuple[int, ...])
    assert_type(osiiso.pmap(square, range(3), timeout=5), tuple[int, ...])


def blocking_queue(url: str) -> None:
    """The blocking Queue: the same patterns with SyncTaskHandle."""
    with osiiso.Queue() as q:
        @q.task()
        def fetch(url: str) -> bytes:
            return url.encode()

        @q.task()
        def parse(page: bytes) -> int:
            return len(page)

        assert_type(parse(fetch(url)), osiiso.SyncTaskHandle[int])
        assert_type(fetch(url, priority=0), osiiso.SyncTaskHandle[bytes])
        assert_type(parse.map([b"a"]), list[osiiso.SyncTaskHandle[int]])

        def size(page: bytes) -> int:
            return len(page)

        async def upper(page: bytes) -> bytes:
            return page.upper()

        assert_type(q.map(size, [b"a"]), list[osiiso.SyncTaskHandle[int]])
        assert_type(q.map(upper, [b"a"]), list[osiiso.SyncTaskHandle[bytes]])
        assert_type(q.group(size, [b"a"]), osiiso.SyncTaskGroup[int])
        assert_type(q.group(upper, [b"a"]).values(), tuple[bytes, ...])
