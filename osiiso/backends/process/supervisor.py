"""The supervisor thread of the process pool: it starts, watches, reaps and kills the worker processes.

One daemon thread per pool (`Supervisor`) polls every worker's result pipe, every worker's
sentinel, the task pipes with bytes still to write (`.pipes.TaskPipe`) and a wake-up pipe. It
reads what the workers wrote (several reports per wake-up under load) without ever blocking on
one of them (`.pipes.ResultReader`), writes the rest of big commands as the workers read them,
notices deaths, reaps the dead (after draining what they wrote, and killing what is left of
their process group) and starts replacements for workers that had started well. It kills a
worker that writes something that is not a report (`Garbled`), and one told to exit (its task
pipe closed) that is still alive `EXIT_GRACE` seconds later — a non-daemon thread, an atexit
handler or an initializer that never returns keeps it up. It hands each batch of events (the
named tuples below) to the event loop in one call, and never touches jobs: the loop thread
owns them (see `.pool`). How a worker process is started is `.launch`'s.

Workers are launched where it is cheapest: with ``fork`` the loop thread forks the worker
itself (`Supervisor.launch_now`, about a millisecond, and no hop between threads before the
first job goes out); with ``spawn`` and ``forkserver``, whose launches take tens of
milliseconds, the supervisor thread does it (`Supervisor.spawn`). One lock orders launches,
so a fork never happens while another launch has pipes half made; another guards the table
of workers, so that no thread signals a worker the supervisor has reaped (its pid may belong
to another process by then). The thread itself starts with the first launch.

The events it hands to the loop are `.events`'; killing a worker's tree is `.descendants.kill_tree`.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

from ..._atexit import run_first_at_exit
from ..._events import emit, enabled
from .child import DONE, READY, SKIPPED, STARTED
from .descendants import kill_group, kill_tree
from .events import Dead, Event, Garbled, Reports, SpawnFailed, Stopped, Up
from .launch import reaped, resolve_context, start_process, unreaped
from .pipes import ResultReader, TaskPipe

__all__ = ("EXIT_GRACE", "Supervisor", "resolve_context")


#: seconds a worker told to exit (its task pipe closed, nothing left to run) may take before it is killed
EXIT_GRACE = 3.0
#: while batches run, seconds the thread lets reports gather before it reads the pipes again
FLUSH_INTERVAL = 0.0005
_ARITY = {READY: 1, STARTED: 2, SKIPPED: 2, DONE: 5}  # the reports a worker sends, and their lengths


def _checked(batch: object) -> list[tuple[Any, ...]]:
    """``batch`` if it is a list of well-formed reports; ValueError otherwise."""
    if type(batch) is not list:
        raise ValueError(f"not a list of reports: {type(batch).__name__}")
    for report in batch:
        if type(report) is not tuple or not report or _ARITY.get(report[0]) != len(report) or (
                len(report) > 1 and type(report[1]) is not int):
            raise ValueError(f"not a report: {report!r:.80}")
    return batch


class _Worker:
    """A live worker process as the supervisor knows it."""

    __slots__ = ("garbled", "gen", "lingered", "pid", "proc", "reader", "ready", "sentinel", "slot", "task")

    def __init__(self, slot: int, gen: int, proc: Any, reader: ResultReader, task: TaskPipe) -> None:
        self.slot, self.gen, self.proc, self.reader, self.task = slot, gen, proc, reader, task
        self.pid: int = proc.pid
        self.sentinel: int = proc.sentinel
        self.ready = False  # it sent a report: it started well, so a successor replaces it at once
        self.garbled = self.lingered = False


class Supervisor:
    """Launches and watches the workers of one pool; reports to ``report(events)``."""

    def __init__(self, ctx: BaseContext, boot: bytes, report: Callable[[list[Event]], None]) -> None:
        self._ctx, self._boot, self._report = ctx, boot, report
        self._requests: deque[int] = deque()
        self._workers: dict[int, _Worker] = {}  # by slot
        self._gens: dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # re-entrant: a finalizer (close_now) may run in any thread, this one included
        self._launch_lock = threading.RLock()  # launches
        self._table_lock = threading.RLock()  # the table of workers: signalling against reaping
        # the wake-up pipe is closed once (`_release_wake`); a wake() after that writes nothing,
        # or it would write into whatever descriptor the kernel gave that number next
        self._wake_lock = threading.Lock()
        self._released = False
        self.closing = False
        #: set by the pool while workers hold batches: reports are read at most every FLUSH_INTERVAL
        self.coalesce = False
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
        with self._launch_lock:
            return self._launch(slot)

    def watch_launched(self) -> None:
        """Have the thread watch the workers `launch_now` started (starting it if need be)."""
        self._ensure_started()
        self.wake()  # the thread watches the new workers from its next turn

    def wake(self) -> None:
        """Make the thread look at its requests and its workers again (any thread)."""
        with self._wake_lock:
            if self._released:
                return
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _release_wake(self) -> None:
        """Close the wake-up pipe, once; later `wake` calls do nothing."""
        with self._wake_lock:
            if not self._released:
                self._released = True
                os.close(self._wake_r)
                os.close(self._wake_w)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after `Stopped`, or at exit)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def kill(self, slot: int, gen: int) -> None:
        """SIGKILL the ``gen``-th worker of ``slot`` and all it started, if it is not reaped yet (any thread)."""
        with self._table_lock:
            worker = self._workers.get(slot)
            if worker is not None and worker.gen == gen:
                kill_tree(worker.pid)

    def kill_all(self) -> None:
        """Stop everything now (forced close, interpreter exit); any thread.

        Takes the launch lock first, so a worker being started meanwhile is registered, then
        killed, and no launch starts after this.
        """
        with self._launch_lock:
            self.closing = True  # from now on `_launch` refuses
        with self._table_lock:
            for worker in list(self._workers.values()):
                kill_tree(worker.pid)
        self.wake()

    def close_unstarted(self) -> bool:
        """Release the wake-up pipe of a pool that never launched a worker; ``False`` if it did."""
        with self._launch_lock:
            if self.started:
                return False
            self.closing = True  # from now on `_launch` refuses
            self._release_wake()
            return True

    # -- the thread ---------------------------------------------------------------
    def _main(self) -> None:
        """The thread: serve until closing leaves no worker, then report `Stopped`."""
        try:
            self._loop()
        finally:
            self.kill_all()  # none is left, unless the loop failed
            self._release_wake()
            self._report([Stopped()])

    def _launch(self, slot: int) -> Up:
        """Start a worker in ``slot`` (holding the launch lock) and register it."""
        if self.closing:
            raise RuntimeError("the process pool is closing")
        proc, task_w, result_r = start_process(self._ctx, slot, self._boot, self._inherited)
        task = TaskPipe(task_w, self.wake)
        with self._table_lock:
            gen = self._gens[slot] = self._gens.get(slot, 0) + 1
            self._workers[slot] = _Worker(slot, gen, proc, ResultReader(result_r), task)
        return Up(slot, gen, proc.pid, task)

    def _inherited(self, task_r: Connection, result_w: Connection) -> list[int]:
        """The parent's descriptors a forked worker must close: every other pipe it would inherit."""
        fds = [self._wake_r, self._wake_w]
        with self._table_lock:
            for other in self._workers.values():
                fds += [other.task.fd, other.sentinel]
                if not other.reader.closed:
                    fds.append(other.reader.fd)
        own = {task_r.fileno(), result_w.fileno()}
        return [fd for fd in fds if fd not in own]

    def _loop(self) -> None:
        """Launch what was asked for, then poll every pipe and sentinel and report what happened."""
        while True:
            self._serve_requests()
            if self.closing and not self._workers:
                return
            events: list[Event] = []
            timeout = self._enforce_grace()
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            watched: dict[int, tuple[str, _Worker]] = {}
            for worker in list(self._workers.values()):
                reader = worker.reader
                if not (reader.closed or worker.garbled):
                    watched[reader.fd] = ("read", worker)
                    poller.register(reader.fd, select.POLLIN)
                watched[worker.sentinel] = ("dead", worker)
                poller.register(worker.sentinel, select.POLLIN)
                if worker.task.pending:
                    watched[worker.task.fd] = ("write", worker)
                    poller.register(worker.task.fd, select.POLLOUT)
            dead: list[_Worker] = []
            for fd, _ in poller.poll(None if timeout is None else max(1, int(timeout * 1000) + 1)):
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                kind, worker = watched[fd]
                if kind == "dead":
                    dead.append(worker)
                elif kind == "read":
                    self._read(worker, events)
                else:
                    worker.task.flush()
            for worker in dead:
                events.extend(self._bury(worker))
            if events:
                self._report(events)
                if self.coalesce and not dead:
                    # batches run: let the workers' next reports gather (and the loop thread
                    # handle these) rather than wake up for each one
                    time.sleep(FLUSH_INTERVAL)

    def _serve_requests(self) -> None:
        """Launch the workers asked for, reporting each one as soon as it exists."""
        while self._requests:
            slot = self._requests.popleft()
            if self.closing or slot in self._workers:
                continue
            launched: Up | SpawnFailed
            try:
                with self._launch_lock:
                    launched = self._launch(slot)
            except Exception as exc:
                launched = SpawnFailed(slot, exc)
            self._report([launched])  # the first job need not wait for the other launches

    def _enforce_grace(self) -> float | None:
        """Kill the workers told to exit more than `EXIT_GRACE` ago; return seconds to the next such deadline."""
        now = time.monotonic()
        nearest: float | None = None
        for worker in list(self._workers.values()):
            since = worker.task.closing_since
            if since is None or worker.lingered:
                continue
            if now >= since + EXIT_GRACE:
                worker.lingered = True
                if enabled("kill"):
                    emit("kill", "osiiso: worker process %d was still alive %.1fs after it was told to exit "
                         "(a non-daemon thread, an atexit handler, an initializer that never returns?) — killed it",
                         (worker.pid, EXIT_GRACE), backend="process", pid=worker.pid, reason="lingered")
                kill_tree(worker.pid)
            else:
                nearest = min(nearest if nearest is not None else since + EXIT_GRACE, since + EXIT_GRACE)
        return None if nearest is None else nearest - now

    def _read(self, worker: _Worker, events: list[Event]) -> None:
        """Read the reports waiting in the worker's pipe (never blocking); kill it if they are junk."""
        messages, junk = worker.reader.read()
        reports: list[tuple[Any, ...]] = []
        for message in messages:
            try:
                reports.extend(_checked(pickle.loads(message)))
            except BaseException as exc:  # unpickling junk may raise anything
                junk = f"a message that is not a list of reports ({exc!r:.200})"
                break
        if reports:
            worker.ready = True
            events.append(Reports(worker.slot, worker.gen, reports))
        if junk is not None:
            worker.garbled = True
            if enabled("kill"):
                emit("kill", "osiiso: worker process %d wrote %s on its result pipe — killed it", (worker.pid, junk),
                     backend="process", pid=worker.pid, reason=junk)
            events.append(Garbled(worker.slot, worker.gen, junk))
            kill_tree(worker.pid)
        elif worker.reader.eof:
            worker.reader.close()

    def _bury(self, worker: _Worker) -> list[Event]:
        """Reap a dead worker: what it wrote, then `Dead`, then its replacement's `Up` (or `SpawnFailed`)."""
        events: list[Event] = []
        if not (worker.reader.closed or worker.garbled):
            self._read(worker, events)  # everything it wrote before dying
        worker.reader.close()
        worker.task.abort()
        with self._table_lock:  # from now on nobody signals its pid
            del self._workers[worker.slot]
        kill_group(worker.pid)  # whatever it started in its group dies with it (a zombie keeps its pid)
        worker.proc.join()
        exitcode = worker.proc.exitcode
        reaped(worker.proc)
        worker.proc.close()
        replaced = not self.closing and worker.ready  # one that died starting is relaunched on demand (`.pool`)
        events.append(Dead(worker.slot, worker.gen, worker.pid, exitcode, replaced, worker.lingered))
        if replaced:
            try:
                with self._launch_lock:
                    events.append(self._launch(worker.slot))
            except Exception as exc:
                events.append(SpawnFailed(worker.slot, exc))
        return events


_live: weakref.WeakSet[Supervisor] = weakref.WeakSet()


@atexit.register
def _kill_unclosed_pools() -> None:
    """At interpreter exit, kill the workers of pools nobody closed (never hang exit).

    multiprocessing's own exit hook never waits for them: they are not on its list of
    children (`.launch`).
    """
    run_first_at_exit()  # queues dropped unfinished cancel their tasks first, their pools still working
    for supervisor in list(_live):
        supervisor.kill_all()
    # kill whatever worker of ours is left (the last safety net: exit must never wait for one)
    ours = unreaped()
    for proc in ours:
        if proc.pid is not None:
            kill_tree(proc.pid)
    for proc in ours:
        try:
            proc.join(5.0)
        except ValueError:  # the supervisor thread reaped and closed it meanwhile
            pass
    for supervisor in list(_live):
        supervisor.join(5.0)
