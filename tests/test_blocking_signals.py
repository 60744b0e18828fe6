"""Ctrl-C (SIGINT) sent to a script that uses the blocking ``osiiso.Queue``, in the middle of a mixed run.

As ``test_signals.py`` does for ``osiiso.run``: the script runs coroutine, thread and process
tasks and prints ``ready`` when the first starts; the test waits for a process task to run,
notes every descendant, sends SIGINT and checks that the script exits within 5 s with
Python's ``KeyboardInterrupt`` traceback, that every task ended exactly once (the hanging
ones cancelled), and that no descendant survives. The interrupt lands in the main thread
while it blocks in ``run()``, ``handle.value()``, ``group.values()`` or ``join()``, inside a
``with`` block or without one: without one, the tasks are cancelled and recorded before the
interrupt comes out of the wait, as they are by ``run()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procutil import with_ctrl_c
from support import eventually
from test_signals import EXIT_BOUND, REPO, assert_no_survivors, descendants, results_of

pytestmark = [pytest.mark.timeout(60)]

SCRIPT = """\
import json, os, sys, time
import anyio
import osiiso

LOOP, MARK, STYLE = sys.argv[1], sys.argv[2], sys.argv[3]
said = []
queue = None


def on_start(handle):
    if not said:
        said.append(1)
        print("ready", flush=True)


def proc_hang(path):
    open(path + ".tmp", "w").write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)


def thread_hang():
    while not osiiso.cancelled():
        time.sleep(0.01)


async def async_hang():
    await anyio.sleep(60)


def quick(x):
    return x


def submit_all(q):
    hang = q.group(proc_hang, [MARK], backend="process", name="proc_hang")  # a group of one: values() waits too
    q.submit(thread_hang, backend="thread", name="thread_hang")
    q.submit(async_hang, name="async_hang")
    q.map(quick, range(20), backend="process")
    return hang


try:
    if STYLE == "run-in-with":
        with osiiso.Queue(processes=2, on_start=on_start, loop=LOOP) as queue:
            submit_all(queue)
            queue.run()
    elif STYLE == "value-in-with":
        with osiiso.Queue(processes=2, on_start=on_start, loop=LOOP) as queue:
            submit_all(queue)[0].value()
    elif STYLE == "map-waiting-for-room":  # the three hanging tasks fill the queue: map() waits for room
        queue = osiiso.ProcessQueue(workers=3, size=3, on_start=on_start, loop=LOOP)
        submit_all(queue)
    else:  # no with block: the queue is left to its finalizer
        queue = osiiso.ProcessQueue(workers=2, on_start=on_start, loop=LOOP)
        hang = submit_all(queue)
        if STYLE == "run-without-with":
            queue.run()
        elif STYLE == "value-without-with":
            hang[0].value()
        elif STYLE == "values-without-with":
            hang.values()
        else:
            queue.join()
finally:
    if queue is not None:
        statuses = [[r.task_id, r.name, str(r.status)] for r in queue.results]
        print("RESULTS " + json.dumps(statuses), flush=True)
"""


def interrupt(tmp_path: Path, loop: str, style: str) -> tuple[int | None, str, str, float, set[int]]:
    """Run the script, send SIGINT once a process task runs; return (status, stdout, stderr, seconds, pids)."""
    script = tmp_path / "blocking_run.py"
    script.write_text(SCRIPT)
    mark = tmp_path / "running"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), loop, str(mark), style], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, preexec_fn=with_ctrl_c)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "ready", (first, proc.stderr.read() if proc.poll() is not None else "")
        eventually(mark.exists, "a process task runs")
        pids = descendants(proc.pid)
        assert int(mark.read_text()) in pids
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=EXIT_BOUND + 10)
        except subprocess.TimeoutExpired:
            pytest.fail("the script did not exit after SIGINT")
        seconds = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, first + out, err, seconds, pids


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_sigint_while_waiting_for_room_cancels_the_run(tmp_path: Path, loop: str) -> None:
    """Ctrl-C while a full ProcessQueue's map() waits for room cancels the run, as in run(): the three
    tasks that hold the room end cancelled, and the script exits."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, "map-waiting-for-room")
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status != 0 and err.rstrip().endswith("KeyboardInterrupt"), err
    results = results_of(out)
    assert {results[n] for n in ("proc_hang", "thread_hang", "async_hang")} == {"cancelled"}, results
    assert "quick" not in results, results
    assert_no_survivors(pids)


@pytest.mark.parametrize("style", ["run-in-with", "value-in-with", "run-without-with", "value-without-with",
                                   "values-without-with", "join-without-with"])
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_sigint_cancels_the_blocking_run_and_leaves_nothing_behind(tmp_path: Path, loop: str, style: str) -> None:
    """Ctrl-C in the main thread cancels the Queue's run: every task ends once, the script exits, no child stays."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, style)
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status != 0
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    results = results_of(out)
    assert len(results) == 23, results
    assert {results[n] for n in ("proc_hang", "thread_hang", "async_hang")} == {"cancelled"}, results
    assert set(results.values()) <= {"succeeded", "cancelled"}, results
    assert_no_survivors(pids)
