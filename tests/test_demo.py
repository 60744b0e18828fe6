"""The README's main job, `python -m osiiso`, runs the mixed pipeline and explains its options."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from procutil import with_ctrl_c

pytestmark = [pytest.mark.timeout(120)]


def test_demo_runs_the_mixed_pipeline(tmp_path: Path) -> None:
    """The demo fetches, scores and stores every page, prints the summary and the database path."""
    db = tmp_path / "pages.sqlite3"
    done = subprocess.run(
        [sys.executable, "-m", "osiiso", "--pages", "40", "--no-progress", "--db", str(db)],
        capture_output=True, text=True, timeout=100, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "40 pages: 40 fetches, 40 scores, 40 rows stored" in done.stdout
    assert f"database: {db}" in done.stdout
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM pages").fetchone() == (40,)
    connection.close()


def test_demo_runs_on_trio(tmp_path: Path) -> None:
    """The same pipeline runs on trio."""
    done = subprocess.run(
        [sys.executable, "-m", "osiiso", "--pages", "15", "--no-progress", "--loop", "trio",
         "--db", str(tmp_path / "t.sqlite3")],
        capture_output=True, text=True, timeout=100, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "15 rows stored" in done.stdout


def test_demo_help_lists_its_options() -> None:
    """--help names the size of the run, the workers and where to write."""
    done = subprocess.run([sys.executable, "-m", "osiiso", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0
    for option in ("--pages", "--workers", "--processes", "--db", "--loop", "--progress"):
        assert option in done.stdout


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "osiiso", *args], capture_output=True, text=True, timeout=100,
                          check=False)


def test_paths_the_demo_cannot_write_are_refused_before_it_runs(tmp_path: Path) -> None:
    """A --timeline or --db the demo could not write is an error (status 2) naming it, before any run."""
    cases = [(("--timeline", str(tmp_path / "missing" / "run.html")), "there is no directory"),
             (("--timeline", str(tmp_path)), "it is a directory"),
             (("--db", str(tmp_path / "missing" / "pages.db")), "cannot use it as the demo's SQLite database"),
             (("--db", str(tmp_path)), "cannot use it as the demo's SQLite database")]
    for args, message in cases:
        done = _demo("--pages", "3", "--no-progress", *args)
        assert done.returncode == 2 and message in done.stderr and args[1] in done.stderr, done.stderr
        assert done.stdout == "" and "Traceback" not in done.stderr


@pytest.mark.parametrize(("signal_name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_mid_run_ends_the_demo_quietly(tmp_path: Path, signal_name: str, status: int) -> None:
    """SIGTERM stops the run and still prints its report (status 143); Ctrl-C stops it with one line
    (status 130). Neither prints a traceback."""
    import signal
    import time

    db = tmp_path / "pages.sqlite3"
    process = subprocess.Popen([sys.executable, "-m", "osiiso", "--pages", "3000", "--no-progress", "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=with_ctrl_c)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored == 0 and time.monotonic() < deadline and process.poll() is None:  # rows: the run is on
            time.sleep(0.05)
            try:
                with closing(sqlite3.connect(db, timeout=1)) as connection:
                    stored = connection.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
            except sqlite3.Error:  # the table is not made yet
                stored = 0
        assert stored > 0, "the demo stored nothing"
        process.send_signal(getattr(signal, signal_name))
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status, err
    assert "Traceback" not in err, err
    if status == 143:
        assert "osiiso run" in out and f"database: {db}" in out
    else:
        assert "interrupted: the run was cancelled" in err
