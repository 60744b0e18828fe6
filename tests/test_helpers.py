"""One-call helpers: osiiso.run, amap, tmap and pmap."""

from __future__ import annotations

from typing import Any

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


def test_run_refuses_bad_arguments_and_closes_a_refused_coroutine() -> None:
    """A bad backend, use_uvloop, sigterm or extra arguments are clear errors, and a coroutine
    object refused for them is closed (no "never awaited" warning); so is a call inside a loop."""
    import inspect

    cases: list[tuple[dict[str, Any], tuple[Any, ...], str]] = [
        ({"backend": "curio"}, (), "'asyncio' or 'trio'"), ({"use_uvloop": "no"}, (), "use_uvloop must be"),
        ({"sigterm": 1}, (), "sigterm must be"), ({}, (1,), "arguments go with an async function"),
    ]
    for options, args, message in cases:
        coro = _async_double(1)
        with pytest.raises((TypeError, ValueError), match=message):
            osiiso.run(coro, *args, **options)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    async def inside() -> str:
        coro = _async_double(2)
        with pytest.raises(RuntimeError, match=r"already running an asyncio event loop .*await main\(\)"):
            osiiso.run(coro)
        return inspect.getcoroutinestate(coro)

    assert osiiso.run(inside, use_uvloop=False) == inspect.CORO_CLOSED


def test_map_helpers_take_the_queue_settings_that_apply_to_them() -> None:
    """fail_policy (it cancels the rest), the hooks and the batching switches go to the map's queue;
    size, mode, keep_results, defaults and on_timeout are refused with the fix."""
    seen: list[str] = []
    with pytest.raises(osiiso.ExecutionError, match="three"):
        osiiso.tmap(_fail_on_three, range(8), workers=1, fail_policy="fail_first", thread_batching=False,
                    on_complete=lambda result: seen.append(result.status.value))
    assert seen == ["succeeded"] * 3 + ["failed"] + ["cancelled"] * 4
    assert osiiso.pmap(_double, [1, 2], processes=1, process_batching=False) == (2, 4)
    for name in ("size", "mode", "keep_results", "defaults", "on_timeout"):
        with pytest.raises(TypeError, match=f"{name}: a queue setting a one-shot map does not take"):
            osiiso.tmap(_double, [1], **{name: None})
