"""When the process pool starts workers, and what it does when they cannot start.

`Starts` is the base of `.pool.Pool`: the half of its decisions that is about starting
workers rather than placing jobs. Workers start on demand (`Starts._grow`): one per job no
live worker can take, up to ``processes``. Starting can fail two ways, and both are bounded:

* the launch itself fails (`SpawnFailed`: a process limit, a broken ``mp_context``): the
  slot is tried again only after `RETRY_LAUNCH_AFTER`;
* the worker dies before it reports ready (its initializer killed it: ``os._exit``, a
  segfault, SIGKILL). Its jobs had not started, so they go back to the front of the line and
  the slot is started again on demand — but after `START_ATTEMPTS` such deaths in a row the
  pool stops trying for `RETRY_LAUNCH_AFTER` seconds.

In both cases, when no worker is left that could run a job, the jobs waiting for one fail
(`WorkerCrashedError`, saying why) rather than wait forever; a job that comes meanwhile
fails the same way at once, and after the pause one launch per job tries again. A worker
that reports ready resets both counts. Only the loop thread runs this code.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial

from ..._events import osiiso_logger
from .events import Dead, SpawnFailed, Up
from .jobs import ProcessJob, Slot, no_worker_error, start_error
from .supervisor import Supervisor

__all__ = ("RETRY_LAUNCH_AFTER", "START_ATTEMPTS", "Starts")

logger = osiiso_logger

#: after a failed launch (or too many deaths while starting), a slot is not tried again for this many seconds
RETRY_LAUNCH_AFTER = 1.0
#: workers that may die in a row while starting before the pool pauses its launches
START_ATTEMPTS = 3


class Starts:
    """The starting of workers for a pool (see the module docstring); `.pool.Pool` is the rest."""

    _slots: list[Slot]
    _pending: deque[ProcessJob]
    _supervisor: Supervisor

    def __init__(self, launch_here: bool) -> None:
        self._launch_here = launch_here  # ``fork``: the loop thread launches workers itself
        self._launched = False  # `launch_now` started a worker the supervisor does not watch yet
        self._failed_starts = 0  # workers in a row that died before they were ready
        self._start_failure: Callable[[], BaseException] | None = None  # why workers cannot start now
        self.crashed = 0

    def _grow(self) -> bool:
        """Launch workers for the jobs no live worker can take, one per job, up to ``processes``.

        Workers start on demand: a queue that sends one task starts one process. Returns
        whether a worker came up at once (a ``fork`` launch), so the caller places jobs again.
        """
        want = len(self._pending) - sum(1 for slot in self._slots if slot.starting)
        if want <= 0 or self._supervisor.closing:
            return False
        now = time.monotonic()
        came_up = False
        for slot in self._slots:
            if want <= 0:
                break
            if slot.pipe is not None or slot.starting or slot.used or slot.retry_at > now:
                continue
            want -= 1
            slot.starting = True
            if not self._launch_here:
                self._supervisor.spawn(slot.index)
                continue
            try:
                event = self._supervisor.launch_now(slot.index)
            except Exception as exc:
                self._on_spawn_failed(SpawnFailed(slot.index, exc))
            else:
                self._on_up(event)
                came_up = self._launched = True
        self._fail_if_none_can_start()
        return came_up

    def _on_up(self, event: Up) -> None:
        """A worker started in a slot: the slot starts afresh, with an empty function table."""
        self._slots[event.slot].occupy(event.gen, event.pid, event.pipe)

    def _on_ready(self) -> None:
        """A worker reported ready: workers can start, whatever failed before."""
        self._failed_starts = 0
        self._start_failure = None

    def _on_spawn_failed(self, event: SpawnFailed) -> None:
        """A launch failed: try the slot again on demand after a pause; with no worker, fail the jobs."""
        slot = self._slots[event.slot]
        slot.starting = slot.used = False  # on demand again, after a pause
        slot.retry_at = time.monotonic() + RETRY_LAUNCH_AFTER
        self._start_failure = partial(no_worker_error, event.error)
        logger.warning("osiiso: could not start a worker process: %r", event.error)
        self._fail_if_none_can_start()

    def _on_failed_start(self, event: Dead) -> None:
        """A worker died before it was ready (its jobs are back in line): count it; pause after too many."""
        self._failed_starts += 1
        self.crashed += 1
        if self._failed_starts < START_ATTEMPTS:
            return
        self._start_failure = partial(start_error, event.pid, event.exitcode, self._failed_starts)
        resume = time.monotonic() + RETRY_LAUNCH_AFTER
        for slot in self._slots:
            if slot.pipe is None and not slot.starting:
                slot.retry_at = resume

    def _fail_if_none_can_start(self) -> None:
        """Fail the jobs waiting for a worker when workers cannot start now and none is up or coming."""
        failure = self._start_failure
        if failure is None or any(s.pipe is not None or s.starting for s in self._slots):
            return
        while self._pending:
            self._pending.popleft().finish(False, failure())
