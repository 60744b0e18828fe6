"""The worker process: its main loop, and the wire protocol both ends of the pipes speak.

A worker runs `worker_main`: it sets itself up (own process group, SIGINT ignored, parent
watch, on Linux a child subreaper, initializer), then runs jobs one at a time in the order
they were sent until EOF on its command pipe, and kills what its tasks left running before
it exits. The module also defines what crosses the pipes (the constants and the
records below) and the worker's half of the encoding (`dumps_value`, `encode_error`); the
parent's half is in `.codec`. It imports the standard library only (cloudpickle lazily, for a
value plain pickle refuses): with spawn and forkserver a worker loads this file by path
(``RUN_NAME``), so its start-up never imports the ``osiiso`` package.

The worker owns two pipe ends: ``task_r`` (commands from the parent) and ``result_w`` (its
reports). Before starting each job it drains ``task_r`` without blocking, so a ``CANCEL``
that arrived in time turns the job into ``SKIPPED``; and it writes everything it owes the
parent (the previous job's ``DONE``, this job's ``STARTED``) *before* calling the task, so
that if the task crashes the process the parent knows exactly which job was running. EOF
on ``task_r`` means "finish what you have and exit": that is how the parent retires a
worker or closes the pool.

**Descendants.** On Linux the worker makes itself a child subreaper before any task or
initializer runs, so what its tasks start stays in its tree whatever session it moves to
(see `.descendants`); it kills that tree at EOF and when its parent dies.

**Forks.** A task may call ``os.fork()``; the child must never come back into the worker's
loop and share its pipes. The loop checks the pid after every task: a forked child that
returns from the task (or raises ``SystemExit``) ends there with `os._exit`.

Every message on a pipe is one ``pickle`` (protocol 5) of a list of commands — plain tuples
of ints and ``bytes`` — so a pipe is never blocked by a user object that fails to (un)pickle:
user data is pickled separately, into the ``bytes`` fields, and a failure there fails that
one task only.

Parent → worker::

    (JOB, seq, key, fn_blob | None, args_blob, announce)
    (CANCEL, seq)

Worker → parent::

    (READY,)                              start-up (and initializer) done
    (STARTED, seq)                        only for jobs sent with ``announce``
    (SKIPPED, seq)                        a cancelled job that never ran
    (DONE, seq, ok, blob | error, secs)   ``ok``: blob is the pickled result

An error from the worker is one of::

    ("exc", blob, traceback_text)         the exception pickles and round-trips
    ("remote", type_name, message, traceback_text)
    ("serial", what, type_name, detail)   a function/argument/result did not (un)pickle
                                          (``what == "refused"``: a result `.pickling` refuses)
    ("init", error)                       the worker's initializer raised ``error``
"""

from __future__ import annotations

import _thread
import os
import pickle
import signal
import sys
import time
import traceback
from collections import OrderedDict, deque
from multiprocessing.connection import Connection, wait
from typing import Any


def code_path(source: str) -> str:
    """The file to run for the module ``source`` by path (`runpy.run_path`): its cached bytecode
    when that is current, as the import system judges it (the source's modification time and
    size, in a timestamp ``.pyc``), else the source, which is then compiled (about 2 ms for this file)."""
    try:
        import importlib.util

        cached = importlib.util.cache_from_source(source)
        with open(cached, "rb") as f:
            header = f.read(16)
        stat = os.stat(source)
    except (OSError, NotImplementedError, ValueError):  # no cache (or no way to name one)
        return source
    fields = [int.from_bytes(header[i:i + 4], "little") for i in (4, 8, 12)] if len(header) == 16 else None
    if fields == [0, int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF] \
            and header[:4] == importlib.util.MAGIC_NUMBER:
        return cached
    return source


if __name__ != "__osiiso_worker__":
    from .descendants import become_subreaper, kill_descendants
    from .pickling import PROTOCOL, dumps_code
else:  # loaded by path in a worker (see RUN_NAME): so are its siblings, from the same folder
    import runpy

    _HERE = globals()["_osiiso_source_dir"]
    _sibling = runpy.run_path(code_path(os.path.join(_HERE, "descendants.py")))
    become_subreaper, kill_descendants = _sibling["become_subreaper"], _sibling["kill_descendants"]
    PROTOCOL = 5  # as `.pickling.PROTOCOL`; that module loads on the first value plain pickle refuses

    _pickling: dict[str, Any] = {}

    def dumps_code(obj: object) -> bytes:
        if not _pickling:
            _pickling.update(runpy.run_path(code_path(os.path.join(_HERE, "pickling.py"))))
        return _pickling["dumps_code"](obj)  # type: ignore[no-any-return]

__all__ = (
    "CANCEL", "DONE", "FN_TABLE_SIZE", "JOB", "PROTOCOL", "READY", "RUN_NAME", "SKIPPED", "STARTED",
    "code_path", "dumps_value", "encode_error", "pickling_failure", "result_failure", "safe_str", "type_name",
    "worker_main",
)

#: commands, parent → worker
JOB, CANCEL = 1, 2
#: reports, worker → parent
READY, STARTED, SKIPPED, DONE = 10, 11, 12, 13
#: the ``__name__`` this file runs under when a worker loads it by path
RUN_NAME = "__osiiso_worker__"

#: how many shipped functions a worker keeps (the parent mirrors this LRU exactly)
FN_TABLE_SIZE = 256


def type_name(obj: object) -> str:
    """The qualified name of an object's type (``'_thread.lock'``, ``'int'``)."""
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def dumps_value(value: object) -> bytes:
    """Pickle ``value`` by `.pickling`'s rule for data (plain pickle; by value only where it must).

    Whatever pickling raises (a ``__reduce__`` may raise ``SystemExit``, an open file raises
    `.pickling.RefusedObject`) comes out of here as itself, for the caller to word.
    """
    try:
        return pickle.dumps(value, PROTOCOL)
    except BaseException:
        return dumps_code(value)


def encode_error(exc: BaseException) -> tuple[Any, ...]:
    """Turn a task's exception into an error record (see the module docstring).

    The exception travels as itself only if it survives a pickle round trip here:
    an ``__init__`` with extra required arguments pickles fine but fails to load, and
    that must not be discovered by the parent's reader.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    qualname = type_name(exc)
    try:
        blob = dumps_value(exc)
        pickle.loads(blob)
    except BaseException as why:
        return ("remote", qualname, f"{safe_str(exc)} (it could not be sent back as itself: {why!r})", tb)
    return ("exc", blob, tb)


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when even that raises."""
    try:
        return str(exc)
    except BaseException:
        return f"<{type_name(exc)} whose str() failed>"


def pickling_failure(exc: BaseException) -> str:
    """What went wrong while pickling, in words (an ``Exception``'s message is enough)."""
    if isinstance(exc, Exception):
        return safe_str(exc)
    return f"{type_name(exc)}({safe_str(exc)}) was raised while pickling it"


def result_failure(value: object, exc: BaseException) -> tuple[Any, ...]:
    """The error record of a result that did not pickle: ``"refused"`` carries the whole explanation."""
    explain = getattr(exc, "explain", None)
    if isinstance(exc, pickle.PicklingError) and callable(explain):  # a `.pickling.RefusedObject`
        return ("serial", "refused", type_name(value), str(explain("result")))
    return ("serial", "result", type_name(value), pickling_failure(exc))


class _Unloadable:
    """Stands in for a function whose cloudpickle could not be loaded in the worker."""

    def __init__(self, exc: BaseException) -> None:
        self.record = ("serial", "function", type(exc).__name__, str(exc))


_SUBREAPER_SET = _thread.allocate_lock()  # held until the watch thread has made this worker a subreaper

def _subreaper_ready() -> None:
    """Wait (once) until the worker is a subreaper, before code that may start processes runs."""
    if _SUBREAPER_SET.locked():
        with _SUBREAPER_SET:
            pass


def _watch_parent() -> None:
    """Make the worker a subreaper, then kill it and all it started when the parent dies."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    ppid = os.getppid()
    _SUBREAPER_SET.acquire()

    def watch() -> None:
        try:
            become_subreaper()  # here, so that importing ctypes overlaps the worker's start
        finally:
            _SUBREAPER_SET.release()
        while True:
            if sentinel is not None:
                if wait([sentinel], 0.5):
                    break
            else:
                time.sleep(0.5)
            if os.getppid() != ppid:
                break
        kill_descendants(os.getpid())
        os.killpg(0, signal.SIGKILL)

    # a bare thread: unlike threading.Thread.start(), this does not wait for the thread to run,
    # which would delay the worker's first job by a few hundred microseconds
    _thread.start_new_thread(watch, ())


def _call(fn: Any, args_blob: bytes, owner: int) -> tuple[bool, Any]:
    """Run one job; return ``(True, result_blob)`` or ``(False, error_record)``.

    ``owner`` is the worker's pid: a child the task forked that comes back here ends at once.
    """
    if isinstance(fn, _Unloadable):
        return False, fn.record
    try:
        args, kwargs = pickle.loads(args_blob)
    except BaseException as exc:
        return False, ("serial", "arguments", type(exc).__name__, safe_str(exc))
    try:
        value = fn(*args, **kwargs)
        if type(value).__name__ == "coroutine":
            import asyncio

            value = asyncio.run(value)
    except BaseException as exc:
        if os.getpid() != owner:
            _end_stray_child(exc)
        return False, encode_error(exc)
    finally:
        _flush_streams()
    if os.getpid() != owner:
        _end_stray_child(None)
    try:
        return True, dumps_value(value)
    except BaseException as exc:  # a __reduce__ may raise anything, SystemExit included
        return False, result_failure(value, exc)


def _end_stray_child(exc: BaseException | None) -> None:
    """A process the task forked came back from the task: exit as Python would, never serve the pipes."""
    code = 0
    if isinstance(exc, SystemExit):
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    elif exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        code = 1
    _flush_streams()
    os._exit(code)


def worker_main(task_r: Connection, result_w: Connection, boot: bytes, close_fds: list[int]) -> None:
    """Entry point of a worker process: set up, then serve jobs until EOF.

    ``close_fds`` (``fork`` start method only) are the parent's pipe ends the child
    inherited: other workers' pipes must not stay open here, or they would never see EOF.
    """
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.setsid()  # own session and process group: a kill takes the task's children too
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()
    owner = os.getpid()
    init_error: tuple[Any, ...] | None = None
    try:
        initializer, initargs = pickle.loads(boot)
        if initializer is not None:
            _subreaper_ready()
            initializer(*initargs)
    except BaseException as exc:  # every task of this worker fails with it
        if os.getpid() != owner:
            _end_stray_child(exc)
        init_error = ("init", encode_error(exc))
    if os.getpid() != owner:
        _end_stray_child(None)

    try:
        _serve(task_r, result_w, init_error)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone: nobody to report to
    kill_descendants(owner)  # what the tasks left running ends with the worker
    _flush_streams()


def _flush_streams() -> None:
    """Push the task's prints out now, so they reach the parent's terminal in order."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _serve(task_r: Connection, result_w: Connection, init_error: tuple[Any, ...] | None) -> None:
    """Read commands and run jobs until EOF on ``task_r`` (see the module docstring)."""
    table: OrderedDict[int, Any] = OrderedDict()
    queue: deque[tuple[int, Any, bytes, bool]] = deque()
    cancelled: set[int] = set()
    out: list[tuple[Any, ...]] = [(READY,)]
    eof = False
    owner = os.getpid()
    _subreaper_ready()

    def read(data: bytes) -> None:
        for cmd in pickle.loads(data):
            if cmd[0] == JOB:
                _, seq, key, fn_blob, args_blob, announce = cmd
                if fn_blob is not None:
                    try:
                        fn = pickle.loads(fn_blob)
                    except BaseException as exc:
                        fn = _Unloadable(exc)
                    if key is not None:
                        table[key] = fn
                        if len(table) > FN_TABLE_SIZE:
                            table.popitem(last=False)
                else:
                    fn = table[key]
                    table.move_to_end(key)
                queue.append((seq, fn, args_blob, announce))
            elif cmd[0] == CANCEL:
                cancelled.add(cmd[1])

    while True:
        if os.getpid() != owner:  # forked by user code that ran outside a task (an unpickled function)
            _end_stray_child(None)
        if not queue:
            if eof:
                break
            if out:
                result_w.send_bytes(pickle.dumps(out, 5))
                out = []
            try:
                read(task_r.recv_bytes())
            except (EOFError, OSError):
                eof = True
            continue
        while not eof and task_r.poll():
            try:
                read(task_r.recv_bytes())
            except (EOFError, OSError):
                eof = True
        seq, fn, args_blob, announce = queue.popleft()
        if seq in cancelled:
            cancelled.discard(seq)
            out.append((SKIPPED, seq))
            continue
        if announce:
            out.append((STARTED, seq))
        result_w.send_bytes(pickle.dumps(out, 5))
        started = time.perf_counter()
        if init_error is not None:
            ok, payload = False, init_error
        else:
            ok, payload = _call(fn, args_blob, owner)
        out = [(DONE, seq, ok, payload, time.perf_counter() - started)]
        del fn, args_blob
    if out:
        result_w.send_bytes(pickle.dumps(out, 5))


if __name__ == RUN_NAME:  # loaded by path in a spawn/forkserver worker
    worker_main(*globals()["_osiiso_worker_args"])
