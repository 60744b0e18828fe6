"""The contender list shared by W1 (no-op) and W2 (sleep): osiiso on asyncio, uvloop and trio, and peers.

``task_for(loop)`` gives the coroutine function to fan out on that loop (W2 sleeps with the
loop's own ``sleep``). Peers whose package is missing are left out with a note.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from . import _async_peers as peers
from ._async_peers import Task
from ._runner import Contender, installed, run_on


def _on(loop: str, fn: Callable[..., object], task: Task, n: int, limit: int) -> Callable[[], float]:
    async def once() -> float:
        return await fn(task, n, limit)  # type: ignore[no-any-return,misc]

    return partial(run_on, loop, once)


def fanout_contenders(task_for: Callable[[str], Task], n: int, limit: int,
                      notes: list[str]) -> list[Contender]:
    plan = [
        ("osiiso", "asyncio", peers.osiiso_queue, True, "osiiso"),
        ("asyncio.gather + Semaphore", "asyncio", peers.asyncio_gather, False, None),
        (f"{limit} workers over one iterator", "asyncio", peers.asyncio_workers, False, None),
        ("anyio task group + CapacityLimiter", "asyncio", peers.anyio_task_group, False, "anyio"),
        ("osiiso", "uvloop", peers.osiiso_queue, True, "uvloop"),
        ("asyncio.gather + Semaphore", "uvloop", peers.asyncio_gather, False, "uvloop"),
        ("osiiso", "trio", peers.osiiso_queue, True, "trio"),
        ("trio nursery + CapacityLimiter", "trio", peers.trio_nursery, False, "trio"),
    ]
    out = []
    for name, loop, fn, ours, needs in plan:
        if needs and not installed(needs):
            notes.append(f"skipped {name} on {loop}: {needs} is not installed")
            continue
        out.append(Contender(name, _on(loop, fn, task_for(loop), n, limit), loop, ours))
    return out
