"""The typing checks can fail: mypy (and pyright, when installed) reject wrong calls of bound tasks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
WRONG = '''\
import osiiso

q = osiiso.AsyncQueue()


@q.task()
def fetch(url: str) -> bytes:
    return url.encode()


@q.task()
def parse(page: bytes, *, strict: bool = False) -> int:
    return len(page)


parse(fetch(1))  # line 16: fetch takes a str
fetch("u", priority="high")  # line 17: priority is an int
parse(fetch("u"), strict="yes")  # line 18: strict is a bool
ok: tuple[str, ...] = osiiso.tmap(len, ["a"])  # line 19: tmap(len) gives ints
'''
LINES = {16, 17, 18, 19}


def _lines_with_errors(output: str, path: Path) -> set[int]:
    found = set()
    for line in output.splitlines():
        if str(path) in line and "error" in line:
            found.add(int(line.split(str(path), 1)[1].lstrip(":").split(":", 1)[0].strip()))
    return found


def test_mypy_rejects_each_wrong_call(tmp_path: Path) -> None:
    """mypy --strict reports every wrong argument, option type and lost value type, and nothing else."""
    path = tmp_path / "wrong.py"
    path.write_text(WRONG)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", str(ROOT / "pyproject.toml"),
         str(path)], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=280)
    assert _lines_with_errors(done.stdout, path) == LINES, done.stdout


@pytest.mark.skipif(shutil.which("pyright") is None, reason="pyright is not installed (pip install pyright)")
def test_pyright_rejects_each_wrong_call(tmp_path: Path) -> None:
    """pyright reports the same wrong calls."""
    path = tmp_path / "wrong.py"
    path.write_text(WRONG)
    done = subprocess.run(["pyright", str(path)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=280)
    assert _lines_with_errors(done.stdout, path) == LINES, done.stdout
