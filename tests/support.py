"""What the tests share: waiting for a condition, the event loops, and the chaos scale.

Import it as ``from support import eventually`` (``tests/conftest.py`` puts ``tests/`` on
``sys.path``, as for ``procutil``).

* `eventually` / `aeventually`: wait on state, never ``sleep`` then assert. They poll a
  predicate (1 ms at first, backing off to 50 ms) and fail with ``AssertionError`` once a
  generous bound has passed; the bound only ever matters to a broken build.
* `LOOPS`: every event loop an async test runs on (asyncio, uvloop, trio); `loop_params`
  turns them into pytest params, `LOOP_NAMES` are the names ``osiiso.run`` takes.
* `scale_of`: how big the chaos and load runs are (``--chaos-scale`` or
  ``$OSIISO_CHAOS_SCALE``: ``short`` in CI, ``full`` on request).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

# -- waiting for a condition ------------------------------------------------------------------
WAIT = 20.0  # seconds: the default bound (a working queue needs milliseconds)
FIRST_POLL, LAST_POLL = 0.001, 0.05  # seconds between checks: short at first, then backing off

def _pauses(predicate: Callable[[], object], what: str | Callable[[], str], timeout: float) -> Iterator[float]:
    """The pauses between checks of ``predicate`` until it holds; AssertionError once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL
    while not predicate():
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {described}")
        yield pause
        pause = min(pause * 2, LAST_POLL)


def eventually(predicate: Callable[[], object], what: str | Callable[[], str], timeout: float = WAIT) -> None:
    """Return once ``predicate()`` is true; after ``timeout`` seconds fail, naming ``what`` was awaited.

    For sync tests and plain threads (it blocks while it waits; async tests use `aeventually`).
    ``what`` completes "waiting for …"; a function there is called on failure, to describe the
    state at that moment (which processes are left, say).
    """
    for pause in _pauses(predicate, what, timeout):
        time.sleep(pause)


async def aeventually(predicate: Callable[[], object], what: str | Callable[[], str],
                      timeout: float = WAIT) -> None:
    """`eventually` for async tests: the event loop runs on between the checks."""
    for pause in _pauses(predicate, what, timeout):
        await anyio.sleep(pause)


# -- the event loops --------------------------------------------------------------------------
Loop = tuple[str, dict[str, Any]]  # (anyio backend, backend options), as anyio_backend gives it
ASYNCIO: Loop = ("asyncio", {"use_uvloop": False})
UVLOOP: Loop = ("asyncio", {"use_uvloop": True})
TRIO: Loop = ("trio", {})
#: Every event loop an async test runs on.
LOOPS: list[Loop] = [ASYNCIO, UVLOOP, TRIO]
#: The loops by name, as ``osiiso.run(backend=...)`` takes them.
LOOP_NAMES: list[str] = sorted({backend for backend, _ in LOOPS})

_NO_UVLOOP_ON_WINDOWS = pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")


def loop_params(*loops: Loop) -> list[Any]:
    """``loops`` (all of `LOOPS` if none is named) as pytest params with readable ids."""
    return [pytest.param(loop, id="uvloop" if loop[1].get("use_uvloop") else loop[0],
                         marks=_NO_UVLOOP_ON_WINDOWS if loop[1].get("use_uvloop") else ())
            for loop in loops or LOOPS]


# -- the chaos scale --------------------------------------------------------------------------
SCALES = ("short", "full")


def scale_of(config: pytest.Config) -> str:
    """The size of the chaos and load runs: ``--chaos-scale``, else ``$OSIISO_CHAOS_SCALE``, else short.

    ``OSIISO_CHAOS_SCALE=full`` selects the long runs from any command line
    (``OSIISO_CHAOS_SCALE=full pytest -m chaos``).
    """
    try:
        scale = config.getoption("--chaos-scale")
    except ValueError:  # the option is not registered: tests/conftest.py was not loaded first
        scale = None
    if scale in (None, "short"):
        scale = os.environ.get("OSIISO_CHAOS_SCALE", "short")
    if scale not in SCALES:
        raise pytest.UsageError(f"OSIISO_CHAOS_SCALE must be 'short' or 'full', got {scale!r}")
    return str(scale)


# -- the engine's two paths for thread and process tasks ----------------------------------------
def queue_on(path: str, **kwargs: Any) -> Any:
    """An ``AsyncQueue`` whose thread and process tasks take ``path``: direct attempts for
    ``"direct"``, a coroutine per task for ``"hooks"`` (it gets an ``on_complete`` hook)."""
    from osiiso import AsyncQueue

    if path == "hooks":
        kwargs.setdefault("on_complete", lambda result: None)
    return AsyncQueue(**kwargs)


# -- how many tasks execute at once (the workers cap across backends) ----------------------------
def stamp(i: int) -> tuple[float, float]:
    """About 0.2 ms of work; when it began and ended."""
    start = time.time()
    end = time.perf_counter() + 0.0002
    while time.perf_counter() < end:
        pass
    return start, time.time()


async def a_stamp(i: int) -> tuple[float, float]:
    start = time.time()
    await anyio.sleep(0.0005)
    return start, time.time()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of ``spans`` that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def most_at_once_mixed(q: Any, backend: str) -> int:
    """Run 400 `stamp` tasks on ``backend`` mixed with 100 `a_stamp` ones on queue ``q``; the most that
    executed at once."""
    handles = []
    for i in range(400):
        handles.append(q.submit(stamp, i, backend=backend))
        if i % 4 == 0:
            handles.append(q.submit(a_stamp, i))
    await q.run(strict=True)
    return most_at_once([h.value() for h in handles])


def announced(q: Any, handle: Any) -> bool:
    """Whether the client has the start announcement of ``handle``'s attempt: a worker killed before
    its announcement left the worker runs that attempt again (the cluster guide), so a test that
    kills a worker to fail a task waits for it."""
    link = q._engine.lanes["dask"].backend._link  # type: ignore[attr-defined]
    return link is not None and any(job.where is not None and job.attempt._task is handle
                                    for job in list(link._jobs.values()))
