"""Task functions for the conformance suite, one flavour per backend.

The conformance tests never name a backend: they ask the ``kit`` fixture for
functions, and the kit hands out coroutine functions for the async backend and
plain functions for the thread and process backends. State that must survive
across attempts or processes (a flaky task's attempt count) lives in files.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Boom(Exception):
    """The exception the kit's failing tasks raise."""


class Unprintable(Exception):
    """An exception whose ``__str__`` and ``__repr__`` raise (user code may do anything)."""

    def __str__(self) -> str:
        raise RuntimeError("this exception refuses to be shown")

    def __repr__(self) -> str:
        raise RuntimeError("this exception refuses to be shown")


def _bump(path: str) -> int:
    p = Path(path)
    count = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(count))
    return count


# -- sync flavour (thread and process backends) ---------------------------------------------
def s_echo(x: Any) -> Any:
    return x


def s_square(x: int) -> int:
    return x * x


def s_fail(message: str) -> None:
    raise Boom(message)


def s_slow(seconds: float, value: Any = None) -> Any:
    import osiiso

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if osiiso.cancelled():  # an abandoned thread attempt stops early
            return None
        time.sleep(0.005)
    return value


def s_flaky(path: str, failures: int) -> int:
    count = _bump(path)
    if count <= failures:
        raise Boom(f"attempt {count} fails")
    return count


def s_record(path: str, item: Any) -> Any:
    with open(path, "a") as f:
        f.write(f"{item}\n")
    return item


def s_add(a: int, b: int = 0) -> int:
    return a + b


def s_unprintable() -> None:
    raise Unprintable("hidden")


async def _twice(x: int) -> int:
    return 2 * x


def s_returns_coroutine(x: int) -> Any:
    """A plain function that returns a coroutine (as ``lambda: fetch(21)`` does)."""
    return _twice(x)


# -- async flavour ----------------------------------------------------------------------------
async def a_echo(x: Any) -> Any:
    return x


async def a_square(x: int) -> int:
    return x * x


async def a_fail(message: str) -> None:
    raise Boom(message)


async def a_slow(seconds: float, value: Any = None) -> Any:
    import anyio

    await anyio.sleep(seconds)
    return value


async def a_flaky(path: str, failures: int) -> int:
    return s_flaky(path, failures)


async def a_record(path: str, item: Any) -> Any:
    return s_record(path, item)


async def a_add(a: int, b: int = 0) -> int:
    return a + b


async def a_unprintable() -> None:
    raise Unprintable("hidden")


@dataclass
class Kit:
    """The functions a conformance test submits, and the backend option that runs them."""

    backend: str
    echo: Callable[..., Any]
    square: Callable[..., Any]
    fail: Callable[..., Any]
    slow: Callable[..., Any]
    flaky: Callable[..., Any]
    record: Callable[..., Any]
    add: Callable[..., Any]
    unprintable: Callable[..., Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def opts(self) -> dict[str, Any]:
        """Options that route a task to this kit's backend."""
        return {"backend": self.backend}


async def warm_worker(queue: Any, kit: Kit) -> None:
    """Run one task on the kit's backend, so that a task submitted next finds a started worker.

    A process task's timeout also counts while its worker starts, and an attempt that times out
    then never began (no ``start`` event, no ``started_at``); a test about an attempt that began
    and ran past its timeout starts the worker first. The queue needs ``processes=1``.
    """
    queue.submit(kit.echo, 1, **kit.opts)
    await queue.run(strict=True)


def make_kit(backend: str) -> Kit:
    if backend == "async":
        return Kit(backend, a_echo, a_square, a_fail, a_slow, a_flaky, a_record, a_add, a_unprintable)
    return Kit(backend, s_echo, s_square, s_fail, s_slow, s_flaky, s_record, s_add, s_unprintable)


__all__ = ["Boom", "Kit", "Unprintable", "asyncio", "make_kit", "s_returns_coroutine", "warm_worker"]


def s_interrupt() -> None:
    raise KeyboardInterrupt


def s_raise_cancelled() -> None:
    """A task that raises a cancellation nobody asked it for (a future it waited on was cancelled)."""
    raise asyncio.CancelledError("a future this task awaited was cancelled")


async def a_raise_cancelled() -> None:
    raise asyncio.CancelledError("a future this task awaited was cancelled")
