"""``run(progress=...)``: the live display on a terminal, the log lines off one, and snapshots.

The terminal tests run a small script in a real pseudo-terminal (its standard error is the
terminal, its standard output a pipe) and read what it drew; the others run in-process.
"""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import LOOPS, aeventually, loop_params

import osiiso
from osiiso import AsyncQueue, ProgressSnapshot

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: a mixed run: async and thread tasks, failures, a retried task; prints its summary to stdout
SCRIPT = textwrap.dedent("""
    import sys
    import osiiso

    async def ok(i):
        return i

    async def boom(i):
        raise ValueError(i)

    def work(i):
        return i * 2

    def flaky(path):
        import os
        if not os.path.exists(path):
            open(path, "w").close()
            raise OSError("first attempt fails")
        return 1

    async def main():
        q = osiiso.AsyncQueue(workers=8)
        for i in range(40):
            q.submit(ok, i)
        for i in range(3):
            q.submit(boom, i)
        for i in range(25):
            q.submit(work, i)
        q.submit(flaky, sys.argv[1], retries=2, backend="thread")
        summary = await q.run(progress=True)
        await q.shutdown()
        print(f"RESULT {summary.total_submitted} {summary.failed}")

    osiiso.run(main)
""")


def _script(tmp_path: Path) -> list[str]:
    path = tmp_path / "progress_script.py"
    path.write_text(SCRIPT)
    return [sys.executable, str(path), str(tmp_path / "flaky-mark")]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
                                                           "TTY_INTERACTIVE", "CI", "COLUMNS", "LINES")}
    env.update({"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40", **extra})
    return env


def _read_terminal(master: int, proc: subprocess.Popen[bytes], bound: float = 45.0) -> bytes:
    """Everything the child writes to the terminal until it exits (within ``bound`` seconds)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "plain"])
def test_terminal_display_shows_each_backend_and_the_real_final_totals(tmp_path: Path, rich: bool) -> None:
    """On a terminal, the display (on stderr) has a row per backend and its final frame counts every task."""
    master, slave = pty.openpty()
    env = _env() if rich else _env(PYTHONPATH=f"{tmp_path / 'norich'}{os.pathsep}{ROOT}")
    if not rich:  # a stand-in package that makes `import rich` fail, as when it is not installed
        (tmp_path / "norich" / "rich").mkdir(parents=True)
        (tmp_path / "norich" / "rich" / "__init__.py").write_text("raise ImportError('no rich here')\n")
    proc = subprocess.Popen(_script(tmp_path), stdin=slave, stderr=slave, stdout=subprocess.PIPE, env=env)
    os.close(slave)
    try:
        screen = _read_terminal(master, proc).decode("utf-8", "replace")
        stdout, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, screen
    assert stdout.decode() == "RESULT 69 3\n"  # standard output holds the program's output only
    final = screen[screen.rindex("finished"):] if rich else screen.rstrip().rsplit("\r", 1)[-1]
    if rich:
        assert "\x1b[" in screen  # drawn in place, with the terminal's escape codes
        final = ESCAPE.sub("", final)
        for row in ("all", "async", "thread"):
            assert any(line.split()[:1] == [row] and "/" in line for line in final.splitlines()), (row, final)
        assert "69/69" in final and "43/43" in final and "26/26" in final
    else:
        assert "osiiso: 69/69 done, 3 failed" in final, final
        assert "async 43/43 (3 failed, 0 running)" in final and "thread 26/26 (0 failed, 0 running)" in final


def test_off_a_terminal_the_display_is_plain_lines_on_stderr(tmp_path: Path) -> None:
    """Piped, progress=True writes plain lines to stderr (no carriage return, no escape code), stdout stays clean."""
    proc = subprocess.run(_script(tmp_path), capture_output=True, env=_env(), timeout=45)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "RESULT 69 3\n"
    err = proc.stderr.decode()
    assert "\r" not in err and "\x1b" not in err
    assert err.splitlines()[-1].startswith("osiiso: 69/69 done, 3 failed, 0 running; finished")


class _Stream(io.StringIO):
    """A standard error that is not a terminal."""

    def isatty(self) -> bool:
        return False


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", loop_params(*LOOPS))
async def test_log_lines_come_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off a terminal a line is written every LOG_EVERY seconds while the run goes on, and one at the end."""
    from osiiso import _progress_view

    stream = _Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(_progress_view, "LOG_EVERY", 0.05)

    async def wait_for_lines() -> None:
        await aeventually(lambda: stream.getvalue().count("\n") >= 2, "two progress lines")

    q = AsyncQueue()
    q.submit(wait_for_lines)
    await q.run(progress=True)
    await q.shutdown()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("osiiso: 0/1 done, 0 failed, 1 running;")
    assert lines[-1].startswith("osiiso: 1/1 done, 0 failed, 0 running; finished")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", loop_params(*LOOPS))
async def test_snapshots_see_retries_and_totals_growing() -> None:
    """A snapshot counts a task waiting for its retry, and the total grows as tasks are submitted mid-run."""
    seen: list[ProgressSnapshot] = []
    retry_seen = anyio.Event()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("first attempt fails")
        with anyio.move_on_after(20):  # bounded: without a retrying count the assertion below says so
            await retry_seen.wait()  # a snapshot has shown this task retrying
        for i in range(5):
            q.submit(child, i)
        return "ok"

    async def child(i: int) -> int:
        return i

    def watch(snapshot: ProgressSnapshot) -> None:
        seen.append(snapshot)
        if snapshot.retrying == 1:
            retry_seen.set()

    q = AsyncQueue()
    q.submit(flaky, retries=1)
    await q.run(progress=watch)
    await q.shutdown()
    assert any(s.retrying == 1 and s.total == 1 for s in seen)
    assert seen[-1].final and (seen[-1].total, seen[-1].done, seen[-1].retrying) == (6, 6, 0)
    assert seen[-1].backends["async"].succeeded == 6


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", loop_params(*LOOPS))
async def test_a_failing_progress_function_is_logged_once_and_the_run_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """An exception from progress=fn is logged once on the "osiiso" logger; the run ends normally."""
    calls = 0

    def broken(snapshot: ProgressSnapshot) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("display is broken")

    async def ok(i: int) -> int:
        return i

    q = AsyncQueue()
    for i in range(5):
        q.submit(ok, i)
    with caplog.at_level(logging.ERROR, logger="osiiso"):
        summary = await q.run(progress=broken)
    await q.shutdown()
    assert summary.succeeded == 5 and calls == 1
    assert [r.getMessage() for r in caplog.records] == ["osiiso: the progress display failed and is turned off "
                                                        "for this run"]


def test_blocking_queue_and_osiiso_run_take_a_progress_function() -> None:
    """osiiso.Queue.run(progress=fn) and a queue inside osiiso.run() hand the final snapshot to fn."""
    seen: list[ProgressSnapshot] = []

    def double(i: int) -> int:
        return 2 * i

    q = osiiso.Queue()  # not started before run(): every task ends during the run (as in its summary)
    for i in range(7):
        q.submit(double, i)
    q.run(progress=seen.append)
    q.shutdown()
    assert seen[-1].final and (seen[-1].done, seen[-1].total) == (7, 7)
    assert list(seen[-1].backends) == ["thread"]

    async def main() -> ProgressSnapshot:
        found: list[ProgressSnapshot] = []
        q = AsyncQueue()
        q.submit(double, 1, backend="thread")
        await q.run(progress=found.append)
        await q.shutdown()
        return found[-1]

    for loop in ("asyncio", "trio"):
        last = osiiso.run(main, backend=loop)
        assert last.final and (last.done, last.total, last.failed) == (1, 1, 0)


@pytest.mark.anyio
async def test_progress_refuses_what_it_cannot_call() -> None:
    """progress= takes True, False or a plain function: a string or an async function is refused, saying why."""
    async def shown(snapshot: Any) -> None:
        return None

    q = AsyncQueue()
    with pytest.raises(ValueError, match="progress must be True, False or a function taking a ProgressSnapshot"):
        await q.run(progress="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is an async function: pass a plain function"):
        await q.run(progress=shown)

    class Shown:
        async def __call__(self, snapshot: Any) -> None:
            return None

    with pytest.raises(ValueError, match="is an async function: pass a plain function"):
        await q.run(progress=Shown())  # an object whose __call__ is async: never awaited, so refused
    await q.shutdown()
