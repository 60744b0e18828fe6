"""The event stream on the "osiiso" logger: worker events, and nothing built below the level."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from typing import Any

import pytest

import osiiso
import osiiso._engine.events as engine_events
import osiiso._engine.records as records
import osiiso._engine.worker as worker
from osiiso import AsyncQueue, WorkerCrashedError

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _of(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


async def test_below_their_level_events_build_nothing(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """At WARNING, starts, retries, cancels and finishes never build a record, its extras or its text."""
    caplog.set_level(logging.WARNING, logger="osiiso")
    calls: Counter[str] = Counter()

    def counting(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    for module, name in [(engine_events, "emit"), (engine_events, "_who"), (engine_events, "describe"),
                         (worker, "started"), (records, "finished")]:
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    monkeypatch.setattr(logging.Logger, "makeRecord", counting("makeRecord", logging.Logger.makeRecord))
    tries = 0

    async def flaky() -> int:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ValueError("not yet")
        return tries

    async def echo(x: int) -> int:
        return x

    q = AsyncQueue()
    cancelled = q.submit(echo, 1)
    cancelled.cancel("not needed")
    q.submit(flaky, retries=2)
    q.map(echo, range(50))
    summary = await q.run()
    assert summary.succeeded == 51 and cancelled.cancelled()
    assert calls == Counter()
    await q.shutdown()


async def test_a_failing_log_filter_never_fails_a_task(caplog: pytest.LogCaptureFixture,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """A filter that raises on osiiso's records leaves the task's outcome alone (the error goes to stderr)."""
    caplog.set_level(logging.DEBUG, logger="osiiso")

    def refuse(record: logging.LogRecord) -> bool:
        raise RuntimeError("this filter is broken")

    logger = logging.getLogger("osiiso")
    broken = logging.Handler()  # a handler's filter sees the records of "osiiso" and its children
    broken.addFilter(refuse)
    logger.addHandler(broken)
    try:
        async def echo(x: int) -> int:
            return x

        q = AsyncQueue()
        handle = q.submit(echo, 7)
        await q.run(strict=True)
        assert handle.value() == 7
        await q.shutdown()
    finally:
        logger.removeHandler(broken)
    assert "this filter is broken" in capfd.readouterr().err


@pytest.mark.parametrize(("fn", "args", "exitcode", "signal"), [(os._exit, (3,), 3, None),
                                                                (os.abort, (), -6, "SIGABRT")],
                         ids=["exit", "abort"])
async def test_a_worker_crash_is_one_warning_naming_the_task_and_the_process(
        fn: Any, args: tuple[Any, ...], exitcode: int, signal: str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    """A process worker dying mid-task logs one "crash" WARNING with the task, the pid and how it died."""
    caplog.set_level(logging.INFO, logger="osiiso")
    q = AsyncQueue(processes=1)
    handle = q.submit(fn, *args, backend="process")
    await q.run()
    error = handle.exception()
    assert isinstance(error, WorkerCrashedError)
    (crash,) = _of(caplog, "crash")
    assert crash.levelno == logging.WARNING
    assert (crash.task_id, crash.backend, crash.attempt, crash.worker) == (  # type: ignore[attr-defined]
        handle.task_id, "process", 1, "process/0")
    assert (crash.pid, crash.exitcode, crash.signal) == (error.pid, exitcode, signal)  # type: ignore[attr-defined]
    assert str(error.pid) in crash.getMessage()
    assert [t.outcome for t in handle.result().timings] == ["crashed"]
    await q.shutdown()


async def test_a_recycled_worker_is_one_info_event(caplog: pytest.LogCaptureFixture) -> None:
    """A worker retiring at max_tasks_per_child logs a "recycle" INFO with its pid and task count."""
    caplog.set_level(logging.INFO, logger="osiiso")
    q = AsyncQueue(processes=1, max_tasks_per_child=2)
    handles = [q.submit(os.getpid, backend="process") for _ in range(4)]
    await q.run(strict=True)
    pids = [h.value() for h in handles]
    # only this queue's workers: a pool of an earlier test may still be retiring one in this process
    recycles = [r for r in _of(caplog, "recycle") if r.pid in pids]  # type: ignore[attr-defined]
    assert recycles and all(r.levelno == logging.INFO and r.tasks == 2 for r in recycles)  # type: ignore[attr-defined]
    assert len(set(pids)) == 2 and all(pids.count(r.pid) == 2 for r in recycles)  # type: ignore[attr-defined]
    assert not _of(caplog, "crash")
    await q.shutdown()


async def test_an_abandoned_thread_is_a_warning_naming_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    """A thread task past its timeout logs "timeout" and "abandon" WARNINGs; the abandon names the thread."""
    caplog.set_level(logging.INFO, logger="osiiso")
    release = threading.Event()
    q = AsyncQueue(threads=1)
    try:
        handle = q.submit(release.wait, 20, timeout=0.1, backend="thread")
        await q.run()
    finally:
        release.set()
    (abandon,) = _of(caplog, "abandon")
    (timeout,) = _of(caplog, "timeout")
    assert abandon.levelno == timeout.levelno == logging.WARNING
    assert abandon.task_id == timeout.task_id == handle.task_id  # type: ignore[attr-defined]
    assert abandon.worker == handle.result().timings[0].worker  # type: ignore[attr-defined]
    assert abandon.worker.startswith("thread/")  # type: ignore[attr-defined]
    await q.shutdown()


class _RaisingHandler(logging.Handler):
    """A handler of the program's that fails on every record."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("handler boom")


def test_a_raising_handler_never_changes_an_outcome_or_stops_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    """With a handler on "osiiso" that raises, hooks, a done callback and a progress callback that fail
    are still only reported (the handler's traceback on stderr): every task succeeds, every run returns."""
    handler = _RaisingHandler()
    logging.getLogger("osiiso").addHandler(handler)
    try:
        for hooks in ({"on_start": lambda handle: 1 / 0}, {"on_complete": lambda result: 1 / 0},
                      {"on_retry": lambda handle, exc: 1 / 0}):
            with osiiso.Queue(**hooks) as q:  # type: ignore[arg-type]
                handles = [q.submit(abs, -i) for i in range(4)]
                q.run(timeout=30)
            assert [h.result().status.value for h in handles] == ["succeeded"] * 4, hooks

        async def main() -> list[str]:
            q = osiiso.AsyncQueue()
            handles = [q.submit(abs, -i, backend="thread") for i in range(4)]
            handles[0].add_done_callback(lambda handle: 1 / 0)
            await q.run(timeout=30)
            handles.append(q.submit(abs, 1, backend="thread"))
            await q.run(timeout=30, progress=lambda snapshot: 1 / 0)
            await q.shutdown()
            return [h.result().status.value for h in handles]

        assert osiiso.run(main) == ["succeeded"] * 5
    finally:
        logging.getLogger("osiiso").removeHandler(handler)
    assert "handler boom" in capsys.readouterr().err
