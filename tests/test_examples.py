"""Run every script in ``examples/`` as a user would, and check what it prints.

Each example runs in a fresh interpreter (``sys.executable``) from an empty temporary
directory. Besides its exit status and a key line of its output, each run is checked
for leftovers: every process it started (worker processes included, whatever session
or process group they moved to) inherits a unique environment variable, and none may
still be alive shortly after the script has exited.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import eventually

pytestmark = pytest.mark.timeout(150)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MARKER = "OSIISO_EXAMPLE_RUN"


def _processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment holds ``MARKER=token`` (Linux /proc)."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def run_example(name: str, tmp_path: Path) -> str:
    """Run ``examples/<name>`` to completion, check it left no process behind, return its stdout."""
    token = uuid.uuid4().hex
    env = {**os.environ, MARKER: token, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # Output goes to files, not pipes: a leftover child holding a pipe would make run() wait
    # for it, hiding the leak behind a slow test instead of failing the check below.
    with open(tmp_path / "stdout", "w+") as out, open(tmp_path / "stderr", "w+") as err:
        proc = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, env=env,
                              stdout=out, stderr=err, text=True, timeout=120)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert "Traceback" not in stderr, stderr
    if sys.platform.startswith("linux"):
        # multiprocessing's helpers (resource tracker, forkserver) exit just after the parent
        eventually(lambda: not _processes_with(token),
                   lambda: f"the processes {name} started to exit (left: {_processes_with(token)})", 5.0)
    assert not list(cwd.iterdir()), f"{name} left files in its working directory"
    return stdout


def test_examples_are_all_tested() -> None:
    """Every script in examples/ has a test in this module."""
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {"mixed_pipeline.py", "cpu_fanout.py", "service.py", "retries_and_timeouts.py"}
    assert scripts == tested


def test_mixed_pipeline(tmp_path: Path) -> None:
    """The mixed pipeline fetches, parses and stores every page, one task per stage, all succeeding."""
    out = run_example("mixed_pipeline.py", tmp_path)
    assert "stored 12 pages in" in out
    assert "36 tasks" in out  # 12 pages x (fetch, parse, store) in one run


def test_cpu_fanout(tmp_path: Path) -> None:
    """The CPU fan-out runs a lambda and a bound process task, agrees with the serial count and reports a speedup."""
    out = run_example("cpu_fanout.py", tmp_path)
    assert "primes below 1,000,000: 78,498" in out
    assert "lambda results:" in out
    assert "speedup x" in out


def test_service(tmp_path: Path) -> None:
    """The infinite-mode service serves every task its producer thread submitted, then shuts down."""
    out = run_example("service.py", tmp_path)
    assert "served 25 tasks: 23 succeeded, 2 failed" in out
    assert "producer done" in out


def test_retries_and_timeouts(tmp_path: Path) -> None:
    """Retries, timeouts, fail_first and must_complete end each task as the example describes."""
    out = run_example("retries_and_timeouts.py", tmp_path)
    assert "run 1: 1 succeeded, 3 failed (1 timed out); run 2: 1 succeeded, 1 failed, 3 cancelled" in out
