"""Conformance: the engine's events reach the "osiiso" logger alike on every backend and loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from osiiso import AsyncQueue

from .kit import Kit, warm_worker

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _events(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) and getattr(r, "task_id", None) == task_id]


def _extras(record: logging.LogRecord) -> tuple[Any, ...]:
    return (record.event, record.levelno, record.attempt)  # type: ignore[attr-defined]


async def test_start_retry_and_finish_events_carry_the_task(kit: Kit, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A task that fails twice then succeeds logs start, retry, start, retry, start, finish with its extras."""
    caplog.set_level(logging.DEBUG, logger="osiiso")
    q = AsyncQueue()
    handle = q.submit(kit.flaky, str(tmp_path / "count"), 2, retries=2, retry_delay=0.01, name="flaky one",
                      **kit.opts)
    await q.run(strict=True)
    records = _events(caplog, handle.task_id)
    D, INFO = logging.DEBUG, logging.INFO
    assert [_extras(r) for r in records] == [
        ("start", D, 1), ("retry", INFO, 1), ("start", D, 2), ("retry", INFO, 2), ("start", D, 3), ("finish", D, 3)]
    for record in records:
        assert (record.task_name, record.backend) == ("flaky one", kit.backend)  # type: ignore[attr-defined]
    retry = records[1]
    assert retry.delay == pytest.approx(0.01) and "Boom" in retry.cause  # type: ignore[attr-defined]
    assert "attempt 1 fails" in retry.getMessage() and "retrying in 0.01s" in retry.getMessage()
    assert records[-1].status == "succeeded"  # type: ignore[attr-defined]
    await q.shutdown()


async def test_a_timeout_is_a_warning_with_its_limit(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """An attempt past its timeout logs one WARNING "timeout" event naming the limit, then the failed finish."""
    caplog.set_level(logging.DEBUG, logger="osiiso")
    q = AsyncQueue(processes=1)
    await warm_worker(q, kit)
    handle = q.submit(kit.slow, 20, timeout=0.2, **kit.opts)
    await q.run()
    records = _events(caplog, handle.task_id)
    events = [r.event for r in records]  # type: ignore[attr-defined]
    assert events[0] == "start" and events[-1] == "finish" and events.count("timeout") == 1
    timeout = next(r for r in records if r.event == "timeout")  # type: ignore[attr-defined]
    assert timeout.levelno == logging.WARNING and timeout.timeout == 0.2  # type: ignore[attr-defined]
    assert "timed out after 0.2s" in timeout.getMessage()
    assert records[-1].status == "failed"  # type: ignore[attr-defined]
    await q.shutdown()


async def test_a_cancel_is_one_debug_event_then_the_finish(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """Cancelling a queued task logs a "cancel" event with its reason, then its cancelled finish."""
    caplog.set_level(logging.DEBUG, logger="osiiso")
    q = AsyncQueue()
    handle = q.submit(kit.echo, 1, **kit.opts)
    handle.cancel("not needed")
    await q.run()
    records = _events(caplog, handle.task_id)
    assert [r.event for r in records] == ["cancel", "finish"]  # type: ignore[attr-defined]
    assert records[0].levelno == logging.DEBUG and records[0].reason == "cancelled: not needed"  # type: ignore[attr-defined]
    assert records[1].status == "cancelled"  # type: ignore[attr-defined]
    await q.shutdown()
