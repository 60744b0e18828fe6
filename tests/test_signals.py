"""Ctrl-C (SIGINT) and SIGTERM sent to a script in the middle of a mixed run.

Each test writes a script to a temporary directory and runs it in a subprocess. The script
runs coroutine, thread and process tasks through ``osiiso.run`` (on asyncio or trio) and
prints ``ready`` when the first task starts; the test waits for that and for a process
task to be running, notes every descendant of the script, sends the signal, and checks
that the script exits within 5 s, says why, and leaves no descendant alive.

What the scripts print: on SIGINT the run is cancelled, every task ends (its ``TaskResult``
is recorded as cancelled) and the script dies with Python's ``KeyboardInterrupt`` traceback.
On SIGTERM ``osiiso.run`` stops the queues as ``queue.cancel()`` does: ``run()`` returns its
summary (printed), the ``on_complete`` hooks run, and the script exits with status 143; a
second SIGTERM, or ``osiiso.run(main, sigterm=False)``, ends it at once (exit status -15, no
message) and the workers, which watch their parent, kill themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procutil import proc_state, with_ctrl_c
from support import LOOP_NAMES, eventually

REPO = Path(__file__).resolve().parents[1]
EXIT_BOUND = 5.0  # seconds from the signal to the script's exit
SETTLE = 5.0  # seconds for multiprocessing's helpers to notice their parent is gone

pytestmark = [pytest.mark.timeout(60)]

SCRIPT = """\
import json, os, sys, time
import anyio
import osiiso
from osiiso import AsyncQueue

LOOP, MARK, MUST = sys.argv[1], sys.argv[2], sys.argv[3] == "must"
SIGTERM_OPTION = {"graceful": {}, "off": {"sigterm": False}, "slow": {}}[sys.argv[4]]
SLOW_HOOK = sys.argv[4] == "slow"
queue = None
said = []
completed = []


async def on_complete(result):
    completed.append(result.task_id)
    if SLOW_HOOK and result.status == "cancelled":
        print("slow hook", flush=True)
        await anyio.sleep(60)  # the graceful stop takes long: a second SIGTERM must not wait for it


def on_start(handle):
    if not said:
        said.append(1)
        print("ready", flush=True)


def proc_hang(path):
    open(path + ".tmp", "w").write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)


def proc_must(path, seconds):
    open(path + ".tmp", "w").write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)
    open(path + ".finished", "w").write("finished")
    return "finished"


def thread_hang():
    while not osiiso.cancelled():
        time.sleep(0.01)


async def async_hang():
    await anyio.sleep(60)


def quick(x):
    return x


async def main():
    global queue
    async with AsyncQueue(processes=2, on_start=on_start, on_complete=on_complete) as queue:
        if MUST:
            queue.submit(proc_must, MARK, 2.0, backend="process", must_complete=True, name="must")
        else:
            queue.submit(proc_hang, MARK, backend="process", name="proc_hang")
        queue.submit(thread_hang, backend="thread", name="thread_hang")
        queue.submit(async_hang, name="async_hang")
        queue.map(quick, range(20), backend="process")
        summary = await queue.run()
        print(f"SUMMARY succeeded={summary.succeeded} cancelled={summary.cancelled} "
              f"failed={summary.failed} hooks={len(completed)}", flush=True)


try:
    osiiso.run(main, backend=LOOP, **SIGTERM_OPTION)
finally:
    if queue is not None:
        statuses = [[r.task_id, r.name, str(r.status)] for r in queue.results]
        print("RESULTS " + json.dumps(statuses), flush=True)
"""


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (read from /proc/<pid>/task/*/children, recursively)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    children = [int(p) for p in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found.update(children)
            stack.extend(children)
    return found


def interrupt(tmp_path: Path, loop: str, sig: signal.Signals, must: bool = False,
              sigterm: str = "graceful") -> tuple[int | None, str, str, float, set[int]]:
    """Run the script, signal it once a process task runs; return (status, stdout, stderr, seconds, pids).

    ``sigterm``: ``"graceful"`` (osiiso.run's default), ``"off"`` (``sigterm=False``) or
    ``"slow"`` (a slow on_complete hook, then a second SIGTERM once the first one's stop began).
    """
    script = tmp_path / "mixed_run.py"
    script.write_text(SCRIPT)
    mark = tmp_path / "running"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), loop, str(mark), "must" if must else "plain", sigterm],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=with_ctrl_c)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the first task starts
        assert first.strip() == "ready", (first, proc.stderr.read() if proc.poll() is not None else "")
        eventually(mark.exists, "a process task to run", 30.0)
        pids = descendants(proc.pid)
        assert int(mark.read_text()) in pids
        began = time.monotonic()
        proc.send_signal(sig)
        if sigterm == "slow":
            line = proc.stdout.readline()  # the first stop is under way, held by the slow hook
            assert line.strip() == "slow hook", line
            began = time.monotonic()
            proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=EXIT_BOUND + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script did not exit after {sig.name}")
        seconds = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, first + out, err, seconds, pids


def assert_no_survivors(pids: set[int]) -> None:
    """Every process the script had is gone (or a zombie nobody reaps: dead either way)."""
    def alive() -> dict[int, str]:
        return {pid: proc_state(pid) for pid in pids if proc_state(pid) not in ("", "Z")}

    eventually(lambda: not alive(), lambda: f"the script's processes to go; these survived it: {alive()}", SETTLE)


def results_of(out: str) -> dict[str, str]:
    """The script's results, ``{name: status}`` (names made unique with the task id)."""
    line = next(line for line in out.splitlines() if line.startswith("RESULTS "))
    rows = json.loads(line[len("RESULTS "):])
    assert len({task_id for task_id, _, _ in rows}) == len(rows), f"a task was recorded twice: {rows}"
    return {name if name != "quick" else f"quick-{task_id}": status for task_id, name, status in rows}


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_sigint_cancels_the_run_and_the_script_exits_cleanly(tmp_path: Path, loop: str) -> None:
    """On Ctrl-C the run is cancelled, every task ends once, and the script exits within 5 s with no child left."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, signal.SIGINT)
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status != 0
    # the message: Python's own KeyboardInterrupt traceback (osiiso adds none)
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    results = results_of(out)
    assert len(results) == 23, results  # 3 hanging tasks and 20 quick ones: each recorded once
    assert {results[n] for n in ("proc_hang", "thread_hang", "async_hang")} == {"cancelled"}, results
    assert set(results.values()) <= {"succeeded", "cancelled"}, results
    assert_no_survivors(pids)


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_sigterm_stops_the_run_delivers_the_summary_and_exits_143(tmp_path: Path, loop: str) -> None:
    """On SIGTERM under osiiso.run the work is cancelled, hooks and the summary still come, and the status is 143."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, signal.SIGTERM)
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status == 128 + signal.SIGTERM, (status, err)
    results = results_of(out)
    assert len(results) == 23, results
    assert {results[n] for n in ("proc_hang", "thread_hang", "async_hang")} == {"cancelled"}, results
    summary = next(line for line in out.splitlines() if line.startswith("SUMMARY"))
    assert "failed=0" in summary and "hooks=23" in summary, summary
    assert "Traceback" not in err, err
    assert_no_survivors(pids)


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_a_second_sigterm_ends_the_script_at_once(tmp_path: Path, loop: str) -> None:
    """A second SIGTERM while the first one's stop is still under way ends the script at once."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, signal.SIGTERM, sigterm="slow")
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status == -signal.SIGTERM, (status, err)
    assert "RESULTS" not in out
    assert_no_survivors(pids)


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_sigterm_false_leaves_sigterm_to_python(tmp_path: Path, loop: str) -> None:
    """With osiiso.run(main, sigterm=False), SIGTERM ends the script at once and its workers follow it."""
    status, out, err, seconds, pids = interrupt(tmp_path, loop, signal.SIGTERM, sigterm="off")
    assert seconds < EXIT_BOUND, f"exit took {seconds:.1f}s"
    assert status == -signal.SIGTERM, (status, err)
    assert "RESULTS" not in out  # no Python code ran: no finally, no message
    assert_no_survivors(pids)


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_sigint_cancels_must_complete_tasks_too(tmp_path: Path, loop: str) -> None:
    """Ctrl-C is not a run timeout: a running must_complete task is cancelled (its worker killed), not awaited.

    SPEC section 3 spares must_complete tasks from fail_first and from run timeouts with
    on_timeout="complete" only; nothing spares them from Ctrl-C, and the engine cancels
    every task when the run is cancelled (``_runner.run_queue``: spare_must_complete=False).
    """
    status, out, err, seconds, pids = interrupt(tmp_path, loop, signal.SIGINT, must=True)
    assert seconds < EXIT_BOUND
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert results_of(out)["must"] == "cancelled"
    assert not (tmp_path / "running.finished").exists(), "the must_complete task ran to its end"
    assert_no_survivors(pids)


SELF_INTERRUPT = """\
import os, signal, sys, time
import anyio
import osiiso
from osiiso import AsyncQueue


async def presses_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # what a Ctrl-C does while this coroutine runs
    await anyio.sleep(0)
    return "went on"


async def main():
    async with AsyncQueue() as queue:
        queue.submit(presses_ctrl_c)
        slow = queue.submit(anyio.sleep, 3)
        await queue.run()
    print("RUN ENDED NORMALLY", flush=True)


began = time.monotonic()
try:
    osiiso.run(main, backend=sys.argv[1])
except KeyboardInterrupt:
    print(f"INTERRUPTED after {time.monotonic() - began:.1f}s", flush=True)
"""


@pytest.mark.parametrize("loop", LOOP_NAMES)
def test_ctrl_c_during_a_coroutine_task_stops_the_run(tmp_path: Path, loop: str) -> None:
    """A SIGINT that arrives while a coroutine task runs interrupts the whole run, not just that task."""
    script = tmp_path / "self_interrupt.py"
    script.write_text(SELF_INTERRUPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), loop], capture_output=True, text=True,
                          timeout=30, env=env, cwd=tmp_path, preexec_fn=with_ctrl_c)
    assert "INTERRUPTED" in done.stdout, (done.stdout, done.stderr)
    assert "RUN ENDED NORMALLY" not in done.stdout
