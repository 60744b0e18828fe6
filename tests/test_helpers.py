"""One-call helpers: osiiso.run, amap, tmap and pmap."""

from __future__ import annotations

import pytest
from support import LOOP_NAMES

import osiiso

pytestmark = [pytest.mark.timeout(60)]


def _double(x: int) -> int:
    return 2 * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


async def _async_double(x: int) -> int:
    return 2 * x


def test_tmap_keeps_input_order() -> None:
    """tmap runs a sync function on threads and returns values in input order."""
    assert osiiso.tmap(_double, range(20), threads=4) == tuple(2 * i for i in range(20))


def test_pmap_runs_in_processes_and_keeps_order() -> None:
    """pmap runs a function (even a lambda) in worker processes, values in input order."""
    assert osiiso.pmap(_double, range(10), processes=2) == tuple(2 * i for i in range(10))
    assert osiiso.pmap(lambda x: x + 1, [1, 2, 3], processes=1) == (2, 3, 4)


def test_map_helpers_raise_execution_error() -> None:
    """A failing element makes the helper raise ExecutionError naming the failure."""
    with pytest.raises(osiiso.ExecutionError, match="three"):
        osiiso.tmap(_fail_on_three, range(5))


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_amap_and_run(loop: str) -> None:
    """osiiso.run drives an async main on asyncio or trio; amap returns ordered values."""
    async def main(n: int) -> tuple[int, ...]:
        return await osiiso.amap(_async_double, range(n), workers=8)

    assert osiiso.run(main, 5, backend=loop) == (0, 2, 4, 6, 8)


def test_run_takes_a_coroutine_on_asyncio_only() -> None:
    """osiiso.run accepts a coroutine object on asyncio and explains the fix on trio."""
    assert osiiso.run(_async_double(4)) == 8
    coro = _async_double(1)
    with pytest.raises(TypeError, match="async function itself"):
        osiiso.run(coro, backend="trio")
    with pytest.raises(ValueError, match="'asyncio' or 'trio'"):
        osiiso.run(_async_double, 1, backend="curio")
