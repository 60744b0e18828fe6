"""Unit tests of the process backend, driven directly (no queue).

Loop-sensitive behaviour (results, errors, cancellation) runs on asyncio, uvloop and
trio; process-heavy behaviour (crashes, kills, recycling) on asyncio only, where the
loop does not matter. Tests synchronise on files written by the workers.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import cloudpickle
import pytest
from procutil import proc_state
from support import ASYNCIO, aeventually, eventually, loop_params

from osiiso._errors import RemoteError, SerializationError, TaskCancelledError, WorkerCrashedError
from osiiso.backends.base import Attempt, BackendConfig, forced_close_error
from osiiso.backends.process import ProcessBackend
from osiiso.backends.process.codec import RemoteTraceback
from osiiso.backends.process.launch import unreaped

# Ship this module's functions by value: workers then never import the test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
WAIT = 20.0  # generous upper bound for anything crossing a process boundary
REPO = Path(__file__).resolve().parents[2]
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", loop_params(ASYNCIO))


@pytest.fixture(params=loop_params())
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """The event loop a test runs on."""
    return request.param


class _Clock:
    """Stands in for the engine's clock: records hold/restart/batch calls and where the attempt ran."""

    def __init__(self, restart: Callable[[], None] | None) -> None:
        self._restart = restart
        self.holds = self.batched = 0
        self.where = ""

    def hold(self, task: object) -> None:
        self.holds += 1

    def batch(self, task: object) -> bool:
        self.batched += 1
        return True

    def restart(self, task: object, at: float | None = None) -> None:
        if self._restart is not None:
            self._restart()

    def attempt_began(self, task: object) -> None:
        pass

    def ran_on(self, task: object, where: str) -> None:
        self.where = where


def attempt(fn: Callable[..., Any], *args: Any, timeout: float | None = None,
            restart: Callable[[], None] | None = None, clock: _Clock | None = None, **kwargs: Any) -> Attempt:
    return Attempt(fn, args, kwargs, 1, timeout, None, clock or _Clock(restart))


@asynccontextmanager
async def open_backend(processes: int = 2, **config: Any) -> AsyncIterator[ProcessBackend]:
    backend = ProcessBackend(BackendConfig(workers=8, threads=2, processes=processes, **config))
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose(force=True)


def is_dead(pid: int) -> bool:
    return proc_state(pid) in ("", "Z")


# -- task functions (shipped by value) ---------------------------------------------------
def square(x: int) -> int:
    return x * x


def getpid(_: object = None) -> int:
    return os.getpid()


def touch_and_wait(started: str, release: str) -> int:
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + WAIT
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.002)
    return os.getpid()


def write_file(path: str) -> str:
    Path(path).write_text("ran")
    return "ran"


def spawn_child_and_hang(path: str) -> None:
    child = subprocess.Popen(["sleep", "60"])
    Path(path + ".tmp").write_text(f"{os.getpid()} {child.pid}")
    os.replace(path + ".tmp", path)
    time.sleep(60)


class Boom(Exception):
    pass


class TwoArgError(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def raise_boom() -> None:
    raise Boom("it broke")


def raise_two_arg() -> None:
    raise TwoArgError(1, 2)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def crash_exit() -> None:
    os._exit(3)


def crash_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_segfault() -> None:
    ctypes.string_at(0)


async def async_double(x: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return 2 * x


def sigint_self() -> str:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)
    return "still here"


def record_init(path: str, tag: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    os.environ["OSIISO_TEST_INIT"] = os.environ.get("OSIISO_TEST_INIT", "") + tag


def init_state(_: object = None) -> tuple[int, str]:
    return os.getpid(), os.environ.get("OSIISO_TEST_INIT", "")


def failing_init() -> None:
    raise Boom("init broke")


class CountingCall:
    """A callable that appends a line to a file each time it is unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, x: int) -> int:
        return x + 1

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.path = state["path"]
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")


def open_files(_: object = None) -> list[str]:
    files = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            files.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the listing's own descriptor
            pass
    return files


# -- results, shipping, errors (every loop) ------------------------------------------------
async def test_lambdas_closures_and_plain_functions_run() -> None:
    """Lambdas, closures and lambda arguments travel to the workers and return values."""
    offset = 10
    async with open_backend() as backend:
        assert await backend.run(attempt(lambda x: x + offset, 5)) == 15
        assert await backend.run(attempt(square, 7)) == 49
        assert await backend.run(attempt(lambda f: f(3), lambda y: y * 3)) == 9
        assert await backend.run(attempt(square, x=4)) == 16


async def test_coroutine_function_runs_on_a_loop_in_the_worker() -> None:
    """An async function given to the process backend runs to completion in the worker."""
    async with open_backend(processes=1) as backend:
        assert await backend.run(attempt(async_double, 21)) == 42


async def test_exception_comes_back_as_itself_with_remote_traceback() -> None:
    """A worker's exception is raised as its own type with the worker traceback as __cause__."""
    async with open_backend(processes=1) as backend:
        with pytest.raises(Boom, match="it broke") as info:
            await backend.run(attempt(raise_boom))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in raise_boom" in str(cause) and "Boom: it broke" in str(cause)


async def test_exception_that_cannot_round_trip_becomes_remote_error() -> None:
    """An exception whose __init__ breaks unpickling arrives as RemoteError, not as a crash."""
    async with open_backend(processes=1) as backend:
        with pytest.raises(RemoteError) as info:
            await backend.run(attempt(raise_two_arg))
        assert info.value.type_name.endswith("TwoArgError")
        assert "1 and 2" in str(info.value) and "raise_two_arg" in info.value.remote_traceback
        assert backend.stats()["processes_crashed"] == 0
        assert await backend.run(attempt(square, 3)) == 9


async def test_unpicklable_argument_result_and_function_fail_only_that_task() -> None:
    """An unpicklable argument, result or function raises SerializationError; the pool still works."""
    lock = threading.Lock()
    async with open_backend(processes=1) as backend:
        with pytest.raises(SerializationError, match=r"argument 0 of 'square'.*_thread\.lock"):
            await backend.run(attempt(square, lock))
        with pytest.raises(SerializationError, match=r"result of '<lambda>'.*_thread\.lock.*plain data"):
            await backend.run(attempt(lambda: threading.Lock()))
        with pytest.raises(SerializationError, match=r"function '<lambda>'"):
            await backend.run(attempt(lambda: lock))
        assert await backend.run(attempt(square, 6)) == 36
        assert backend.stats()["processes_crashed"] == 0


async def test_keyboard_interrupt_inside_a_task_fails_that_task() -> None:
    """KeyboardInterrupt raised inside a task comes back as that task's error; the worker lives on."""
    async with open_backend(processes=1) as backend:
        pid = await backend.run(attempt(getpid))
        with pytest.raises(KeyboardInterrupt):
            await backend.run(attempt(raise_keyboard_interrupt))
        assert await backend.run(attempt(getpid)) == pid


async def test_cancel_of_a_queued_job_skips_it_and_kills_nothing(tmp_path: Path) -> None:
    """Cancelling a job queued behind a running one means it never runs and no worker dies."""
    started, release, skipped = (str(tmp_path / n) for n in ("started", "release", "skipped"))
    async with open_backend(processes=1) as backend:
        for _ in range(3):  # learn that write_file is short, so it is queued inside the worker
            await backend.run(attempt(write_file, str(tmp_path / "warm")))
        results: list[int] = []

        async def long_job() -> None:
            results.append(await backend.run(attempt(touch_and_wait, started, release)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_job)
            await aeventually(lambda: os.path.exists(started), "the long job to start", WAIT)
            with anyio.CancelScope() as scope:
                scope.cancel()
                await backend.run(attempt(write_file, skipped))
            Path(release).write_text("go")
        assert not os.path.exists(skipped)
        assert results == [int(Path(started).read_text())]
        assert backend.stats()["processes_killed"] == 0
        assert await backend.run(attempt(getpid)) == results[0]


async def test_cancel_of_a_job_waiting_in_the_parent_never_sends_it(tmp_path: Path) -> None:
    """A job held in the parent (no free worker) is dropped on cancel without touching any worker."""
    started, release, never = (str(tmp_path / n) for n in ("started", "release", "never"))
    async with open_backend(processes=1) as backend:
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.run, attempt(touch_and_wait, started, release))
            await aeventually(lambda: os.path.exists(started), "the long job to start", WAIT)
            with anyio.move_on_after(0.05):
                await backend.run(attempt(lambda p: Path(p).write_text("ran"), never))
            Path(release).write_text("go")
        assert await backend.run(attempt(getpid)) == int(Path(started).read_text())
        assert not os.path.exists(never)
        assert backend.stats()["processes_killed"] == 0


@ASYNCIO_ONLY
async def test_forced_aclose_kills_running_jobs() -> None:
    """aclose(force=True) fails jobs in flight with TaskCancelledError and leaves no worker."""
    outcomes: list[object] = []
    backend = ProcessBackend(BackendConfig(workers=2, threads=1, processes=2))

    async def job() -> None:
        try:
            outcomes.append(await backend.run(attempt(time.sleep, 30)))
        except TaskCancelledError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(job)
        await aeventually(lambda: backend.stats()["processes_live"] == 2, "both workers to start", WAIT)
        await backend.aclose(force=True)
    assert len(outcomes) == 3 and all(isinstance(o, TaskCancelledError) for o in outcomes)
    assert {str(o) for o in outcomes} == {str(forced_close_error("process"))}
    assert backend.stats() == {"processes_live": 0, "processes_crashed": 0, "processes_killed": 0,
                               "processes_batched": 0}


# -- process-heavy behaviour (asyncio only) -----------------------------------------------
@ASYNCIO_ONLY
async def test_function_is_shipped_once_per_worker(tmp_path: Path) -> None:
    """The same callable is unpickled once per worker, not once per task."""
    log = tmp_path / "unpickled"
    fn = CountingCall(str(log))
    async with open_backend(processes=2) as backend:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(backend.run, attempt(fn, i))
        assert await backend.run(attempt(fn, 1)) == 2
    lines = log.read_text().split()
    assert 1 <= len(lines) <= 2 and len(set(lines)) == len(lines)


@ASYNCIO_ONLY
async def test_timeout_kills_worker_and_its_children_and_refills_the_slot(tmp_path: Path) -> None:
    """Cancelling a running job kills its worker and the worker's child; a fresh worker replaces it."""
    marker = str(tmp_path / "pids")
    async with open_backend(processes=1) as backend:
        with anyio.move_on_after(WAIT) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(backend.run, attempt(spawn_child_and_hang, marker, timeout=30.0))
                await aeventually(lambda: os.path.exists(marker), "the task to start its child", WAIT)
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        worker, child = map(int, Path(marker).read_text().split())
        await aeventually(lambda: is_dead(worker) and is_dead(child), "the worker and its child to die", WAIT)
        assert backend.stats()["processes_killed"] == 1
        assert backend.stats()["processes_crashed"] == 0
        new_pid = await backend.run(attempt(getpid))
        assert new_pid != worker
        await aeventually(lambda: backend.stats()["processes_live"] == 1, "the slot to be refilled", WAIT)


@ASYNCIO_ONLY
async def test_restart_clock_called_when_a_queued_job_really_starts(tmp_path: Path) -> None:
    """A job with a timeout queued behind another restarts its clock when it starts executing."""
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    restarts: list[str] = []
    async with open_backend(processes=1) as backend:
        for _ in range(3):
            await backend.run(attempt(square, 2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.run, attempt(touch_and_wait, started, release))
            await aeventually(lambda: os.path.exists(started), "the long job to start", WAIT)

            clock = _Clock(restart=lambda: restarts.append("restart"))

            async def queued() -> None:
                assert await backend.run(attempt(square, 5, timeout=10.0, clock=clock)) == 25

            tg.start_soon(queued)
            await aeventually(lambda: clock.holds == 1, "the backend to hold the queued job's clock", WAIT)
            assert restarts == []  # still waiting behind the long job
            Path(release).write_text("go")
        assert restarts == ["restart"]


@ASYNCIO_ONLY
@pytest.mark.parametrize("crash", [crash_exit, crash_sigkill, crash_segfault],
                         ids=["os._exit", "SIGKILL", "segfault"])
async def test_crash_fails_only_that_task_and_the_pool_heals(crash: Callable[[], None]) -> None:
    """A worker dying mid-task fails only that task with WorkerCrashedError; others succeed."""
    outcomes: dict[object, object] = {}
    async with open_backend(processes=2) as backend:
        for _ in range(3):
            await backend.run(attempt(square, 1))

        async def one(key: object, fn: Callable[..., Any], *args: Any) -> None:
            try:
                outcomes[key] = await backend.run(attempt(fn, *args))
            except WorkerCrashedError as exc:
                outcomes[key] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "crash", crash)
            for i in range(30):
                tg.start_soon(one, i, square, i)
        error = outcomes.pop("crash")
        assert outcomes == {i: i * i for i in range(30)}
        assert isinstance(error, WorkerCrashedError) and error.pid is not None
        expected = {crash_exit: (3, None), crash_sigkill: (-9, "SIGKILL"), crash_segfault: (-11, "SIGSEGV")}
        assert (error.exitcode, error.signal_name) == expected[crash]
        assert str(error.pid) in str(error) and crash.__name__ in str(error)
        assert backend.stats()["processes_crashed"] == 1
        await aeventually(lambda: backend.stats()["processes_live"] == 2, "the pool to heal", WAIT)
        assert await backend.run(attempt(square, 9)) == 81


def _idle() -> None:
    """A process of the user's own that does nothing."""


@ASYNCIO_ONLY
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork with threads
@pytest.mark.parametrize("method", ["forkserver", "fork"])
async def test_exit_codes_are_read_right_while_another_thread_uses_multiprocessing(method: str) -> None:
    """A user's thread that starts processes and lists its children never garbles a crash's exit code.

    ``Process.start()`` and ``active_children()`` poll every child multiprocessing lists; a
    worker on that list could have its exit report read by that thread, and its supervisor
    then read end-of-file and record exit code 255.
    """
    stop = threading.Event()
    started = threading.Event()

    def meddle() -> None:
        ctx = multiprocessing.get_context("fork" if method == "fork" else "spawn")
        own = ctx.Process(target=_idle)
        own.start()
        started.set()
        while not stop.is_set():
            multiprocessing.active_children()
        own.join()

    meddler = threading.Thread(target=meddle, daemon=True)
    meddler.start()
    try:
        assert started.wait(WAIT)
        codes: list[int | None] = []
        async with open_backend(processes=2, mp_context=method) as backend:
            async def one() -> None:
                with pytest.raises(WorkerCrashedError) as info:
                    await backend.run(attempt(crash_exit))
                codes.append(info.value.exitcode)

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
            assert backend.stats()["processes_crashed"] == 40
    finally:
        stop.set()
        meddler.join(WAIT)
    assert codes == [3] * 40
    assert not multiprocessing.active_children() or all(
        not p.name.startswith("osiiso-process-") for p in multiprocessing.active_children())


@ASYNCIO_ONLY
async def test_jobs_queued_on_a_crashed_worker_are_resent(tmp_path: Path) -> None:
    """Jobs waiting inside a worker that crashes are run by its replacement, not failed."""
    async with open_backend(processes=1) as backend:
        for _ in range(3):
            await backend.run(attempt(square, 1))
        outcomes: list[object] = []

        async def one(fn: Callable[..., Any], *args: Any) -> None:
            try:
                outcomes.append(await backend.run(attempt(fn, *args)))
            except WorkerCrashedError as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, crash_exit)
            await anyio.sleep(0)
            for i in range(3):
                tg.start_soon(one, square, i)
        assert sum(isinstance(o, WorkerCrashedError) for o in outcomes) == 1
        assert sorted(o for o in outcomes if isinstance(o, int)) == [0, 1, 4]


@ASYNCIO_ONLY
async def test_initializer_runs_once_in_every_worker(tmp_path: Path) -> None:
    """initializer(*initargs) runs once per worker process before its first task."""
    log = tmp_path / "init"
    async with open_backend(processes=2, initializer=record_init, initargs=(str(log), "x")) as backend:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(backend.run, attempt(init_state))
        state = await backend.run(attempt(init_state))
        await aeventually(lambda: len(log.read_text().split()) == 2, "both workers to initialize", WAIT)
    pids = log.read_text().split()
    assert len(set(pids)) == 2 and state[0] in map(int, pids) and state[1] == "x"


@ASYNCIO_ONLY
async def test_failing_initializer_fails_tasks_with_its_error() -> None:
    """A raising initializer makes that worker's tasks fail with an error naming it."""
    async with open_backend(processes=1, initializer=failing_init) as backend:
        with pytest.raises(RuntimeError, match="initializer") as info:
            await backend.run(attempt(square, 2))
        assert isinstance(info.value.__cause__, Boom)


@ASYNCIO_ONLY
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork with threads
@pytest.mark.parametrize("method", ["forkserver", "fork"])
async def test_max_tasks_per_child_recycles_workers(method: str) -> None:
    """With max_tasks_per_child=2 a worker is replaced after every second task."""
    async with open_backend(processes=2, max_tasks_per_child=2, mp_context=method) as backend:
        pids = [await backend.run(attempt(getpid)) for _ in range(12)]
        assert backend.stats()["processes_crashed"] == 0
    assert len(set(pids)) >= 6 and max(pids.count(pid) for pid in pids) == 2


@ASYNCIO_ONLY
async def test_workers_ignore_sigint() -> None:
    """SIGINT sent to a worker (as by Ctrl-C) neither kills it nor fails its task."""
    async with open_backend(processes=1) as backend:
        pid = await backend.run(attempt(getpid))
        assert await backend.run(attempt(sigint_self)) == "still here"
        os.kill(pid, signal.SIGINT)
        assert await backend.run(attempt(getpid)) == pid


@ASYNCIO_ONLY
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
async def test_workers_do_not_inherit_unrelated_descriptors(method: str) -> None:
    """An inheritable descriptor of the parent is not open in the workers."""
    r, w = os.pipe()
    os.set_inheritable(w, True)
    ours = f"pipe:[{os.fstat(w).st_ino}]"
    try:
        async with open_backend(processes=1, mp_context=method) as backend:
            files = await backend.run(attempt(open_files))
    finally:
        os.close(r)
        os.close(w)
    assert ours not in files
    assert len(files) <= 12, files


@ASYNCIO_ONLY
@pytest.mark.parametrize("method", ["forkserver", "fork"])
async def test_workers_start_on_demand_up_to_processes(method: str, tmp_path: Path) -> None:
    """Tasks run one at a time need one worker; tasks that wait for a worker start more, up to processes."""
    async with open_backend(processes=2, mp_context=method) as backend:
        assert backend.stats()["processes_live"] == 0
        first = {await backend.run(attempt(getpid)) for _ in range(5)}
        assert len(first) == 1 and backend.stats()["processes_live"] == 1
        marks = [str(tmp_path / f"started-{i}") for i in range(2)]
        release = str(tmp_path / "release")
        pids: list[int] = []

        async def hold(mark: str) -> None:
            pids.append(await backend.run(attempt(touch_and_wait, mark, release)))

        async with anyio.create_task_group() as tg:
            for mark in marks:
                tg.start_soon(hold, mark)
            await aeventually(lambda: all(os.path.exists(m) for m in marks), "both tasks to run at once", WAIT)
            assert backend.stats()["processes_live"] == 2
            Path(release).write_text("go")
        assert len(set(pids)) == 2
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(backend.run, attempt(square, 3))
        assert backend.stats()["processes_live"] == 2  # never more than processes=2


def _broken_context(method: str) -> Any:
    """A multiprocessing context of ``method`` whose processes fail to start (as at a process limit)."""
    base = multiprocessing.get_context(method)

    class BrokenProcess(base.Process):  # type: ignore[name-defined,misc]
        def start(self) -> None:
            raise OSError(11, "Resource temporarily unavailable")

    class BrokenContext(type(base)):  # type: ignore[misc]
        Process = BrokenProcess

    return BrokenContext()


@ASYNCIO_ONLY
@pytest.mark.parametrize("method", ["forkserver", "fork"])
async def test_a_worker_that_cannot_start_fails_the_task_instead_of_hanging(
        method: str, caplog: pytest.LogCaptureFixture) -> None:
    """When no worker process can be started, each task fails with WorkerCrashedError at once."""
    async with open_backend(processes=2, mp_context=_broken_context(method)) as backend:
        for _ in range(2):  # the second comes while launches are paused after the failure
            with anyio.fail_after(WAIT), pytest.raises(WorkerCrashedError, match="could not start a worker"):
                await backend.run(attempt(square, 2))
        assert backend.stats()["processes_live"] == 0
    assert "could not start a worker process" in caplog.text


@ASYNCIO_ONLY
async def test_aclose_leaves_no_process_behind() -> None:
    """After aclose() no worker, zombie or I/O thread of the pool remains; a later run opens a new pool."""
    async with open_backend(processes=2) as backend:
        pids: set[int] = set()

        async def one() -> None:
            pids.add(await backend.run(attempt(getpid)))

        async with anyio.create_task_group() as tg:  # together, so that both workers start
            for _ in range(10):
                tg.start_soon(one)
        live = backend.stats()["processes_live"]
    assert live == 2
    assert not [proc for proc in unreaped() if proc.pid in pids]
    assert all(proc_state(pid) == "" for pid in pids)  # gone: reaped, not a zombie
    assert not [t for t in threading.enumerate() if t.name == "osiiso-process-io"]
    assert backend.stats()["processes_live"] == 0
    # a closed backend opens a fresh pool when used again (a queue run again on a new event loop)
    assert await backend.run(attempt(getpid)) not in pids
    await backend.aclose()
    assert not [t for t in threading.enumerate() if t.name == "osiiso-process-io"]


@ASYNCIO_ONLY
async def test_graceful_aclose_finishes_jobs_in_flight(tmp_path: Path) -> None:
    """aclose() without force waits for the running job and returns its value to its caller."""
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    results: list[int] = []
    backend = ProcessBackend(BackendConfig(workers=2, threads=1, processes=1))

    async def job() -> None:
        results.append(await backend.run(attempt(touch_and_wait, started, release)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(job)
        await aeventually(lambda: os.path.exists(started), "the job to start", WAIT)
        tg.start_soon(backend.aclose)
        # aclose has taken the pool (no live worker counted any more) and waits for the job
        await aeventually(lambda: backend.stats()["processes_live"] == 0, "aclose to take the pool", WAIT)
        assert results == []
        Path(release).write_text("go")
    assert results == [int(Path(started).read_text())]


def test_mp_context_is_validated() -> None:
    """mp_context accepts start-method names and contexts; anything else is a ValueError."""
    config = BackendConfig(workers=1, threads=1, processes=1, mp_context="bogus")
    with pytest.raises(ValueError, match=r"mp_context.*'bogus'.*spawn"):
        ProcessBackend(config)
    ProcessBackend(BackendConfig(workers=1, threads=1, processes=1,
                                 mp_context=multiprocessing.get_context("spawn")))
    backend = ProcessBackend(BackendConfig(workers=1, threads=1, processes=3))
    assert backend.capacity >= 6


# -- whole-interpreter behaviour (subprocesses) ------------------------------------------
SCRIPT = """\
import os, sys, anyio
print("IMPORTED", os.getpid(), flush=True)
from osiiso.backends.base import Attempt, BackendConfig
from osiiso.backends.process import ProcessBackend

def shout(x):
    print("WORKER SAYS", x, flush=True)
    return x * 2

async def main():
    backend = ProcessBackend(BackendConfig(workers=2, threads=1, processes=2, mp_context=sys.argv[1]))
    a = await backend.run(Attempt(shout, (21,), {}, 1, None))
    b = await backend.run(Attempt(lambda: os.getpid(), (), {}, 1, None))
    print("RESULT", a, b != os.getpid(), flush=True)
    if sys.argv[2] == "close":
        await backend.aclose()

anyio.run(main)
"""


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "no_main_guard.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=WAIT * 2, env=env, cwd=tmp_path)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_script_without_main_guard_is_never_rerun(tmp_path: Path, method: str) -> None:
    """A script with no __main__ guard runs once; workers run its functions and print to its stdout."""
    done = run_script(tmp_path, method, "close")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("IMPORTED") == 1, done.stdout
    assert "WORKER SAYS 21" in done.stdout and "RESULT 42 True" in done.stdout


def test_unclosed_pool_does_not_hang_interpreter_exit(tmp_path: Path) -> None:
    """A script that never closes its pool still exits promptly, leaving no worker behind."""
    done = run_script(tmp_path, "forkserver", "leave-open")
    assert done.returncode == 0, done.stderr
    assert "RESULT 42 True" in done.stdout
    assert not done.stderr.strip(), done.stderr


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """When the parent is SIGKILLed mid-task, its worker (and the task's child) exit soon after."""
    marker = tmp_path / "pids"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""\
        import anyio, os, subprocess, time
        from osiiso.backends.base import Attempt, BackendConfig
        from osiiso.backends.process import ProcessBackend

        def hang(path):
            child = subprocess.Popen(["sleep", "60"])
            open(path + ".tmp", "w").write(f"{{os.getpid()}} {{child.pid}}")
            os.replace(path + ".tmp", path)
            time.sleep(60)

        async def main():
            backend = ProcessBackend(BackendConfig(workers=1, threads=1, processes=1))
            await backend.run(Attempt(hang, ({str(marker)!r},), {{}}, 1, None))

        anyio.run(main)
        """))
    parent = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        eventually(lambda: marker.exists() or parent.poll() is not None, "the task to start", WAIT)
        assert marker.exists(), f"the parent exited ({parent.returncode}) before the task started"
        worker, child = map(int, marker.read_text().split())
    finally:
        parent.kill()
        parent.wait()
    eventually(lambda: is_dead(worker) and is_dead(child), "the orphaned worker and its child to exit", WAIT)
