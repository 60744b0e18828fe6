"""``RunSummary.timeline(path)``: the task-stream page, one self-contained HTML file.

Every attempt (`osiiso.AttemptTiming`) becomes a bar on its worker's row, rows grouped by
backend. Attempts that overlap on one worker name (coroutines all run on ``"async"``) are
packed onto numbered sub-rows, so bars never hide each other. A result without timings
(restored, or from an engine that did not record them) gets one bar from its start to its
end. The data goes into the page as compact columns of JSON (strings deduplicated) inside a
``<script type="application/json">`` element, with ``<``, ``>`` and ``&`` escaped so no task
name or message can close it; the page's own script (`osiiso._timeline_page`) draws it on a
canvas and only ever puts user text into the page through ``textContent``.
"""

from __future__ import annotations

import heapq
import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from ._errors import TaskTimeoutError
from ._result import AttemptTiming, TaskResult, TaskStatus
from ._timeline_page import OUTCOMES, PAGE

__all__ = ("timeline_data", "write_timeline")

_STATUS_OUTCOME = {TaskStatus.SUCCEEDED: "ok", TaskStatus.FAILED: "error", TaskStatus.CANCELLED: "cancelled"}
_BACKEND_ORDER = {"async": 0, "thread": 1, "process": 2, "dask": 3}


class _Bar(NamedTuple):
    backend: str
    worker: str
    start: float
    end: float
    queued: float
    outcome: str
    result: TaskResult
    number: int
    message: str


def _attempts(result: TaskResult) -> Iterable[_Bar]:
    backend = result.backend or "?"
    timings: tuple[AttemptTiming, ...] = result.timings
    if timings:
        for t in timings:
            start = t.started_at if t.started_at is not None else t.finished_at
            yield _Bar(backend, t.worker or backend, start, t.finished_at, t.queued_at, t.outcome, result,
                       t.number, t.message or result.message)
        return
    if result.restored or result.attempts == 0:
        return  # restored from a checkpoint, or never ran (cancelled while waiting, a dependency failed)
    start = result.started_at if result.started_at is not None else result.finished_at
    outcome = "timeout" if isinstance(result.exception, TaskTimeoutError) else _STATUS_OUTCOME[result.status]
    yield _Bar(backend, backend, start, result.finished_at, result.created_at or start, outcome, result,
               max(result.attempts, 1), result.message)


#: seconds two bars of one sub-row may overlap: a worker process's next attempt may be seen to
#: start a few microseconds before the parent recorded the end of the previous one
_SKEW = 0.001


def _pack(bars: list[_Bar]) -> list[int]:
    """A sub-row for each bar of one worker (sorted by start) so that bars on a sub-row never overlap."""
    free: list[tuple[float, int]] = []  # (end of its last bar, sub-row), the soonest free first
    rows = 0
    placed = []
    for bar in bars:
        if free and free[0][0] <= bar.start + _SKEW:
            _, row = heapq.heappop(free)
        else:
            row, rows = rows, rows + 1
        placed.append(row)
        heapq.heappush(free, (bar.end, row))
    return placed


class _Strings:
    """A table of distinct strings: each column holds an index into it."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.items)
            self.items.append(text)
        return index


def timeline_data(results: Iterable[TaskResult], title: str = "osiiso run") -> dict[str, object]:
    """The page's data: rows (backend, label), one column per bar field (times in µs from the first
    start), and ``unran``, the tasks that never started an attempt (they have no bar)."""
    workers: dict[tuple[str, str], list[_Bar]] = {}
    unran = 0  # tasks that never ran an attempt: no bar, a count in the page's header
    for result in results:
        unran += result.attempts == 0 and not result.restored
        for bar in _attempts(result):
            workers.setdefault((bar.backend, bar.worker), []).append(bar)
    keys = sorted(workers, key=lambda k: (_BACKEND_ORDER.get(k[0], 9), k[0], _natural(k[1])))
    origin = min((b.start for bars in workers.values() for b in bars), default=0.0)
    strings = _Strings()
    rows: list[list[object]] = []
    names = ("row", "start", "end", "queued", "outcome", "task", "attempt", "attempts", "name", "message")
    columns: dict[str, list[int]] = {name: [] for name in names}
    row_of, start_of, end_of, queued_of, outcome_of, task_of, attempt_of, attempts_of, name_of, message_of = (
        columns[name].append for name in names)
    codes = {outcome: code for code, outcome in enumerate(OUTCOMES)}
    for key in keys:
        bars = sorted(workers[key], key=lambda b: (b.start, b.end))
        placed = _pack(bars)
        first_row = len(rows)
        for sub in range(max(placed) + 1):
            rows.append([key[0], key[1] if sub == 0 else f"{key[1]} #{sub + 1}"])
        for bar, sub in zip(bars, placed, strict=True):
            start, result = bar.start, bar.result
            row_of(first_row + sub)
            start_of(round((start - origin) * 1e6))
            end_of(round((max(bar.end, start) - origin) * 1e6))
            queued_of(round((min(bar.queued, start) - origin) * 1e6))
            outcome_of(codes.get(bar.outcome, 1))  # an outcome this page does not know is drawn as an error
            task_of(strings(result.task_id))
            attempt_of(bar.number)
            attempts_of(max(result.attempts, bar.number))
            name_of(strings(result.name))
            message_of(strings(bar.message))
    return {"title": title, "outcomes": list(OUTCOMES), "rows": rows, "strings": strings.items,
            "bars": columns, "unran": unran}


def _natural(label: str) -> tuple[object, ...]:
    """``thread/10`` after ``thread/9``: digits compare as numbers."""
    head, _, tail = label.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (label, -1)


def _script_safe(text: str) -> str:
    """JSON that cannot end the ``<script>`` element holding it, whatever the task names say."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_timeline(results: Iterable[TaskResult], path: str | os.PathLike[str], *,
                   title: str = "osiiso run") -> Path:
    """Write the task-stream page of ``results`` to ``path`` (one HTML file, no network); return its path."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {title!r}")
    target = Path(path)
    data = json.dumps(timeline_data(results, title), separators=(",", ":"), ensure_ascii=False)
    # a lone surrogate (os.fsdecode of a file name) cannot be UTF-8, and as a JSON escape it crashed
    # a headless Chromium dumping the page: it is shown as U+FFFD, the replacement character
    data = _SURROGATE.sub("\ufffd", data)
    fill = {"@TITLE@": html.escape(_SURROGATE.sub("\ufffd", title)), "@DATA@": _script_safe(data)}
    page = re.sub("@TITLE@|@DATA@", lambda m: fill[m.group()], PAGE)  # one pass: no text is filled in twice
    # a symlink at ``path`` is written through, as open() would: the page replaces the file it names
    written = Path(os.path.realpath(target)) if target.is_symlink() else target
    partial = written.with_name(f".{written.name}.{os.getpid()}.partial")
    try:  # written whole, then renamed: a failure never leaves a cut-off page at ``path``
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, written)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


_SURROGATE = re.compile("[\ud800-\udfff]")
