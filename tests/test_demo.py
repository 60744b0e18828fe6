"""The README's main job, `python -m osiiso`, runs the mixed pipeline and explains its options."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
