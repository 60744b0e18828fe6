"""Hostile process tasks and initializers: nothing hangs, nothing is lost, nothing is left behind.

Each test is a misbehaviour that once hung a queue, lost a task or leaked a process (issue 15):
a pool used on a second event loop, initializers that kill or hang their worker, a task that
leaves a non-daemon thread, junk on a result pipe, a task that forks, a grandchild in a new
session, a value whose pickling raises ``BaseException``, a big argument for a starting
worker (a thread stuck in its initializer is in ``test_thread_backend_unit.py``). Tests run
on asyncio (the pool does not depend on the loop) unless the loop is the subject; they
synchronise on files the workers write and on `eventually`, never on sleeps.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import cloudpickle
import pytest
from procutil import proc_state
from support import ASYNCIO, aeventually, eventually

from osiiso import AsyncQueue, RemoteError, SerializationError, TaskTimeoutError, WorkerCrashedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers never import this module

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
REPO = Path(__file__).resolve().parents[2]
BOUND = 20.0  # seconds: far more than any of these needs once fixed
MOST_LAUNCHES = 8  # launches a task may cost when every worker dies starting (a few per slot)


@pytest.fixture
def anyio_backend() -> object:
    """The pool's behaviour does not depend on the loop: asyncio keeps these fast."""
    return ASYNCIO


def start_time(pid: int) -> int:
    """A process's start time in clock ticks (-1 once gone): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return -1


def gone(pid: int, started: int) -> bool:
    """Whether the process ``pid`` that started at ``started`` has exited (a zombie counts as gone)."""
    return start_time(pid) != started or proc_state(pid) in ("", "Z")


def write_atomically(path: str, text: str) -> None:
    Path(path + ".tmp").write_text(text)
    os.replace(path + ".tmp", path)


# -- task functions (shipped by value) ---------------------------------------------------
def square(x: int) -> int:
    return x * x


def getpid() -> int:
    return os.getpid()


def sleep_then(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


# -- 3: one queue, successive event loops --------------------------------------------------
TWO_LOOPS = """\
import json, os, sys, anyio, osiiso
from osiiso import AsyncQueue

first, second = sys.argv[1], sys.argv[2]
q = AsyncQueue(processes=2)
phases = []

def pid():
    return os.getpid()

async def phase():
    handles = [q.submit(pid, backend="process") for _ in range(4)]
    summary = await q.run()
    assert summary.ok, summary.errors
    phases.append(sorted({h.value() for h in handles}))

def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

if first == "osiiso.run":  # a sync script running two phases
    osiiso.run(q.run)
    q.submit(pid, backend="process")
    osiiso.run(q.run)
    osiiso.run(phase)
else:
    anyio.run(phase, backend=first)
    anyio.run(phase, backend=second)
old = [p for p in phases[0] if alive(p)] if len(phases) > 1 else []
async def close():
    await q.shutdown()
anyio.run(close, backend=second if second != "-" else "asyncio")
left = [p for ps in phases for p in ps if alive(p)]
print(json.dumps({"phases": phases, "old_alive_in_second": old, "left": left}), flush=True)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("loops", [("asyncio", "asyncio"), ("trio", "trio"), ("asyncio", "trio"),
                                   ("osiiso.run", "-")], ids=["asyncio-asyncio", "trio-trio", "asyncio-trio",
                                                             "sync-script"])
def test_a_queue_runs_again_on_a_new_event_loop(loops: tuple[str, str], tmp_path: Path) -> None:
    """A queue whose process pool ran on one event loop runs on the next: the pool restarts there."""
    script = tmp_path / "two_loops.py"
    script.write_text(TWO_LOOPS)
    done = subprocess.run([sys.executable, str(script), *loops], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["old_alive_in_second"] == [], "the first loop's workers outlived its pool"
    assert report["left"] == [], "workers outlived shutdown()"
    if loops[0] != "osiiso.run":
        assert not set(report["phases"][0]) & set(report["phases"][1]), "the second loop reused a dead pool"


# -- 4: an initializer that kills its worker ----------------------------------------------
def die_while_starting(path: str, how: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    if how == "exit":
        os._exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    ctypes.string_at(0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["exit", "sigkill", "segfault"])
async def test_an_initializer_that_kills_its_worker_fails_the_task(how: str, tmp_path: Path) -> None:
    """A worker that dies before it is ready is tried a bounded number of times, then the task
    fails with WorkerCrashedError saying it died while starting; the next task too, without a storm."""
    launches = tmp_path / "launches"
    q = AsyncQueue(processes=2, initializer=die_while_starting, initargs=(str(launches), how))
    first = q.submit(square, 3, backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    error = first.exception()
    assert isinstance(error, WorkerCrashedError), first.result()
    assert "while starting" in str(error) and "initializer" in str(error), str(error)
    after_first = len(launches.read_text().split())
    assert after_first <= MOST_LAUNCHES, f"{after_first} launches for one task"
    second = q.submit(square, 4, backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    assert isinstance(second.exception(), WorkerCrashedError) and "while starting" in str(second.exception())
    assert len(launches.read_text().split()) <= after_first + 2, "the next task set off a launch storm"
    with anyio.fail_after(BOUND):
        await q.shutdown()


def die_on_odd_pids(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    if os.getpid() % 2:
        os._exit(3)


async def test_a_task_requeued_after_a_failed_start_runs_once_a_worker_starts(tmp_path: Path) -> None:
    """Jobs sent to a worker that died starting go to the next worker, which runs them once each."""
    launches = tmp_path / "launches"
    q = AsyncQueue(processes=2, initializer=die_on_odd_pids, initargs=(str(launches),))
    handles = q.map(square, range(20), backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    for i, handle in enumerate(handles):  # each ran once, or failed for want of a worker that starts
        result = handle.result()
        assert result.value == i * i or "while starting" in str(result.exception), result
    with anyio.fail_after(BOUND):
        await q.shutdown()


# -- 5: a non-daemon thread left behind ---------------------------------------------------
def leave_a_thread(path: str) -> int:
    stop = threading.Event()
    threading.Thread(target=stop.wait, name="left-behind", daemon=False).start()
    write_atomically(path, str(os.getpid()))
    return os.getpid()


async def test_a_worker_kept_alive_by_a_thread_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    """A clean `async with` exit ends in bounded time when a task left a non-daemon thread behind."""
    marker = str(tmp_path / "pid")
    with anyio.fail_after(BOUND):
        async with AsyncQueue(processes=1) as q:
            handle = q.submit(leave_a_thread, marker, backend="process")
            pid = (await handle).value
            started = start_time(pid)
    assert q.stats["process"]["processes_live"] == 0
    eventually(lambda: gone(pid, started), "the lingering worker to be killed", BOUND)


# -- 6: an initializer that never returns (the thread pool's side is in test_thread_backend_unit.py) --
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def hang_in_initializer(path: str) -> None:
    write_atomically(path, str(os.getpid()))
    time.sleep(3600)


async def test_a_timeout_bounds_an_attempt_whose_worker_hangs_starting(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A process task's timeout runs while its worker starts: a hanging initializer cannot hold it.
    Its attempt never began, so it logs its timeout and its finish but no start."""
    caplog.set_level(logging.DEBUG, logger="osiiso")
    marker = str(tmp_path / "pid")
    q = AsyncQueue(processes=1, initializer=hang_in_initializer, initargs=(marker,))
    handles = [q.submit(square, i, backend="process", timeout=0.5) for i in range(2)]
    with anyio.fail_after(BOUND):
        await q.run()
    for handle in handles:
        assert isinstance(handle.exception(), TaskTimeoutError), handle.result()
        events = [r.event for r in caplog.records if getattr(r, "task_id", None) == handle.task_id  # type: ignore[attr-defined]
                  and getattr(r, "event", None)]
        assert events == ["timeout", "finish"], events
    pid = int(Path(marker).read_text())
    started = start_time(pid)
    with anyio.fail_after(BOUND):
        await q.shutdown()
    eventually(lambda: gone(pid, started), "the stuck worker to be killed", BOUND)


async def test_a_slow_initializer_does_not_eat_the_first_task_s_timeout() -> None:
    """Once its worker has started, a task gets its whole timeout, however long the start took."""
    q = AsyncQueue(processes=1, initializer=sleep_then, initargs=(0.6, None))
    handle = q.submit(slow, 0.6, backend="process", timeout=1.0)
    with anyio.fail_after(BOUND):
        await q.run()
    assert handle.value() == 0.6, handle.result()
    await q.shutdown()


# -- 8: junk on a result pipe ----------------------------------------------------------------
def _result_pipe() -> Connection:
    """The worker's own end of its result pipe (a task should never touch it)."""
    pipes = [o for o in gc.get_objects() if isinstance(o, Connection) and o.writable and not o.closed]
    assert len(pipes) == 1, pipes
    return pipes[0]


def write_junk(kind: str) -> str:
    pipe = _result_pipe()
    if kind == "raw":  # not even a frame: its "length" is the text
        os.write(pipe.fileno(), b"this is not a frame\n")
    elif kind == "frame":  # a frame whose payload is no pickle
        pipe.send_bytes(b"junk junk junk")
    elif kind == "pickle":  # a frame with a pickle that is no report
        pipe.send_bytes(pickle.dumps({"hello": "there"}))
    elif kind == "report":  # a well-formed report for a job this worker never had
        pipe.send_bytes(pickle.dumps([(13, 10**9, True, pickle.dumps("stolen"), 0.0)], 5))
    return "returned"


@pytest.mark.parametrize("kind", ["raw", "frame", "pickle", "report"])
async def test_junk_on_a_result_pipe_fails_that_task_and_the_pool_heals(kind: str) -> None:
    """A worker that writes junk to its result pipe is killed, its task fails, the next tasks run."""
    q = AsyncQueue(processes=1)
    before = q.submit(square, 2, backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    junk = q.submit(write_junk, kind, backend="process")
    after = q.map(square, range(5), backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    assert before.value() == 4
    error = junk.exception()
    assert isinstance(error, WorkerCrashedError) and "result pipe" in str(error), junk.result()
    assert [h.value() for h in after] == [0, 1, 4, 9, 16]
    assert q.stats["process"]["processes_crashed"] == 1
    with anyio.fail_after(BOUND):
        await q.shutdown()


# -- 10: a task that forks -----------------------------------------------------------------
def fork_and_return(how: str) -> tuple[str, int]:
    pid = os.fork()
    if pid == 0:  # the child falls out of the task, as a careless task's child does
        if how == "exit":
            raise SystemExit(5)
        return ("child", os.getpid())
    _, status = os.waitpid(pid, 0)
    return ("parent", os.waitstatus_to_exitcode(status))


@pytest.mark.parametrize("how", ["return", "exit"])
async def test_a_forked_child_never_serves_the_worker_s_pipes(how: str) -> None:
    """A task's forked child that returns (or raises SystemExit) exits; every task gets its own value."""
    q = AsyncQueue(processes=1)
    await q.start()
    for _ in range(3):  # the pool learns that square() is short: jobs then queue in the worker
        await q.submit(square, 0, backend="process")
    forked = q.submit(fork_and_return, how, backend="process")
    squares = q.map(square, range(30), backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    assert forked.value() == ("parent", 5 if how == "exit" else 0)
    assert [h.value() for h in squares] == [i * i for i in range(30)]
    assert q.stats["process"]["processes_crashed"] == 0
    with anyio.fail_after(BOUND):
        await q.shutdown()


# -- 12: a grandchild in a new session ----------------------------------------------------------
def start_escapees(path: str, then: str) -> str:
    """Start a child in a new session and a setsid + double-fork daemon; record both; then hang or return."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            write_atomically(path + ".daemon", f"{os.getpid()} {start_time(os.getpid())}")
            time.sleep(60)
        os._exit(0)
    os.waitpid(pid, 0)
    while not os.path.exists(path + ".daemon"):
        time.sleep(0.001)
    write_atomically(path, f"{child.pid} {start_time(child.pid)}")
    if then == "hang":
        time.sleep(60)
    return "returned"


def _escapees(path: Path) -> list[tuple[int, int]]:
    pairs = [tuple(map(int, p.read_text().split())) for p in (path, Path(str(path) + ".daemon"))]
    return [(pid, started) for pid, started in pairs]


@pytest.fixture
def escapees(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "escapees"
    yield path
    for pid, started in _escapees(path) if path.exists() else []:  # never leak them from a failed run
        if not gone(pid, started):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="descendants are tracked on Linux only")
@pytest.mark.parametrize("how", ["timeout", "cancel", "shutdown"])
async def test_processes_in_a_new_session_die_with_their_task(how: str, escapees: Path) -> None:
    """A task's children that left its process group die on timeout, on cancel and at shutdown."""
    path = str(escapees)
    with anyio.fail_after(BOUND):
        async with AsyncQueue(processes=1) as q:
            if how == "shutdown":
                assert (await q.submit(start_escapees, path, "return", backend="process")).value == "returned"
            else:
                handle = q.submit(start_escapees, path, "hang", backend="process",
                                  timeout=30 if how == "cancel" else 1.0)
                await aeventually(escapees.exists, "the task to start its children", BOUND)
                if how == "cancel":
                    handle.cancel()
                await handle
    assert escapees.exists()
    for pid, started in _escapees(escapees):
        eventually(lambda: gone(pid, started), f"process {pid} to be killed", BOUND)


# -- 17: pickling that raises BaseException ------------------------------------------------------
class Stubborn(BaseException):
    """Not an Exception: a pickle failure of this kind used to escape every handler."""


class Unpicklable:
    def __init__(self, raise_: str) -> None:
        self.raise_ = raise_

    def __reduce__(self) -> Any:
        if self.raise_ == "SystemExit":
            raise SystemExit(4)
        if self.raise_ == "KeyboardInterrupt":
            raise KeyboardInterrupt
        raise Stubborn("no pickling me")


class UnpicklableError(Exception):
    def __reduce__(self) -> Any:
        raise SystemExit(4)


def return_unpicklable(raise_: str) -> Unpicklable:
    return Unpicklable(raise_)


def raise_unpicklable() -> None:
    raise UnpicklableError("cannot travel")


@pytest.mark.parametrize("raise_", ["SystemExit", "KeyboardInterrupt", "Stubborn"])
async def test_a_result_whose_pickling_raises_base_exception_is_a_serialization_error(raise_: str) -> None:
    """The task fails with SerializationError naming the value's type, and the worker lives on."""
    q = AsyncQueue(processes=1)
    first = q.submit(getpid, backend="process")
    bad = q.submit(return_unpicklable, raise_, backend="process")
    err = q.submit(raise_unpicklable, backend="process")
    last = q.submit(getpid, backend="process")
    with anyio.fail_after(BOUND):
        await q.run()
    assert isinstance(bad.exception(), SerializationError), bad.result()
    assert "Unpicklable" in str(bad.exception())
    assert isinstance(err.exception(), RemoteError) and "UnpicklableError" in err.exception().type_name
    assert first.value() == last.value(), "the worker died"
    assert q.stats["process"]["processes_crashed"] == 0
    await q.shutdown()


# -- 20: a big argument for a starting worker -----------------------------------------------------
async def test_a_big_argument_for_a_starting_worker_never_blocks_the_loop() -> None:
    """Sending 16 MB to a worker still in a 3 s initializer leaves the event loop free meanwhile."""
    q = AsyncQueue(processes=1, initializer=sleep_then, initargs=(3.0, None))
    gaps: list[float] = []

    async def tick(stop: anyio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await anyio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    big = b"x" * (16 * 2**20)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tick, stop)
        handle = q.submit(len, big, backend="process")
        with anyio.fail_after(BOUND):
            await q.run()
        stop.set()
    assert handle.value() == len(big)
    assert max(gaps) < 1.5, f"the event loop stalled for {max(gaps):.1f}s"
    await q.shutdown()
