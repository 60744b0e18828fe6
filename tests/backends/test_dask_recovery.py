"""The dask backend when the cluster loses a worker or the scheduler under queued and running tasks.

A worker that dies fails only the task it was running: the tasks it held that had not begun
go again, no attempt charged (the embedded cluster, whose worker holds every task it is
given, killed by SIGKILL or restarted by ``hard_stop``). A lost scheduler connection is a
`WorkerCrashedError` the task's retries answer, and once the client has given up, a
``ConnectionError`` that names the scheduler (an operator's ``dask scheduler`` killed by PID).
Each test synchronises on files the tasks write, never on sleeps.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support import ASYNCIO, aeventually, announced

from osiiso import AsyncQueue, TaskStatus, TaskTimeoutError, WorkerCrashedError

if not os.environ.get("CI"):  # CI installs the dev extra: there a missing distributed fails
    pytest.importorskip("distributed", reason='distributed is not installed: pip install -e ".[dask]"')

import cloudpickle  # noqa: E402
from dask_cluster import OperatorCluster  # noqa: E402

from osiiso.backends.dask import DaskOptions  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]


@pytest.fixture(autouse=True, scope="module")
def by_value() -> Iterator[None]:
    """This module's functions travel by value: the workers have osiiso on their path, not the tests."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def anyio_backend() -> object:
    return ASYNCIO


def mark_and_wait(folder: str, name: str, seconds: float) -> int:
    """Append this call's start to ``folder/name`` and write the worker's PID to ``folder/pid``, then wait."""
    with open(os.path.join(folder, name), "a") as f:
        f.write("began\n")
    Path(folder, "pid.tmp").write_text(str(os.getpid()))
    os.replace(os.path.join(folder, "pid.tmp"), os.path.join(folder, "pid"))
    time.sleep(seconds)
    return os.getpid()


def wait_for_gate(folder: str, gate: str) -> str:
    """Write ``folder/started``, then wait (at most 60 s) until ``gate`` exists."""
    Path(folder, "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "through"


def tasks_on_workers(address: str) -> int:
    """How many tasks the scheduler at ``address`` has handed to its workers (running or queued there)."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        return sum(len(keys) for keys in client.processing().values())


@pytest.mark.parametrize("how", ["SIGKILL", "hard_stop"])
async def test_a_worker_that_dies_fails_only_the_task_it_was_running(
        how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded cluster of one worker holding four tasks: killing it (or hard_stop restarting it after the
    first task's timeout) fails the first task only; the three that had not begun run again, each exactly
    once, on attempt 1, and the backend counts them as resent."""
    import dask.config

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    folder = str(tmp_path)
    options = DaskOptions(n_workers=1, hard_stop=how == "hard_stop")
    # every task goes to the one worker at once (none waits at the scheduler): they all die with it
    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf"), "scheduler-address": None}):
        async with AsyncQueue(dask=options) as q:
            timeout = 5.0 if how == "hard_stop" else None
            first = q.submit(mark_and_wait, folder, "first", 60, backend="dask", timeout=timeout)
            await aeventually(lambda: Path(folder, "pid").exists() and announced(q, first), "the first task to begin",
                              timeout=60)
            address = q._engine.lanes["dask"].backend._link.address  # type: ignore[attr-defined]
            others = [q.submit(mark_and_wait, folder, f"other{i}", 0, backend="dask") for i in range(3)]
            await aeventually(lambda: tasks_on_workers(address) == 4, "all four tasks on the worker", timeout=60)
            victim = int(Path(folder, "pid").read_text())
            if how == "SIGKILL":
                os.kill(victim, signal.SIGKILL)
            result = await first
            if how == "SIGKILL":
                assert isinstance(result.exception, WorkerCrashedError) and "died" in result.message, result
            else:
                assert isinstance(result.exception, TaskTimeoutError), result
            for handle in others:
                done = await handle
                assert done.ok and done.attempts == 1 and done.value != victim, done
                assert [t.outcome for t in done.timings] == ["ok"], done.timings
            assert q.stats["dask"]["dask_resent"] == 3
    assert Path(folder, "first").read_text() == "began\n"
    for i in range(3):
        assert Path(folder, f"other{i}").read_text() == "began\n", f"other{i} ran more than once, or never"


@pytest.fixture
def lone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorCluster]:
    """A scheduler and one worker of this test's own (the test kills the scheduler); all stopped after."""
    running = OperatorCluster(tmp_path_factory.mktemp("dask-lone"), workers=1).start()
    try:
        yield running
    finally:
        running.stop()
    assert running.leftovers() == [], f"processes of the dask cluster are still running: {running.leftovers()}"


async def test_a_lost_scheduler_is_a_crash_that_retries_answer_then_a_connection_error(
        lone_cluster: OperatorCluster, tmp_path: Path) -> None:
    """SIGKILL of the scheduler under a running task: its attempt is lost (WorkerCrashedError, retried, not
    cancelled); once the client gives up reconnecting, the retries and every new task fail with a
    ConnectionError naming the scheduler's address and the fix."""
    folder, gate = str(tmp_path), str(tmp_path / "gate")
    try:
        async with AsyncQueue(dask=DaskOptions(cluster=lone_cluster.address, connect_timeout=2)) as q:
            handle = q.submit(wait_for_gate, folder, gate, backend="dask", retries=2)
            await aeventually(lambda: Path(folder, "started").exists(), "the task to begin", timeout=60)
            os.kill(lone_cluster.procs[0].pid, signal.SIGKILL)  # the scheduler, the cluster's first process
            result = await handle
            assert result.status is TaskStatus.FAILED and result.attempts == 3, result
            assert result.timings[0].outcome == "crashed", result.timings
            assert isinstance(result.exception, (WorkerCrashedError, ConnectionError)), result
            link = q._engine.lanes["dask"].backend._link  # type: ignore[attr-defined]
            await aeventually(lambda: link.client.status == "closed", "the client to give up", timeout=60)
            after = await q.submit(abs, -1, backend="dask", retries=1)
            assert after.status is TaskStatus.FAILED and type(after.exception) is ConnectionError, after
            assert lone_cluster.address in after.message and "start the scheduler again" in after.message
    finally:
        await anyio.Path(gate).write_text("open")  # lets the worker's call end before the cluster stops
