"""Kill a checkpointed fan-out with SIGKILL, start it again: only the rest runs.

Each script runs ``tmap(work, inputs, checkpoint=...)`` in a subprocess. ``work`` appends
its input to a log file as it starts, so the test knows what ran in which process. Inputs
from the gate on wait for a file the test never creates: the test waits until every
input before the gate is committed (it counts the rows itself), then kills the script with
SIGKILL while the gated ones are in flight — about 60% of the way. The restarted script
has no gate; it must run exactly the inputs that were not committed and print every value,
in order.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")]

REPO = Path(__file__).resolve().parents[1]
N = 200
THREADS = 4

SCRIPT = f"""
import json, os, sys, time
import osiiso

path, log, start, step, gate_at, gate = sys.argv[1:7]
inputs = range(int(start), {N}, int(step))
gate_at = int(gate_at)

def work(i):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{{i}}\\n".encode())
    os.close(fd)
    while i >= gate_at and not os.path.exists(gate):
        time.sleep(0.01)
    return {{"i": i, "sq": i * i}}

with osiiso.Checkpoint(path) as ck:
    values = osiiso.tmap(work, inputs, checkpoint=ck, threads={THREADS}, namespace="work")
print(json.dumps(values))
"""


def start(tmp_path: Path, log: str, first: int = 0, step: int = 1, gate_at: int = N) -> subprocess.Popen[str]:
    script = tmp_path / "fanout.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(script), str(tmp_path / "ck.sqlite"), str(tmp_path / log), str(first), str(step),
            str(gate_at), str(tmp_path / "never")]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(tmp_path: Path) -> set[int]:
    """The inputs whose values are in the file, read by a connection of the test's own."""
    try:
        with closing(sqlite3.connect(tmp_path / "ck.sqlite", timeout=10)) as conn, conn:
            keys = conn.execute("SELECT key FROM osiiso_checkpoint WHERE namespace = 'work'").fetchall()
    except sqlite3.OperationalError:  # the script has not made the table yet
        return set()
    return {json.loads(key)[0] for (key,) in keys}


def ran(tmp_path: Path, log: str) -> list[int]:
    path = tmp_path / log
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def wait_until_gated(tmp_path: Path, rows: int, logs: dict[str, int], procs: list[subprocess.Popen[str]]) -> None:
    """Wait until ``rows`` rows are committed and each log has its count of lines (the gated tasks started)."""
    deadline = time.monotonic() + 60
    while len(committed(tmp_path)) < rows or any(len(ran(tmp_path, log)) < n for log, n in logs.items()):
        for proc in procs:
            assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{len(committed(tmp_path))} of {rows} rows committed"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str]) -> list[object]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "could not" not in err, err
    return json.loads(out)  # type: ignore[no-any-return]


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def expected(inputs: range) -> list[object]:
    return [{"i": i, "sq": i * i} for i in inputs]


def test_sigkill_then_resume_runs_only_the_rest(tmp_path: Path) -> None:
    """Killed at 60% with tasks in flight, the restarted fan-out runs only the uncommitted inputs."""
    gate_at = N * 6 // 10
    proc = start(tmp_path, "ran1.log", gate_at=gate_at)
    wait_until_gated(tmp_path, gate_at, {"ran1.log": gate_at + THREADS}, [proc])
    kill(proc)
    done = committed(tmp_path)
    first = ran(tmp_path, "ran1.log")
    assert done == set(range(gate_at))  # every finished task was committed: only the in-flight ones are lost
    assert set(first) - done == set(range(gate_at, gate_at + THREADS))  # the gated tasks, in flight

    values = finish(start(tmp_path, "ran2.log"))
    again = ran(tmp_path, "ran2.log")
    assert values == expected(range(N))
    assert sorted(again) == list(range(gate_at, N))  # each of the rest once, none of the committed
    assert committed(tmp_path) == set(range(N))


def test_two_processes_share_one_checkpoint_through_a_kill(tmp_path: Path) -> None:
    """Two processes fill one file (even and odd inputs), are killed at 60%, resume, and a third restores all."""
    gate_at = N * 6 // 10
    procs = [start(tmp_path, f"ran1-{part}.log", first=part, step=2, gate_at=gate_at) for part in (0, 1)]
    wait_until_gated(tmp_path, gate_at, {f"ran1-{part}.log": gate_at // 2 + THREADS for part in (0, 1)}, procs)
    for proc in procs:
        kill(proc)
    assert committed(tmp_path) == set(range(gate_at))

    resumed = [start(tmp_path, f"ran2-{part}.log", first=part, step=2) for part in (0, 1)]
    for part, proc in enumerate(resumed):
        assert finish(proc) == expected(range(part, N, 2))
        assert sorted(ran(tmp_path, f"ran2-{part}.log")) == list(range(gate_at + part, N, 2))

    assert finish(start(tmp_path, "ran3.log")) == expected(range(N))
    assert ran(tmp_path, "ran3.log") == []  # everything restored, nothing ran


def test_two_processes_write_the_same_inputs_at_once(tmp_path: Path) -> None:
    """Two processes running the same fan-out at once on one file both finish, with every value stored."""
    procs = [start(tmp_path, f"ran-{part}.log") for part in (0, 1)]
    for proc in procs:
        assert finish(proc) == expected(range(N))
    assert committed(tmp_path) == set(range(N))
    with closing(sqlite3.connect(tmp_path / "ck.sqlite")) as conn, conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_checkpoint_never_closed_commits_at_exit(tmp_path: Path) -> None:
    """A script that never closes its Checkpoint still commits its pending values as it exits."""
    script = tmp_path / "unclosed.py"
    script.write_text(
        "import sys, osiiso\n"
        "ck = osiiso.Checkpoint(sys.argv[1])\n"
        "print('open', flush=True)\n"
        "sys.stdin.readline()\n"
        "async def main():\n"
        "    async with osiiso.AsyncQueue() as q:\n"
        "        for h in q.map(str, range(500), checkpoint=ck, namespace='work', backend='thread'):\n"
        "            await h\n"
        "osiiso.run(main)\n"
        "print('done', flush=True)\n"
    )
    path = tmp_path / "ck.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline() == "open\n"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the script's writes wait for this lock
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done\n"
        assert committed(tmp_path) == set()  # every value still waits to be written as the script ends
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert committed(tmp_path) == set(range(500))
