"""The worker's side of the dask backend: `run_payload`, the one function osiiso ships to dask.

Every dask attempt is ``run_payload(fn_blob, args_blob, topic, upstream)`` on dask: dask imports
this module on the worker (so the worker needs osiiso and cloudpickle installed, not the
user's code), and the payload carries the user's function as a cloudpickle (functions from
``__main__``, lambdas and closures travel by value) and its arguments as a pickle. The
trampoline

* announces the start on ``topic`` (``[key, worker address, pid]``, a dask event the parent
  subscribes to) before any of the task's code runs (the backend asks it of every attempt): the
  attempt's timing (and a timeout's clock) starts there, ``hard_stop`` knows which worker to
  restart, and a job whose worker died without announcing it never began (it goes again);
* gives the call a `osiiso._cancel.CancelToken`, raised by a watcher thread as soon as the
  worker releases the task (its future was cancelled: a timeout or a cancel), so that
  ``osiiso.cancelled()`` works inside dask tasks as inside thread tasks;
* puts the values of the upstream futures it was given (``upstream``, see `.chains`) in place
  of their `FromUpstream` markers;
* runs the call (a coroutine function on a private event loop, to completion), and returns
  ``(True, result_blob)`` or ``(False, error_record)``: it never raises, so dask only ever
  moves bytes, and errors travel in the process backend's records (``child.encode_error``),
  the task's own exception with the worker's traceback;
* sends a small value also as an event on ``reply`` (the client's topic), so the client has it
  without a ``gather``.
"""

from __future__ import annotations

import inspect
import os
import pickle
import threading
from typing import Any

from ..._cancel import CancelToken, use_token
from ..process.child import dumps_value, encode_error, result_failure

__all__ = ("FromUpstream", "run_payload")

#: a value pickled to at most this many bytes also goes back as an event on ``reply`` (see `run_payload`)
INLINE_BYTES = 1024

#: seconds between two looks at the worker's task states while tokens are watched
POLL = 0.05

_watched: dict[str, tuple[Any, CancelToken]] = {}
_lock = threading.Lock()
_wake = threading.Event()
_watcher: threading.Thread | None = None


class FromUpstream:
    """In a dependent's arguments: "the value of upstream number ``index``" (see `.chains`)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[type[FromUpstream], tuple[int]]:
        return FromUpstream, (self.index,)


def run_payload(fn_blob: bytes, args_blob: bytes, topic: str | None,
                upstream: list[tuple[bool, Any]] | None = None, reply: str | None = None) -> tuple[bool, Any]:
    """Run one attempt on a dask worker; return ``(ok, result blob or error record)``.

    ``reply``: a topic on which a small value (`INLINE_BYTES`) is also sent, as ``[key, blob]``:
    events ride the worker's and the scheduler's batched streams, so the parent has the value
    without asking for it (a ``gather`` is a request through the scheduler to this worker).

    ``upstream``: the results of the upstream attempts whose futures the dependent was sent
    (dask puts them here from where they lie); each `FromUpstream` among the arguments
    becomes that result's value, unpickled once however often it is used.
    """
    worker, key = _current_task()
    if topic is not None and worker is not None:
        worker.log_event(topic, [str(key), str(worker.address), os.getpid()])
    token = CancelToken()
    if worker is not None:
        _watch(key, worker, token)
    use_token(token)
    try:
        outcome = _call(fn_blob, args_blob, upstream)
        if reply is not None and worker is not None and outcome[0] and len(outcome[1]) <= INLINE_BYTES:
            worker.log_event(reply, [str(key), outcome[1]])
        return outcome
    finally:
        use_token(None)
        if worker is not None:
            with _lock:
                _watched.pop(key, None)


def _current_task() -> tuple[Any, Any]:
    """The dask worker running this thread's task and the task's key, or ``(None, None)``."""
    try:
        from distributed.worker import get_worker, thread_state

        return get_worker(), thread_state.key
    except (ImportError, ValueError, AttributeError):  # called outside a dask task
        return None, None


def _call(fn_blob: bytes, args_blob: bytes, upstream: list[tuple[bool, Any]] | None) -> tuple[bool, Any]:
    try:
        fn = pickle.loads(fn_blob)
    except BaseException as exc:
        return False, ("serial", "function", type(exc).__name__, str(exc))
    try:
        args, kwargs = pickle.loads(args_blob)
        if upstream:
            args, kwargs = _fill(args, kwargs, upstream)
    except BaseException as exc:
        return False, ("serial", "arguments", type(exc).__name__, str(exc))
    try:
        value = fn(*args, **kwargs)
        if inspect.iscoroutine(value):
            import asyncio

            value = asyncio.run(value)
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: they fail this task only
        return False, encode_error(exc)
    try:
        return True, dumps_value(value)
    except Exception as exc:
        return False, result_failure(value, exc)


def _fill(args: tuple[Any, ...], kwargs: dict[str, Any], upstream: list[tuple[bool, Any]]
          ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    values: dict[int, Any] = {}

    def value(arg: Any) -> Any:
        if type(arg) is not FromUpstream:
            return arg
        if arg.index not in values:
            values[arg.index] = pickle.loads(upstream[arg.index][1])
        return values[arg.index]

    return tuple(value(a) for a in args), {k: value(v) for k, v in kwargs.items()}


# -- the cooperative cancel signal ----------------------------------------------------------------
def _watch(key: Any, worker: Any, token: CancelToken) -> None:
    global _watcher
    with _lock:
        _watched[key] = (worker, token)
        _wake.set()
        if _watcher is None:
            _watcher = threading.Thread(target=_watch_loop, name="osiiso-cancel-watch", daemon=True)
            _watcher.start()


def _released(worker: Any, key: Any) -> bool:
    """Whether the worker no longer runs ``key`` for anyone (the scheduler released it)."""
    task = worker.state.tasks.get(key)
    return task is None or task.state in ("cancelled", "released", "forgotten")


def _watch_loop() -> None:
    """Raise the token of every watched task the worker has released (one thread per process)."""
    import time

    while True:
        _wake.wait()
        time.sleep(POLL)
        with _lock:
            if not _watched:
                _wake.clear()
                continue
            items = list(_watched.items())
        for key, (worker, token) in items:
            try:
                gone = _released(worker, key)
            except Exception:  # a worker closing under us: nothing more to watch there
                gone = True
            if gone:
                token.set("the dask future of this attempt was cancelled (it timed out or was cancelled)")
                with _lock:
                    _watched.pop(key, None)
