"""A queue outlives one event loop: runs on successive loops reuse it safely."""

from __future__ import annotations

import threading

import anyio
import pytest

from osiiso import AsyncQueue

pytestmark = [pytest.mark.timeout(30)]


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_queue_runs_again_on_a_new_event_loop(backend: str) -> None:
    """Thread tasks run on a second event loop after the first has closed; no pool thread leaks."""
    q = AsyncQueue(threads=2)
    before = {t.ident for t in threading.enumerate()}

    async def one_run(x: int) -> int:
        handle = q.submit(_square, x, backend="thread")
        await q.run(strict=True)
        return handle.value()

    assert anyio.run(one_run, 3, backend=backend) == 9
    assert anyio.run(one_run, 4, backend=backend) == 16

    async def close() -> None:
        await q.shutdown()

    anyio.run(close, backend=backend)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("osiiso")]
    assert leftover == []
