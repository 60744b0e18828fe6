"""How a worker process is started: the start method, the child loaded by path, the user's ``__main__`` kept out.

`resolve_context` turns the ``mp_context`` setting into a multiprocessing context (forkserver
where it exists, else spawn; fork only when asked). `start_process` makes a worker's two pipes
and starts the process: with spawn and forkserver the child runs `.child` loaded by path, so
its start-up never imports the ``osiiso`` package, and never re-runs the user's main script
(`_preparation_data`). The supervisor (`.supervisor`) decides when to call it and keeps the
table of the workers it started.

A started worker is taken off multiprocessing's own list of children (`_unlist`): its
supervisor alone polls and reaps it. Every ``Process.start()`` and ``active_children()``
call, in any thread, polls each child on that list, and with forkserver two threads polling
one child split its exit report between them, one reading the code and the other reading
end-of-file, which multiprocessing records as exit code 255. `unreaped` lists the workers
started and not reaped yet, for the interpreter-exit hook.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import threading
from collections.abc import Callable
from multiprocessing import spawn
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from . import child
from .child import RUN_NAME, code_path, worker_main

__all__ = ("reaped", "resolve_context", "start_process", "unreaped")

#: the name of every worker process starts with this
WORKER_NAME_PREFIX = "osiiso-process-"

_START_METHODS = ("spawn", "forkserver", "fork")
_WORKER_FILE = child.__file__ or ""
_WORKER_DIR = os.path.dirname(_WORKER_FILE)
_launching = threading.local()
_original_preparation_data = spawn.get_preparation_data
_unreaped: set[Any] = set()  # our worker processes started and not reaped yet
_unreaped_lock = threading.Lock()


def _preparation_data(name: str) -> dict[str, Any]:
    """``spawn.get_preparation_data`` minus the user's ``__main__`` for osiiso workers.

    multiprocessing's spawn and forkserver start methods re-import the parent's main
    script (or ``-m`` module) in each child. An osiiso worker never needs it — functions
    from ``__main__`` travel by value with cloudpickle — so while one of our workers is
    being launched (a thread-local flag) the main module is left out. Everyone
    else's processes are launched exactly as before.
    """
    data = _original_preparation_data(name)
    if getattr(_launching, "active", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        data.pop("main_path", None)
    return data


spawn.get_preparation_data = _preparation_data


def resolve_context(mp_context: object) -> BaseContext:
    """Turn the ``mp_context`` setting into a multiprocessing context."""
    if mp_context is None:
        available = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context("forkserver" if "forkserver" in available else "spawn")
    if isinstance(mp_context, BaseContext):
        return mp_context
    if isinstance(mp_context, str) and mp_context in _START_METHODS:
        try:
            return multiprocessing.get_context(mp_context)
        except ValueError:
            available = multiprocessing.get_all_start_methods()
            raise ValueError(
                f"mp_context={mp_context!r} is not available on this platform — use one of "
                f"{available!r}"
            ) from None
    raise ValueError(
        f"mp_context must be a start method name ('spawn', 'forkserver', 'fork') or a "
        f"multiprocessing context, got {mp_context!r} — pass e.g. mp_context='spawn'"
    )


def start_process(ctx: BaseContext, slot: int, boot: bytes,
                  inherited: Callable[[Connection, Connection], list[int]]) -> tuple[Any, Connection, Connection]:
    """Start one worker; return its process, the parent's end of its task pipe and of its result pipe.

    ``inherited(task_r, result_w)`` lists the parent's descriptors a ``fork`` child must close
    (the other workers' pipes, the supervisor's wake-up pipe; never the two it is given): they
    must not stay open there, or those pipes would never see EOF. Raises what the start
    raised, with no pipe left open.
    """
    task_r, task_w = ctx.Pipe(duplex=False)
    result_r, result_w = ctx.Pipe(duplex=False)
    fork = ctx.get_start_method() == "fork"
    close_fds = [*inherited(task_r, result_w), task_w.fileno(), result_r.fileno()] if fork else []
    worker_args = (task_r, result_w, boot, close_fds)
    target: Callable[..., object] = worker_main
    args: tuple[object, ...] = worker_args
    kwargs: dict[str, object] = {}
    if not fork and os.path.isfile(_WORKER_FILE):
        # load the worker by path: the child never imports the osiiso package
        target, args = runpy.run_path, (code_path(_WORKER_FILE),)  # its .pyc, when current: nothing to compile
        kwargs = {"init_globals": {"_osiiso_worker_args": worker_args, "_osiiso_source_dir": _WORKER_DIR},
                  "run_name": RUN_NAME}
    proc = ctx.Process(  # type: ignore[attr-defined]
        target=target, args=args, kwargs=kwargs, name=f"{WORKER_NAME_PREFIX}{slot}", daemon=False)
    _launching.active = True
    try:
        proc.start()
    except BaseException:
        for conn in (task_r, task_w, result_r, result_w):
            conn.close()
        raise
    finally:
        _launching.active = False
    _unlist(proc)
    task_r.close()
    result_w.close()
    return proc, task_w, result_r


def _unlist(proc: Any) -> None:
    """Take ``proc`` off multiprocessing's list of children, onto ours: only its supervisor polls it."""
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(proc)
    with _unreaped_lock:
        _unreaped.add(proc)


def reaped(proc: Any) -> None:
    """``proc`` was joined: drop it from `unreaped`."""
    with _unreaped_lock:
        _unreaped.discard(proc)


def unreaped() -> list[Any]:
    """The worker processes started and not reaped yet (any pool)."""
    with _unreaped_lock:
        return list(_unreaped)
