"""``run(progress=True)`` from a script: stdout stays clean, the final totals are true, also with keep_results=0."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent("""
    import osiiso

    def work(i):
        if i % 10 == 0:
            raise ValueError(i)
        return i

    async def late(q):
        for i in range(20):  # submitted during the run: the totals grow
            q.submit(work, i + 1, backend="thread", retries=0)
        return 0

    async def main():
        q = osiiso.AsyncQueue(keep_results={keep})
        for i in range(100):
            q.submit(work, i, backend="thread", retries=0)
        q.submit(late, q)
        summary = await q.run(progress=True)
        print("SUMMARY", summary.total_submitted, summary.failed)

    import asyncio
    asyncio.run(main())
""")


def _script(tmp_path: Path, keep: object = True) -> Path:
    path = tmp_path / "progress_script.py"
    path.write_text(SCRIPT.format(keep=keep))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


@pytest.mark.parametrize("keep", [True, 0])
def test_off_a_terminal_progress_is_plain_lines_on_stderr_with_the_true_totals(tmp_path: Path, keep: object) -> None:
    """Piped: stdout holds only the program's output; stderr ends with 121/121 and 12 failed, no '\\r'."""
    done = subprocess.run([sys.executable, str(_script(tmp_path, keep))], capture_output=True, text=True,
                          timeout=50, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "SUMMARY 121 12\n"
    assert "\r" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("osiiso: 121/121 done, 12 failed"), done.stderr


def test_on_a_terminal_progress_draws_on_stderr_and_ends_with_the_true_totals(tmp_path: Path) -> None:
    """In a pseudo-terminal (stderr a tty, stdout a pipe) the live display ends at 121/121, 12 failed."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, str(_script(tmp_path))], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=secondary, env={**_env(), "COLUMNS": "120"})
        os.close(secondary)
        secondary = -1
        screen = b""
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=20)
    finally:
        os.close(main)
        if secondary != -1:
            os.close(secondary)
    assert proc.returncode == 0
    assert out == b"SUMMARY 121 12\n"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))  # without the colours
    assert re.search(r"121/121\s+12\s", text), text  # done/total, then the failed column


def test_progress_true_without_a_standard_error_runs_with_no_display(tmp_path: Path) -> None:
    """With ``sys.stderr`` None (pythonw, a daemon) or closed, run(progress=True) runs every task and
    shows nothing, instead of failing on the missing stream."""
    script = tmp_path / "no_stderr.py"
    script.write_text(textwrap.dedent("""
        import io, sys
        import osiiso
        sys.stderr = None
        q = osiiso.Queue()  # not started before run(): each run's summary holds its tasks
        q.map(abs, range(5))
        first = q.run(progress=True)
        q.shutdown()
        closed = io.StringIO()
        closed.close()
        sys.stderr = closed
        q = osiiso.Queue()
        q.map(abs, range(3))
        second = q.run(progress=True)
        q.shutdown()
        print("RAN", first.succeeded, second.succeeded)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0 and "RAN 5 3" in done.stdout, done.stdout + done.stderr
