"""RunSummary's report: display() with and without rich, and to_dict()/to_json() for machines."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import anyio
import pytest

from osiiso import AsyncQueue, RunSummary

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


class Opaque:
    """A value JSON cannot hold: the report shows its repr."""

    def __repr__(self) -> str:
        return "<Opaque thing>"


async def _mixed_run() -> RunSummary:
    tries = 0

    async def flaky() -> int:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ConnectionError(f"hung up {tries}")
        return tries

    async def opaque() -> Opaque:
        return Opaque()

    async def broken() -> None:
        raise ValueError("bad input 42")

    def slow() -> str:
        import time

        time.sleep(0.05)
        return "slept"

    q = AsyncQueue()
    q.submit(flaky, retries=2, name="flaky")
    q.submit(opaque, name="opaque", metadata={"row": 1, "obj": Opaque()})
    q.submit(broken, name="broken")
    q.submit(anyio.sleep, 20, timeout=0.05, name="stuck")
    q.submit(slow, name="slow", backend="thread")
    summary = await q.run()
    await q.shutdown()
    return summary


async def test_to_json_round_trips_and_renders_what_json_cannot_hold() -> None:
    """to_json() is valid JSON equal to to_dict(); objects and exceptions come out as strings."""
    summary = await _mixed_run()
    data = summary.to_dict()
    assert json.loads(summary.to_json()) == data
    assert data["schema"] == "osiiso.run-summary/1"
    assert (data["total_submitted"], data["succeeded"], data["failed"], data["timeouts"]) == (5, 3, 2, 1)
    assert data["retries"] == 2 and data["attempts_timed_out"] == 1
    assert set(data["backends"]) == {"async", "thread"}
    assert data["backends"]["async"]["tasks"] == 4 and data["backends"]["async"]["attempts"] == 6
    assert data["running"] > 0 and data["waiting"] >= 0
    results = {r["name"]: r for r in data["results"]}
    assert results["flaky"]["value"] == 3
    assert [t["outcome"] for t in results["flaky"]["timings"]] == ["error", "error", "ok"]
    assert results["opaque"]["value"] == "<Opaque thing>"
    assert results["opaque"]["metadata"] == {"row": 1, "obj": "<Opaque thing>"}
    assert results["broken"]["error_type"] == "ValueError" and "bad input 42" in results["broken"]["message"]
    assert results["stuck"]["error_type"] == "TaskTimeoutError"
    assert {f["name"] for f in data["failures"]} == {"broken", "stuck"}
    durations = [s["duration"] for s in data["slowest"]]
    assert durations == sorted(durations, reverse=True)
    assert "results" not in summary.to_dict(results=False)


def _printed(summary: RunSummary) -> str:
    out = io.StringIO()
    summary.display(file=out)
    return out.getvalue()


async def test_display_without_rich_prints_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rich, display() prints per-backend figures, the slowest tasks and the failures in plain text."""
    summary = await _mixed_run()
    monkeypatch.setitem(sys.modules, "rich.console", None)  # import rich.console now raises ImportError
    text = _printed(summary)
    assert text.startswith("osiiso run: 5 tasks")
    assert "retries 2" in text and "attempts timed out 1" in text and "waiting" in text and "running" in text
    lines = text.splitlines()
    assert any(line.strip().startswith("async") and "retries 2" in line for line in lines)
    assert "  slowest:" in lines and "  did not succeed:" in lines
    assert any("broken" in line and "bad input 42" in line for line in lines)


async def test_display_with_rich_prints_tables() -> None:
    """With rich, display() prints the counts, the attempts' time, the slowest tasks and the failures as tables."""
    pytest.importorskip("rich")
    summary = await _mixed_run()
    text = _printed(summary)
    for title in ("osiiso run", "time of the attempts", "slowest tasks", "tasks that did not succeed"):
        assert title in text
    assert "retries" in text and "bad input 42" in text and "thread" in text


def test_an_empty_summary_reports_without_figures() -> None:
    """A summary of no tasks still reports, as text and as JSON."""
    summary = RunSummary((), 0.0)
    data: dict[str, Any] = json.loads(summary.to_json())
    assert data["total_submitted"] == 0 and data["backends"] == {} and data["results"] == []
    assert "osiiso run: 0 tasks" in _printed(summary) or "osiiso run — 0 tasks" in _printed(summary)


def _half_fail(i: int) -> int:
    if i % 2:
        raise ValueError(f"odd {i}")
    return i


def test_with_keep_results_the_report_covers_every_task_it_ran() -> None:
    """A queue keeping 3 results: retries, attempts, per-backend figures and "more failures" count the
    100 tasks, not the 3 kept; the failures listed are of the kept ones."""
    import osiiso

    q = osiiso.Queue(keep_results=3)  # not started before run(): the run's summary holds every task
    q.map(_half_fail, range(100), retries=1)
    summary = q.run()
    q.shutdown()
    data = summary.to_dict(results=False)
    assert (data["total_submitted"], data["failed"], data["retries"]) == (100, 50, 50)
    thread = data["backends"]["thread"]
    assert (thread["tasks"], thread["failed"], thread["succeeded"], thread["attempts"]) == (100, 50, 50, 150)
    kept_failures = sum(1 for r in summary.results if not r.ok)  # the 3 kept: the last 3 to end
    assert len(data["failures"]) == kept_failures and data["more_failures"] == 50 - kept_failures
    assert data["running"] >= thread["running"] > 0
    assert summary.dropped == 97 and summary.dropped_backends["thread"]["tasks"] == 97
    out = io.StringIO()
    summary.display(file=out)
    assert f"… and {50 - kept_failures} more" in out.getvalue()


def _markup_name_fails(x: int) -> None:
    raise KeyError("[bold]")


def test_names_and_messages_print_as_they_are_not_as_rich_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task named ``load[/]`` failing with ``KeyError('[bold]')``: display() prints both as written
    (rich would read them as markup: a MarkupError, or the text dropped)."""
    import osiiso

    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no cell wraps

    q = osiiso.Queue()  # not started before run(): the run's summary holds both tasks
    q.submit(_markup_name_fails, 1, name="load[/]")
    q.submit(_half_fail, 1, name="[red]styled[/red]")
    summary = q.run()
    q.shutdown()
    out = io.StringIO()
    summary.display(file=out)
    text = out.getvalue()
    assert "load[/]" in text and "KeyError: '[bold]'" in text and "[red]styled[/red]" in text


@pytest.mark.parametrize(("limit", "error"), [(-1, ValueError), ("3", TypeError), (2.5, TypeError),
                                              (None, TypeError), (True, TypeError)])
def test_a_bad_limit_is_a_clear_error(limit: object, error: type[Exception]) -> None:
    """display(), to_dict() and to_json() refuse a limit that is not an int >= 0, naming it."""
    summary = RunSummary((), 0.0)
    for call in (summary.to_dict, summary.to_json, summary.display):
        with pytest.raises(error, match="limit must be"):
            call(limit=limit)  # type: ignore[operator]
