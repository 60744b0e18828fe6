"""The dask backend without a cluster: the missing extra, the options, the trampoline and the error mapping."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import cloudpickle
import pytest

import osiiso
from osiiso import AsyncQueue, RemoteError, SerializationError, WorkerCrashedError
from osiiso.backends.dask import DaskOptions
from osiiso.backends.dask.codec import decode_outcome
from osiiso.backends.dask.remote import run_payload


def test_importing_osiiso_does_not_import_distributed() -> None:
    """import osiiso and building a queue never import dask: the extra is needed only to run dask tasks."""
    code = ("import sys, osiiso; osiiso.AsyncQueue(dask='tcp://127.0.0.1:8786'); "
            "print('distributed' in sys.modules, 'dask' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_a_missing_extra_is_named_when_a_dask_task_is_submitted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without distributed, submitting a dask task raises ModuleNotFoundError naming pip install "osiiso[dask]"."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    q = AsyncQueue()
    with pytest.raises(ModuleNotFoundError, match=r'pip install "osiiso\[dask\]"'):
        q.submit(abs, -1, backend="dask")


@pytest.mark.parametrize(("changes", "needle"), [
    ({"n_workers": 0}, "n_workers"), ({"threads_per_worker": "2"}, "threads_per_worker"),
    ({"capacity": True}, "capacity"), ({"dashboard": 8787}, "dashboard"),
    ({"connect_timeout": 0}, "connect_timeout"), ({"hard_stop": "yes"}, "hard_stop"),
    ({"cluster": 3}, "scheduler address"),
])
def test_dask_options_are_validated(changes: dict[str, object], needle: str) -> None:
    """Each bad DaskOptions field is a ValueError naming it and the bad value."""
    with pytest.raises(ValueError, match=needle) as info:
        DaskOptions(**changes)  # type: ignore[arg-type]
    assert repr(next(iter(changes.values()))) in str(info.value)


def test_coroutine_objects_are_refused_at_submit() -> None:
    """A coroutine object cannot travel to a worker: TypeError at submit, naming the fix."""
    async def work() -> None:
        pass

    coro = work()
    try:
        with pytest.raises(TypeError, match="coroutine function"):
            AsyncQueue().submit(coro, backend="dask")
    finally:
        coro.close()


class _Job:
    """What decode_outcome reads of a bridge job."""

    def __init__(self, raw: object = None, error: BaseException | None = None) -> None:
        self.raw, self.error = raw, error
        self.name, self.key, self.where = "task", "task-1", None


def test_the_trampoline_runs_functions_and_coroutines_and_never_raises() -> None:
    """run_payload returns (True, blob) for a value, a coroutine function's too, and (False, record) for errors."""
    async def double(x: int) -> int:
        return 2 * x

    def interrupt() -> None:
        raise KeyboardInterrupt

    for fn, args, expected in [(lambda x: x + 1, (1,), 2), (double, (4,), 8)]:
        ok, blob = run_payload(cloudpickle.dumps(fn), pickle.dumps((args, {})), None)
        assert ok and pickle.loads(blob) == expected
    raw = run_payload(cloudpickle.dumps(interrupt), pickle.dumps(((), {})), None)
    with pytest.raises(KeyboardInterrupt) as info:
        decode_outcome(_Job(raw), "dask", closing=False)
    assert "interrupt" in str(info.value.__cause__)  # the worker's traceback
    raw = run_payload(b"not a pickle", pickle.dumps(((), {})), None)
    with pytest.raises(SerializationError, match="function"):
        decode_outcome(_Job(raw), "dask", closing=False)


def test_the_trampoline_puts_upstream_values_in_place_of_their_markers() -> None:
    """Each FromUpstream marker (positional or keyword) becomes its upstream's value, unpickled once."""
    from osiiso.backends.dask.remote import FromUpstream

    upstream = [(True, pickle.dumps([1, 2])), (True, pickle.dumps("b"))]
    args = pickle.dumps(((FromUpstream(0), FromUpstream(0), 7), {"k": FromUpstream(1)}))
    ok, blob = run_payload(cloudpickle.dumps(lambda a, b, c, k: (a is b, a, c, k)), args, None, upstream)
    assert ok and pickle.loads(blob) == (True, [1, 2], 7, "b")


def test_the_trampoline_sends_small_values_as_events_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a worker, a value of at most INLINE_BYTES also goes out on the reply topic; a bigger one only returns."""
    from osiiso.backends.dask import remote

    class Worker:
        address = "tcp://127.0.0.1:1"

        def __init__(self) -> None:
            self.events: list[tuple[str, object]] = []

        def log_event(self, topic: str, message: object) -> None:
            self.events.append((topic, message))

    worker = Worker()
    monkeypatch.setattr(remote, "_current_task", lambda: (worker, "key-1"))
    monkeypatch.setattr(remote, "_watch", lambda key, worker, token: None)
    fn = cloudpickle.dumps(lambda n: b"x" * n)
    small = run_payload(fn, pickle.dumps(((10,), {})), None, None, "topic")
    big = run_payload(fn, pickle.dumps(((remote.INLINE_BYTES,), {})), None, None, "topic")
    assert small[0] and big[0] and len(big[1]) > remote.INLINE_BYTES
    assert worker.events == [("topic", ["key-1", small[1]])]


def test_cluster_errors_become_osiiso_errors() -> None:
    """KilledWorker and lost connections become WorkerCrashedError; a closing backend's cancels, forced-close errors."""
    import asyncio

    if not os.environ.get("CI"):  # CI installs the dev extra: there a missing distributed fails
        pytest.importorskip("distributed", reason='distributed is not installed: pip install -e ".[dask]"')
    from distributed.scheduler import KilledWorker

    class _Worker:
        address = "tcp://127.0.0.1:1"

    with pytest.raises(WorkerCrashedError, match="127.0.0.1:1"):
        decode_outcome(_Job(error=KilledWorker("task-1", _Worker(), 0)), "dask", closing=False)
    with pytest.raises(WorkerCrashedError, match="lost"):
        decode_outcome(_Job(error=OSError("connection reset")), "dask", closing=False)
    with pytest.raises(osiiso.TaskCancelledError, match="cluster cancelled"):
        decode_outcome(_Job(error=asyncio.CancelledError()), "dask", closing=False)
    with pytest.raises(osiiso.TaskCancelledError, match="force=True"):
        decode_outcome(_Job(error=asyncio.CancelledError()), "dask", closing=True)
    missing = ModuleNotFoundError("No module named 'osiiso'", name="osiiso")
    with pytest.raises(ModuleNotFoundError, match="install osiiso"):
        decode_outcome(_Job(error=missing), "dask", closing=False)
    with pytest.raises(RemoteError):
        decode_outcome(_Job((False, ("remote", "x.Y", "no", "tb"))), "dask", closing=False)
