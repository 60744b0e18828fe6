"""``RunSummary.timeline(path)``: the task-stream page, its data, its escaping, and in headless Chromium.

The browser tests load the page with ``chromium --headless --dump-dom`` (the DOM after the
page's script ran) and ``--screenshot``; without Chromium they are skipped, except in CI
(``$CI``), where ``.ci/run`` installs it and they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import osiiso
from osiiso import AsyncQueue, AttemptTiming, RunSummary, TaskResult, TaskTimeoutError
from osiiso._timeline import timeline_data

pytestmark = pytest.mark.timeout(120)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="chromium is not installed: apt-get install chromium (.ci/run does)")
HOSTILE = "</script><img src=x onerror=alert(1)>"


def _result(n: int, backend: str, worker: str, start: float, *attempts: tuple[float, str], name: str = "job",
            message: str = "") -> TaskResult:
    """A result whose attempts run back to back from ``start``: (seconds, outcome) each."""
    timings, at = [], start
    for number, (seconds, outcome) in enumerate(attempts, 1):
        timings.append(AttemptTiming(number, at - 0.001, at, at + seconds, outcome, worker, message or outcome))
        at += seconds
    status = "succeeded" if attempts[-1][1] == "ok" else "failed"
    return TaskResult(f"task-{n}", name, status, attempts=len(attempts), backend=backend, started_at=start,
                      finished_at=at, timings=tuple(timings))


def _mixed() -> RunSummary:
    results = [
        _result(0, "thread", "thread/10", 100.0, (0.2, "ok")),
        _result(1, "thread", "thread/2", 100.0, (0.1, "error"), (0.1, "ok")),
        _result(2, "async", "async", 100.0, (0.3, "ok")),
        _result(3, "async", "async", 100.1, (0.1, "timeout"), name=HOSTILE, message=f"failed: {HOSTILE}"),
        _result(4, "process", "process/1", 100.2, (0.05, "crashed")),
        _result(5, "thread", "thread/2", 100.3, (0.1, "cancelled")),
        TaskResult("task-6", "restored", "succeeded", restored=True),
        TaskResult("task-7", "old", "failed", backend="thread", attempts=1, started_at=100.4, finished_at=100.5,
                   exception=TaskTimeoutError("'old' timed out after 0.1s")),
        TaskResult("task-8", "dependent", "cancelled", backend="thread", finished_at=100.6),  # never started
    ]
    return RunSummary(tuple(results), 1.0)


def test_rows_are_grouped_by_backend_and_overlapping_attempts_get_sub_rows() -> None:
    """Rows come per backend (async, thread, process), workers in natural order; overlaps go to sub-rows."""
    data = timeline_data(_mixed().results)
    assert data["rows"] == [["async", "async"], ["async", "async #2"], ["thread", "thread"],
                            ["thread", "thread/2"], ["thread", "thread/10"], ["process", "process/1"]]
    bars = data["bars"]
    assert isinstance(bars, dict)
    assert len(bars["row"]) == 8  # every attempt; the restored task ran nothing; task-7 has no timings: one bar
    assert data["unran"] == 1  # task-8 never started: no bar, counted
    strings = data["strings"]
    assert isinstance(strings, list)
    by_task = {strings[t]: i for i, t in enumerate(bars["task"])}
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    assert outcomes[bars["outcome"][by_task["task-7"]]] == "timeout"  # a result without timings: one bar
    assert bars["row"][by_task["task-3"]] == 1  # it overlaps task-2 on the "async" worker
    retried = [i for i, t in enumerate(bars["task"]) if strings[t] == "task-1"]
    assert [bars["attempt"][i] for i in retried] == [1, 2] and {bars["attempts"][i] for i in retried} == {2}


def test_an_empty_run_gives_an_empty_page(tmp_path: Path) -> None:
    """A summary without results still writes a page: no rows, no bars."""
    data = timeline_data(())
    assert data["rows"] == [] and data["bars"] == {name: [] for name in data["bars"]}  # type: ignore[union-attr]
    assert RunSummary((), 0.0).timeline(tmp_path / "empty.html").stat().st_size > 1000


def test_user_text_cannot_break_out_of_the_page(tmp_path: Path) -> None:
    """A task named like a closing script tag stays data: the page has exactly its own two scripts."""
    page = _mixed().timeline(tmp_path / "run.html", title="<b>title</b>").read_text()
    assert HOSTILE not in page and "<img" not in page and "<b>title" not in page
    assert page.count("</script>") == 2 and "&lt;b&gt;title&lt;/b&gt;" in page
    raw = re.search(r'<script type="application/json" id="osiiso-data">(.*?)</script>', page, re.S)
    assert raw is not None and HOSTILE in json.loads(raw.group(1))["strings"]


def test_a_name_with_a_lone_surrogate_and_a_bad_title(tmp_path: Path) -> None:
    """A task name holding a lone surrogate (os.fsdecode of a file name) is shown as U+FFFD in a page
    that is UTF-8; a title that is not a str is a TypeError; a failed write leaves no file behind."""
    q = osiiso.Queue()  # not started before run(): the run's summary holds the task
    q.submit(abs, -1, name="bad\udc80name")
    summary = q.run()
    q.shutdown()
    page = summary.timeline(tmp_path / "run.html", title="t\udc80").read_text(encoding="utf-8")
    raw = re.search(r'<script type="application/json" id="osiiso-data">(.*?)</script>', page, re.S)
    assert raw is not None and "bad\ufffdname" in json.loads(raw.group(1))["strings"] and "<title>t\ufffd" in page
    for title in (None, 5):
        with pytest.raises(TypeError, match="title must be a str"):
            summary.timeline(tmp_path / "other.html", title=title)  # type: ignore[arg-type]
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        summary.timeline(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.html", "taken"]


def test_a_symlink_at_the_path_is_written_through(tmp_path: Path) -> None:
    """The page replaces the file a symlink at ``path`` names, in its own directory; the link stays."""
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "run.html").write_text("old")
    (tmp_path / "latest.html").symlink_to(tmp_path / "pages" / "run.html")
    (tmp_path / "dangling.html").symlink_to(tmp_path / "pages" / "new.html")
    assert _mixed().timeline(tmp_path / "latest.html") == tmp_path / "latest.html"
    _mixed().timeline(tmp_path / "dangling.html")
    for link, name in (("latest.html", "run.html"), ("dangling.html", "new.html")):
        assert (tmp_path / link).is_symlink()
        assert (tmp_path / "pages" / name).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["new.html", "run.html"]


def test_a_real_run_draws_one_bar_per_attempt(tmp_path: Path) -> None:
    """A queue's run gives a page with a bar for every attempt (one per task where no timings were kept)."""
    async def ok(i: int) -> int:
        return i

    tries = {"n": 0}

    def flaky() -> str:
        tries["n"] += 1
        if tries["n"] == 1:
            raise OSError("first attempt fails")
        return "ok"

    async def main() -> RunSummary:
        q = AsyncQueue(workers=4)
        for i in range(10):
            q.submit(ok, i)
        q.submit(flaky, retries=1)
        summary = await q.run()
        await q.shutdown()
        return summary

    summary = osiiso.run(main)
    data = timeline_data(summary.results)
    bars = data["bars"]
    assert isinstance(bars, dict)
    assert len(bars["row"]) == sum(len(r.timings) for r in summary.results) == 12  # flaky ran twice
    assert {row[0] for row in data["rows"]} == {"async", "thread"}  # type: ignore[index, union-attr]


class _Page(HTMLParser):
    """What the test reads of the dumped DOM: the stats' data attributes, the legend, any <img>."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, str] = {}
        self.legend: list[str] = []
        self.images = 0
        self.tip = ""
        self._in_tip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if found.get("id") == "osiiso-stats":
            self.stats = {k[5:]: v for k, v in found.items() if k.startswith("data-")}
        if tag == "li" and "data-outcome" in found:
            self.legend.append(found["data-outcome"])
        self.images += tag == "img"
        self._in_tip = found.get("id") == "osiiso-tip"

    def handle_endtag(self, tag: str) -> None:
        self._in_tip = False

    def handle_data(self, data: str) -> None:
        if self._in_tip:
            self.tip += data


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "chromium is not installed: apt-get install -y chromium"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--window-size=1280,720", *args],
                          capture_output=True, text=True, timeout=90, check=False)


def _load(page: Path, fragment: str = "") -> _Page:
    done = _chromium("--dump-dom", page.as_uri() + fragment)
    assert done.returncode == 0, done.stderr
    parsed = _Page()
    parsed.feed(done.stdout)
    return parsed


@needs_chromium
def test_chromium_draws_every_bar_and_the_legend(tmp_path: Path) -> None:
    """In Chromium the page draws all 8 attempts, lists every outcome in the legend, and injects nothing."""
    page = _mixed().timeline(tmp_path / "run.html")
    dom = _load(page)
    assert dom.legend == ["ok", "error", "timeout", "cancelled", "crashed", "retry"]
    assert dom.stats["bars"] == "8" and dom.stats["rows"] == "6"
    assert int(dom.stats["rects"]) + int(dom.stats["merged"]) == 8
    assert dom.images == 0  # the hostile task name stayed text
    assert _load(RunSummary((), 0.0).timeline(tmp_path / "empty.html")).stats["bars"] == "0"  # its script ran
    data = timeline_data(_mixed().results)
    strings, bars = data["strings"], data["bars"]
    hostile = [strings[t] for t in bars["task"]].index("task-3")  # type: ignore[index, union-attr]
    tip = _load(page, f"#attempt={hostile}").tip  # the page opens this attempt's tooltip
    assert tip.splitlines() == [f"{HOSTILE} (task-3)", "attempt 1 of 1: timeout",
                                "ran 100.0 ms, waited 1.0 ms on async / async #2", f"failed: {HOSTILE}"]
    shot = tmp_path / "run.png"
    done = _chromium(f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 5000, done.stderr


def _many(n: int, workers: int = 16) -> RunSummary:
    results, at = [], [0.0] * workers
    for i in range(n):
        w, seconds = i % workers, 0.0004 + (i % 5) * 0.0002
        outcome = "ok" if i % 97 else "error"
        results.append(_result(i, "thread", f"thread/{w}", 1000.0 + at[w], (seconds, outcome)))
        at[w] += seconds
    return RunSummary(tuple(results), at[0])


@needs_chromium
def test_chromium_merges_bars_narrower_than_a_pixel_at_100k(tmp_path: Path) -> None:
    """At 100,000 attempts the page loads, merges sub-pixel bars into pixel columns, and counts them all."""
    page = _many(100_000).timeline(tmp_path / "big.html")
    assert page.stat().st_size < 8_000_000
    dom = _load(page)
    assert dom.stats["bars"] == "100000"
    assert int(dom.stats["columns"]) > 0 and int(dom.stats["rects"]) + int(dom.stats["merged"]) == 100_000


def test_the_demo_writes_a_timeline(tmp_path: Path) -> None:
    """``python -m osiiso --timeline run.html`` writes the page for the demo's run and says where."""
    target = tmp_path / "demo.html"
    done = subprocess.run([sys.executable, "-m", "osiiso", "--pages", "20", "--no-progress", "--timeline",
                           str(target), "--db", str(tmp_path / "d.sqlite3")],
                          capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stderr
    assert f"task-stream page: {target}" in done.stdout
    raw = re.search(r'id="osiiso-data">(.*?)</script>', target.read_text(), re.S)
    assert raw is not None
    rows = json.loads(raw.group(1))["rows"]
    assert {row[0] for row in rows} == {"async", "process", "thread"}
