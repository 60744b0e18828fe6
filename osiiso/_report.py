"""What a `osiiso.RunSummary` says, as plain data: the figures its report prints, and its JSON.

`summary_dict` builds the one description of a run that the printed report (`osiiso._display`)
and `RunSummary.to_dict` / ``to_json`` share: counts per backend, retries, timeouts, time
spent waiting and running (from each result's `AttemptTiming`s), the slowest tasks, the
failures with their messages, and (for machines) every result. Everything in it is
JSON-safe: values and metadata that are not JSON scalars are rendered with ``repr``,
exceptions by their type name and message. The schema is in the results reference page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from ._errors import TaskTimeoutError
from ._result import AttemptTiming, TaskResult

__all__ = ("SCHEMA", "Summary", "summary_dict")

#: names the layout of `summary_dict`; bumped when a field changes meaning or goes away
SCHEMA = "osiiso.run-summary/1"
#: the longest rendered value kept in the JSON (longer ones are cut, ending with "…")
MAX_TEXT = 200


class Summary(Protocol):
    """What the report reads of a `osiiso.RunSummary` (which imports these modules to report itself)."""

    @property
    def results(self) -> tuple[TaskResult, ...]: ...
    @property
    def duration(self) -> float: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def total_submitted(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def cancelled(self) -> int: ...
    @property
    def timeouts(self) -> int: ...
    @property
    def restored(self) -> int: ...
    @property
    def ok(self) -> bool: ...


def _text(value: object) -> str:
    """``repr(value)``, cut at `MAX_TEXT`; never raises (a user's ``__repr__`` may)."""
    try:
        text = repr(value)
    except BaseException as exc:  # user code decides what __repr__ does
        return f"<{type(value).__name__} (its repr raised {type(exc).__name__})>"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def json_value(value: object) -> Any:
    """``value`` when it is a JSON scalar (str, int, bool, None, finite float), else its repr."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value
    if kind is float and math.isfinite(value):  # type: ignore[arg-type]
        return value
    return _text(value)


def _timing(timing: AttemptTiming) -> dict[str, Any]:
    return {"number": timing.number, "queued_at": timing.queued_at, "started_at": timing.started_at,
            "finished_at": timing.finished_at, "outcome": timing.outcome, "worker": timing.worker,
            "message": timing.message, "waited": timing.waited, "ran": timing.ran}


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    return {str(key): json_value(value) for key, value in metadata.items()}


def result_dict(result: TaskResult) -> dict[str, Any]:
    """One result, JSON-safe."""
    exc = result.exception
    return {
        "task_id": result.task_id, "name": result.name, "status": result.status.value,
        "value": json_value(result.value), "error_type": type(exc).__name__ if exc is not None else None,
        "message": result.message, "attempts": result.attempts, "backend": result.backend,
        "priority": result.priority, "group_id": result.group_id, "metadata": _metadata(result.metadata),
        "created_at": result.created_at, "started_at": result.started_at, "finished_at": result.finished_at,
        "duration": result.duration, "restored": result.restored,
        "timings": [_timing(t) for t in result.timings],
    }


def _retries(result: TaskResult) -> int:
    return max(0, result.attempts - 1)


_FIGURES = ("tasks", "attempts", "succeeded", "failed", "cancelled", "timeouts", "retries", "attempts_timed_out",
            "waiting", "running", "duration")


def tally(counts: dict[str, Any], result: TaskResult) -> None:
    """Add the figures of ``result``, which ran, to ``counts`` (keys `_FIGURES`, from `new_counts`)."""
    counts["tasks"] += 1
    counts["attempts"] += result.attempts
    status = result.status.value
    if status in ("succeeded", "failed", "cancelled"):
        counts[status] += 1
    counts["timeouts"] += isinstance(result.exception, TaskTimeoutError)
    counts["retries"] += _retries(result)
    for timing in result.timings:
        counts["attempts_timed_out"] += timing.outcome == "timeout"
        counts["waiting"] += timing.waited
        counts["running"] += timing.ran
    counts["duration"] += result.duration


def new_counts() -> dict[str, Any]:
    """Figures of no result yet."""
    return {key: 0.0 if key in ("waiting", "running", "duration") else 0 for key in _FIGURES}


def _counts(results: list[TaskResult], earlier: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The figures of a set of results that ran (restored ones left out by the caller), with those of
    the ``earlier`` ones the queue no longer holds (``keep_results``) added."""
    counts = new_counts() if earlier is None else dict(earlier)
    for result in results:
        tally(counts, result)
    return counts


def _brief(result: TaskResult) -> dict[str, Any]:
    exc = result.exception
    return {"task_id": result.task_id, "name": result.name, "backend": result.backend,
            "status": result.status.value, "attempts": result.attempts, "duration": result.duration,
            "error_type": type(exc).__name__ if exc is not None else None, "message": result.message}


def summary_dict(summary: Summary, *, limit: int = 20, results: bool = True) -> dict[str, Any]:
    """The run as JSON-safe data: totals, ``backends``, ``slowest``, ``failures`` (at most ``limit``
    each) and, with ``results``, every result."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int (how many slowest tasks and failures to list), got {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0 (how many slowest tasks and failures to list), got {limit}")
    if not isinstance(results, bool):
        raise TypeError(f"results must be True or False, got {results!r}")
    ran = [r for r in summary.results if not r.restored]
    # the figures of results a queue with keep_results no longer holds, per backend
    earlier: Mapping[str, Mapping[str, Any]] = getattr(summary, "dropped_backends", None) or {}
    per_backend: dict[str, list[TaskResult]] = {name: [] for name in earlier}
    for result in ran:
        per_backend.setdefault(result.backend, []).append(result)
    problems = [r for r in ran if not r.ok]
    slowest = sorted((r for r in ran if r.started_at is not None), key=lambda r: r.duration, reverse=True)
    totals = new_counts()
    for figures in earlier.values():
        for key in _FIGURES:
            totals[key] += figures[key]
    totals = _counts(ran, totals)
    listed = problems[:limit]
    data: dict[str, Any] = {
        "schema": SCHEMA, "ok": summary.ok, "duration": summary.duration, "timed_out": summary.timed_out,
        "total_submitted": summary.total_submitted, "succeeded": summary.succeeded, "failed": summary.failed,
        "cancelled": summary.cancelled, "timeouts": summary.timeouts, "restored": summary.restored,
        "retries": totals["retries"], "attempts_timed_out": totals["attempts_timed_out"],
        "waiting": totals["waiting"], "running": totals["running"],
        "backends": {name: _counts(group, earlier.get(name)) for name, group in sorted(per_backend.items())},
        "slowest": [_brief(r) for r in slowest[:limit]],
        "failures": [_brief(r) for r in listed],
        # every task that did not succeed, those no longer held included, beyond the ones listed
        "more_failures": summary.failed + summary.cancelled - len(listed),
    }
    if results:
        data["results"] = [result_dict(r) for r in summary.results]
    return data
