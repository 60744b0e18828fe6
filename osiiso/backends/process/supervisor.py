"""The supervisor thread of the process pool: it starts, watches and reaps the worker processes.

One daemon thread per pool (`Supervisor`) blocks in ``multiprocessing.connection.wait`` on
every worker's result pipe, every worker's sentinel and a wake-up pipe. It reads all the
reports a worker has written (several per wake-up under load), notices deaths, reaps the
dead (after draining what they wrote, and killing what is left of their process group),
starts replacements, and hands each batch of events (the named tuples below) to the event
loop in one call. It never touches jobs: the loop thread owns them (see `.pool`). This
module also owns how a worker is launched: the start method (`resolve_context`), the
child loaded by path from `.child`, and the user's ``__main__`` kept out of it.

Workers are launched where it is cheapest: with ``fork`` the loop thread forks the
worker itself (`Supervisor.launch_now`, about a millisecond, and no hop between threads
before the first job goes out); with ``spawn`` and ``forkserver``, whose launches take
tens of milliseconds, the supervisor thread does it (`Supervisor.spawn`). Launches and
the table of workers are guarded by one lock, so a fork never happens while another
launch has pipes half made. The thread itself starts with the first launch.

Events handed to the loop: `Up`, `Reports`, `Dead`, `SpawnFailed`, `Stopped`.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import runpy
import signal
import threading
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing import spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any, NamedTuple

from . import child
from .child import RUN_NAME, worker_main

__all__ = (
    "Dead", "Event", "Reports", "SpawnFailed", "Stopped", "Supervisor", "Up", "kill_group", "resolve_context",
)

_START_METHODS = ("spawn", "forkserver", "fork")
_WORKER_FILE = child.__file__ or ""
_launching = threading.local()
_original_preparation_data = spawn.get_preparation_data


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


class Up(NamedTuple):
    """A worker started in ``slot`` (its ``gen``-th); ``conn`` is the pipe to send it commands."""

    slot: int
    gen: int
    pid: int
    conn: Connection


class Reports(NamedTuple):
    """The reports read from a worker's result pipe, in the order it wrote them."""

    slot: int
    gen: int
    reports: list[tuple[Any, ...]]


class Dead(NamedTuple):
    """The worker exited and was reaped; every report it wrote came before this event."""

    slot: int
    gen: int
    pid: int
    exitcode: int | None


class SpawnFailed(NamedTuple):
    """A worker could not be started in ``slot``."""

    slot: int
    error: BaseException


class Stopped(NamedTuple):
    """The pool is closing and every worker is gone: the supervisor thread has ended."""


#: what the supervisor hands to the loop, in batches
Event = Up | Reports | Dead | SpawnFailed | Stopped


def kill_group(pid: int) -> None:
    """SIGKILL a worker's process group (the worker and the processes it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # no group yet (still booting) or already gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except PermissionError:
        pass


class _Worker:
    """A live worker process as the supervisor knows it: its process, result pipe and sentinel."""

    __slots__ = ("conn", "gen", "pid", "proc", "sentinel", "slot", "task_fd")

    def __init__(self, slot: int, gen: int, proc: Any, conn: Connection, task_fd: int) -> None:
        self.slot, self.gen, self.proc, self.conn, self.task_fd = slot, gen, proc, conn, task_fd
        self.pid: int = proc.pid
        self.sentinel: int = proc.sentinel


class Supervisor:
    """Launches and watches the workers of one pool; reports to ``report(events)``."""

    def __init__(self, ctx: BaseContext, boot: bytes, report: Callable[[list[Event]], None]) -> None:
        self._ctx, self._boot, self._report = ctx, boot, report
        self._requests: deque[int] = deque()
        self._workers: dict[int, _Worker] = {}  # by slot
        self._gens: dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()  # launches, and changes to the table of workers
        self._released = False  # closed before the thread ever started (close_unstarted)
        self.closing = False
        self._thread = threading.Thread(target=self._main, name="osiiso-process-io", daemon=True)
        _live.add(self)

    @property
    def started(self) -> bool:
        """Whether the thread was started (it is, from the first launch on)."""
        return self._thread.ident is not None

    def _ensure_started(self) -> None:
        """Start the thread on the first launch (never after `close_unstarted`)."""
        if self._thread.ident is None and not self._released:
            self._thread.start()

    def spawn(self, slot: int) -> None:
        """Ask the supervisor thread for a worker in ``slot`` (it reports `Up` or `SpawnFailed`)."""
        self._requests.append(slot)
        self._ensure_started()
        self.wake()

    def launch_now(self, slot: int) -> Up:
        """Launch a worker in ``slot`` from the calling thread; return its `Up` event.

        Raises what the launch raised. Meant for ``fork``, where a launch is quick. Call
        `watch_launched` next; the first jobs may go out before (the worker runs them while
        the supervisor thread starts).
        """
        with self._lock:
            event = self._launch(slot)
        return event

    def watch_launched(self) -> None:
        """Have the thread watch the workers `launch_now` started (starting it if need be)."""
        self._ensure_started()
        self.wake()  # the thread watches the new workers from its next turn

    def wake(self) -> None:
        """Make the thread look at its requests and its workers again (any thread)."""
        if self._released:
            return
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after `Stopped`, or at exit)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def kill_all(self) -> None:
        """Stop everything now (forced close, interpreter exit); any thread.

        Takes the launch lock, so a worker being started meanwhile is registered, then killed.
        """
        with self._lock:
            self.closing = True  # from now on `_launch` refuses
            workers = list(self._workers.values())
        for worker in workers:
            kill_group(worker.pid)
        self.wake()

    def close_unstarted(self) -> bool:
        """Release the wake-up pipe of a pool that never launched a worker; ``False`` if it did."""
        with self._lock:
            if self.started:
                return False
            self.closing = True  # from now on `_launch` refuses
            self._released = True
            os.close(self._wake_r)
            os.close(self._wake_w)
            return True

    # -- the thread ---------------------------------------------------------------
    def _main(self) -> None:
        """The thread: serve until closing leaves no worker, then report `Stopped`."""
        try:
            self._loop()
        finally:
            for worker in list(self._workers.values()):  # only after an internal error
                kill_group(worker.pid)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._report([Stopped()])

    def _launch(self, slot: int) -> Up:
        """Start a worker in ``slot`` (holding ``_lock``) and register it."""
        if self.closing:
            raise RuntimeError("the process pool is closing")
        ctx = self._ctx
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        fork = ctx.get_start_method() == "fork"
        close_fds: list[int] = []
        if fork:  # the child gets a copy of every parent fd
            close_fds = [task_w.fileno(), result_r.fileno(), self._wake_r, self._wake_w]
            for other in self._workers.values():
                close_fds += [other.task_fd, other.sentinel]
                if not other.conn.closed:
                    close_fds.append(other.conn.fileno())
            own = {task_r.fileno(), result_w.fileno()}
            close_fds = [fd for fd in close_fds if fd not in own]
        worker_args = (task_r, result_w, self._boot, close_fds)
        target: Callable[..., object] = worker_main
        args: tuple[object, ...] = worker_args
        kwargs: dict[str, object] = {}
        if not fork and os.path.isfile(_WORKER_FILE):
            # load the worker by path: the child never imports the osiiso package
            target, args = runpy.run_path, (_WORKER_FILE,)
            kwargs = {"init_globals": {"_osiiso_worker_args": worker_args}, "run_name": RUN_NAME}
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
        task_r.close()
        result_w.close()
        gen = self._gens[slot] = self._gens.get(slot, 0) + 1
        self._workers[slot] = _Worker(slot, gen, proc, result_r, task_w.fileno())
        return Up(slot, gen, proc.pid, task_w)

    def _loop(self) -> None:
        """Launch what was asked for, then wait on every pipe and sentinel and report what happened."""
        while True:
            events: list[Event] = []
            while self._requests:
                slot = self._requests.popleft()
                if self.closing or slot in self._workers:
                    continue
                launched: Up | SpawnFailed
                try:
                    with self._lock:
                        launched = self._launch(slot)
                except Exception as exc:
                    launched = SpawnFailed(slot, exc)
                # report each worker as soon as it exists: the first job need not wait for the rest
                self._report([launched])
            if self.closing and not self._workers:
                return
            by_fd: dict[int, tuple[str, _Worker]] = {}
            for worker in list(self._workers.values()):
                if not worker.conn.closed:
                    by_fd[worker.conn.fileno()] = ("conn", worker)
                by_fd[worker.sentinel] = ("dead", worker)
            ready = wait([self._wake_r, *by_fd])
            dead: list[_Worker] = []
            for fd in ready:
                assert isinstance(fd, int)
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                kind, worker = by_fd[fd]
                if kind == "dead":
                    dead.append(worker)
                else:
                    self._read(worker, events)
            for worker in dead:
                events.extend(self._bury(worker))
            if events:
                self._report(events)

    @staticmethod
    def _read(worker: _Worker, events: list[Event], *, readable: bool = True) -> None:
        """Read every report waiting in the worker's pipe (without blocking on an empty one)."""
        reports: list[Any] = []
        conn = worker.conn
        try:
            while readable or conn.poll():
                reports.extend(pickle.loads(conn.recv_bytes()))
                readable = False
        except (EOFError, OSError):
            conn.close()
        if reports:
            events.append(Reports(worker.slot, worker.gen, reports))

    def _bury(self, worker: _Worker) -> list[Event]:
        """Reap a dead worker: what it wrote, then `Dead`, then its replacement's `Up` (or `SpawnFailed`)."""
        events: list[Event] = []
        kill_group(worker.pid)  # whatever the worker started dies with it
        if not worker.conn.closed:
            self._read(worker, events, readable=False)  # everything it wrote before dying
            worker.conn.close()
        worker.proc.join()
        exitcode = worker.proc.exitcode
        worker.proc.close()
        with self._lock:
            del self._workers[worker.slot]
        events.append(Dead(worker.slot, worker.gen, worker.pid, exitcode))
        if not self.closing:  # keep a slot that had a worker filled
            try:
                with self._lock:
                    events.append(self._launch(worker.slot))
            except Exception as exc:
                events.append(SpawnFailed(worker.slot, exc))
        return events


_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()
#: the name of every worker process starts with this
WORKER_NAME_PREFIX = "osiiso-process-"


@atexit.register
def _kill_unclosed_pools() -> None:
    """At interpreter exit, kill the workers of pools nobody closed (never hang exit).

    Registered after ``multiprocessing`` is imported, so it runs before
    multiprocessing's own exit hook, which would otherwise wait for our workers.
    """
    for supervisor in list(_live):
        supervisor.kill_all()
    # a worker still being started when its pool was killed is not known to its supervisor
    # yet: kill every worker process of ours that is left, or multiprocessing would wait for it
    ours = [p for p in multiprocessing.active_children() if p.name.startswith(WORKER_NAME_PREFIX)]
    for proc in ours:
        if proc.pid is not None:
            kill_group(proc.pid)
    for proc in ours:
        proc.join(5.0)
    for supervisor in list(_live):
        supervisor.join(5.0)
