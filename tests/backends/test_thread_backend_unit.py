"""Unit tests of the thread backend, driven directly (no queue), on asyncio, uvloop and trio."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from osiiso._cancel import cancelled, check_cancelled
from osiiso._errors import TaskCancelledError
from osiiso.backends.base import Attempt, BackendConfig, forced_close_error
from osiiso.backends.thread import ThreadBackend

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]
WAIT = 10.0  # generous upper bound for any cross-thread hand-off


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Attempt:
    return Attempt(fn, args, kwargs, number=1, timeout=None)


@asynccontextmanager
async def open_backend(threads: int = 2, **config: Any) -> AsyncIterator[ThreadBackend]:
    backend = ThreadBackend(BackendConfig(workers=threads, threads=threads, processes=1, **config))
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose(force=True)


async def wait_for(event: threading.Event) -> None:
    """Wait for a thread-side event without blocking the loop."""
    deadline = time.monotonic() + WAIT
    while not event.is_set():
        assert time.monotonic() < deadline, "event was never set"
        await anyio.sleep(0.001)


_EARLIER: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _ignore_earlier_threads() -> None:
    """Threads abandoned by earlier tests may still be finishing: count only this test's."""
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("osiiso-thread-") and t not in _EARLIER]


def block_until_cancelled(started: threading.Event, saw_cancel: threading.Event,
                          release: threading.Event, outcome: list[str]) -> str:
    """A task that waits for its cooperative signal, reports it, then stays busy until released."""
    started.set()
    deadline = time.monotonic() + WAIT
    while not cancelled() and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        check_cancelled()
    except TaskCancelledError:
        outcome.append("check_cancelled raised")
    saw_cancel.set()
    release.wait(WAIT)
    return "late result"


async def test_value_round_trip() -> None:
    """A sync callable's return value comes back from run(), args and kwargs passed through."""
    async with open_backend() as backend:
        assert await backend.run(attempt(lambda a, b=0: (a, b), 1, b=2)) == (1, 2)


async def test_exception_round_trip_keeps_traceback() -> None:
    """The task's own exception is raised by run() with the task's frame in its traceback."""
    def boom() -> None:
        raise ValueError("bad input")

    async with open_backend() as backend:
        with pytest.raises(ValueError, match="bad input") as info:
            await backend.run(attempt(boom))
    assert any(entry.name == "boom" for entry in info.traceback)


async def test_check_rejects_a_non_callable() -> None:
    """check() refuses, at submit time, something the thread backend cannot call."""
    backend = ThreadBackend(BackendConfig(workers=1, threads=1, processes=1))
    backend.check(len)
    with pytest.raises(TypeError, match="callable"):
        backend.check(42)  # type: ignore[arg-type]


async def test_pool_is_persistent() -> None:
    """Many attempts reuse the same few pool threads, never more than ``threads`` of them."""
    async with open_backend(threads=3) as backend:
        idents: list[int] = []
        for _ in range(100):
            idents.append(await backend.run(attempt(threading.get_ident)))
        names = {await backend.run(attempt(lambda: threading.current_thread().name))}
        assert 1 <= len(set(idents)) <= 3
        assert all(name.startswith("osiiso-thread-") for name in names)
        assert backend.stats() == {"threads_live": 3, "threads_abandoned": 0, "threads_batched": 0}


async def test_initializer_runs_once_per_thread_with_thread_local_state() -> None:
    """The initializer runs once in each pool thread and its thread-local state reaches tasks."""
    local = threading.local()
    init_idents: list[int] = []

    def init(tag: str) -> None:
        init_idents.append(threading.get_ident())
        local.tag = f"{tag}-{threading.get_ident()}"

    def read() -> tuple[int, str]:
        return threading.get_ident(), local.tag

    async with open_backend(threads=2, initializer=init, initargs=("ready",)) as backend:
        for _ in range(20):
            ident, tag = await backend.run(attempt(read))
            assert tag == f"ready-{ident}"
        assert max(Counter(init_idents).values()) == 1
        assert len(init_idents) <= 2


async def test_initializer_failure_fails_tasks_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    """A failing initializer fails that thread's tasks with a chained error and logs it."""
    def init() -> None:
        raise OSError("no database")

    with caplog.at_level(logging.ERROR, logger="osiiso"):
        async with open_backend(threads=2, initializer=init) as backend:
            for _ in range(3):
                with pytest.raises(RuntimeError, match="initializer") as info:
                    await backend.run(attempt(lambda: "never"))
                assert isinstance(info.value.__cause__, OSError)
    assert any("initializer" in record.getMessage() for record in caplog.records)


async def test_cancel_abandons_attempt_and_keeps_capacity() -> None:
    """A cancelled attempt sees its signal, its thread is replaced and stats count it."""
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()
    outcome: list[str] = []
    async with open_backend(threads=2) as backend:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(_cancel_when_set, started, scope)
                await backend.run(attempt(block_until_cancelled, started, saw_cancel, release, outcome))
            assert scope.cancelled_caught
        await wait_for(saw_cancel)
        assert outcome == ["check_cancelled raised"]
        assert backend.stats() == {"threads_live": 2, "threads_abandoned": 1, "threads_batched": 0}

        barrier = threading.Barrier(2, timeout=WAIT)  # both must run at once, beside the blocked one
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(backend.run, attempt(barrier.wait))
        assert len(pool_threads()) == 3
        release.set()
    await _wait_gone()


async def _cancel_when_set(event: threading.Event, scope: anyio.CancelScope) -> None:
    await wait_for(event)
    scope.cancel()


async def test_timeout_abandons_attempt() -> None:
    """An attempt cut short by ``move_on_after`` is abandoned and its late result dropped."""
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()
    outcome: list[str] = []
    async with open_backend(threads=1) as backend:
        with anyio.move_on_after(0.05):
            await backend.run(attempt(block_until_cancelled, started, saw_cancel, release, outcome))
        await wait_for(saw_cancel)
        release.set()
        assert await backend.run(attempt(lambda: "next")) == "next"
        assert backend.stats() == {"threads_live": 1, "threads_abandoned": 1, "threads_batched": 0}
    await _wait_gone()


async def test_cancel_of_queued_attempt_never_runs_it() -> None:
    """Cancelling an attempt still waiting for a thread drops it and abandons no thread."""
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> None:
        started.set()
        release.wait(WAIT)

    async with open_backend(threads=1) as backend:
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.run, attempt(hold))
            await wait_for(started)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await backend.run(attempt(ran.append, "queued"))
            release.set()
        assert await backend.run(attempt(lambda: "after")) == "after"
        assert ran == []
        assert backend.stats() == {"threads_live": 1, "threads_abandoned": 0, "threads_batched": 0}


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_keyboardinterrupt_and_systemexit_fail_only_the_task(exc_type: type[BaseException]) -> None:
    """KeyboardInterrupt or SystemExit inside a task comes back as its exception; the pool lives on."""
    def interrupt() -> None:
        raise exc_type()

    async with open_backend(threads=1) as backend:
        ident = await backend.run(attempt(threading.get_ident))
        with pytest.raises(exc_type):
            await backend.run(attempt(interrupt))
        assert await backend.run(attempt(threading.get_ident)) == ident
        assert backend.stats()["threads_live"] == 1


async def test_coroutine_function_runs_on_a_private_loop_in_a_pool_thread() -> None:
    """A coroutine function runs to completion on its own event loop inside a pool thread."""
    async def work(x: int) -> tuple[int, str]:
        await asyncio.sleep(0)
        return x * 2, threading.current_thread().name

    async with open_backend() as backend:
        value, name = await backend.run(attempt(work, 21))
    assert value == 42 and name.startswith("osiiso-thread-")


async def test_aclose_leaves_no_pool_threads_and_can_restart() -> None:
    """After aclose no pool thread is left, and the backend starts again on demand."""
    backend = ThreadBackend(BackendConfig(workers=3, threads=3, processes=1))
    assert await backend.run(attempt(lambda: 1)) == 1
    assert len(pool_threads()) == 3
    await backend.aclose()
    assert pool_threads() == []
    assert backend.stats()["threads_live"] == 0
    assert await backend.run(attempt(lambda: 2)) == 2
    await backend.aclose()
    assert pool_threads() == []


async def test_aclose_never_waits_for_abandoned_thread() -> None:
    """aclose returns while an abandoned thread is still blocked; only that thread remains."""
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()
    backend = ThreadBackend(BackendConfig(workers=2, threads=2, processes=1))
    with anyio.move_on_after(0.05):
        await backend.run(attempt(block_until_cancelled, started, saw_cancel, release, []))
    await backend.aclose()
    assert len(pool_threads()) == 1  # the abandoned one, still inside its function
    release.set()
    await _wait_gone()


async def test_aclose_stops_waiting_for_an_attempt_abandoned_meanwhile() -> None:
    """A graceful aclose waits for a running attempt, but not once that attempt is abandoned."""
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()
    backend = ThreadBackend(BackendConfig(workers=1, threads=1, processes=1))
    closed = anyio.Event()

    async def close_then_flag() -> None:
        await backend.aclose()
        closed.set()

    scope = anyio.CancelScope()

    async def run_in_scope() -> None:
        with scope:
            await backend.run(attempt(block_until_cancelled, started, saw_cancel, release, []))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_in_scope)
        await wait_for(started)
        tg.start_soon(close_then_flag)
        while backend.stats()["threads_live"]:  # aclose has taken the pool and is joining it
            await anyio.sleep(0.001)
        assert not closed.is_set()  # it waits for the running attempt...
        scope.cancel()  # ...until that attempt is abandoned
        with anyio.fail_after(WAIT):
            await closed.wait()
    assert closed.is_set() and not release.is_set()
    release.set()
    await _wait_gone()


async def test_forced_aclose_fails_running_attempt() -> None:
    """aclose(force=True) abandons a running attempt, which fails with TaskCancelledError."""
    started, saw_cancel, release = threading.Event(), threading.Event(), threading.Event()
    backend = ThreadBackend(BackendConfig(workers=1, threads=1, processes=1))
    errors: list[BaseException] = []

    async def run_it() -> None:
        try:
            await backend.run(attempt(block_until_cancelled, started, saw_cancel, release, []))
        except TaskCancelledError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_it)
        await wait_for(started)
        await backend.aclose(force=True)
    assert len(errors) == 1
    assert str(errors[0]) == str(forced_close_error("thread"))
    await wait_for(saw_cancel)
    assert backend.stats() == {"threads_live": 0, "threads_abandoned": 1, "threads_batched": 0}
    release.set()
    await _wait_gone()


@pytest.mark.parametrize("force", [True, False], ids=["force", "graceful"])
async def test_aclose_never_waits_for_a_thread_stuck_in_its_initializer(force: bool) -> None:
    """aclose() returns while a pool thread is still in an initializer that never returns (SPEC §8)."""
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(WAIT * 3)

    backend = ThreadBackend(BackendConfig(workers=1, threads=1, processes=1, initializer=hang))
    await backend.start()
    await wait_for(entered)
    with anyio.move_on_after(0.05):  # the attempt waits for the stuck thread: give up on it, as a timeout does
        await backend.run(attempt(lambda: 1))
    try:
        with anyio.fail_after(WAIT):
            await backend.aclose(force=force)
        assert backend.stats() == {"threads_live": 0, "threads_abandoned": 1, "threads_batched": 0}
    finally:
        release.set()
    await _wait_gone()  # the thread leaves once its initializer returns


async def _wait_gone() -> None:
    """Wait until every pool thread (abandoned ones included) has exited."""
    deadline = time.monotonic() + WAIT
    while pool_threads():
        assert time.monotonic() < deadline, f"threads left: {pool_threads()}"
        await anyio.sleep(0.001)
