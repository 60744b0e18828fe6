"""Conformance: generator and async generator functions are refused at submit, on every backend."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator

import pytest

from osiiso import AsyncQueue

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


async def anumbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


class Yields:
    """A callable object whose ``__call__`` is a generator."""

    def __call__(self, n: int) -> Iterator[int]:
        yield from range(n)


GENERATORS = [numbers, anumbers, functools.partial(numbers, 3), Yields()]
IDS = ["generator", "async-generator", "partial", "callable-object"]


@pytest.mark.parametrize("fn", GENERATORS, ids=IDS)
async def test_generator_functions_are_refused_at_submit(kit: Kit, fn: object) -> None:
    """submit, map and a bound task refuse a generator function with a TypeError saying to return a list."""
    q = AsyncQueue()
    calls = [lambda: q.submit(fn, 3, **kit.opts), lambda: q.map(fn, [3], **kit.opts),
             lambda: q.task(**kit.opts)(fn)(3)]
    for call in calls:
        with pytest.raises(TypeError, match="generator function.*return a list") as info:
            call()
        assert info.value.__context__ is None
    assert q.pending_count == 0
    q.submit(kit.echo, 1, **kit.opts)
    summary = await q.run()
    assert summary.values == (1,)
    await q.shutdown()


@pytest.mark.parametrize("fn", GENERATORS, ids=IDS)
async def test_auto_refuses_generator_functions_too(fn: object) -> None:
    """backend='auto' never routes a generator function (an async one included) to threads."""
    q = AsyncQueue()
    with pytest.raises(TypeError, match="generator function"):
        q.submit(fn, 3)
    assert q.pending_count == 0
    await q.shutdown()
