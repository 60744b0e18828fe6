"""`Run`: one ``run()`` of a queue — its results, its stop event, fail-first and its time limit.

A run installs itself on the engine (``engine.run``) before the service starts, so a task that
ends on the service's first turn is already counted in it. It waits on one event, set when the
work is done (finite mode), or by ``shutdown()``, ``cancel()`` or a fail-first failure. It
opens no task group of its own, so an exception that interrupts it (Ctrl-C, a cancelled
caller) comes out as itself, after every unfinished task has been cancelled and recorded.
A run knows the engine only, never the queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, MutableSequence
from typing import TYPE_CHECKING, Any

import anyio

from .._events import enabled
from .._results import RunSummary, TaskResult
from .kept import new_results
from .service import stopping_reason

if TYPE_CHECKING:
    from .._handle import TaskHandle
    from .._progress import ProgressSnapshot, ProgressWatcher
    from .engine import Engine

__all__ = ("Run", "cancel_interrupted")


async def cancel_interrupted(engine: Engine) -> None:
    """A run, or a blocking wait for tasks, was interrupted (Ctrl-C, a cancelled caller): every
    unfinished task is cancelled and recorded, each with one result, before the interrupt goes on.

    Shielded, and bounded: hooks are cut short with the service.
    """
    with anyio.CancelScope(shield=True):
        engine.cancel_all("cancelled: the run was interrupted", spare_must_complete=False)
        with anyio.move_on_after(10):
            await engine.wait_idle(hooks=False)


def in_submission_order(results: MutableSequence[TaskResult], seqs: MutableSequence[int]) -> tuple[TaskResult, ...]:
    """``results`` sorted by submission; ``seqs`` holds their task numbers, in step (`Run.seqs`).

    Sorting the positions by those numbers costs a C-level key per result, where parsing each
    ``task_id`` would cost a Python call (results come nearly in order: the sort is near linear).
    """
    order = sorted(range(len(seqs)), key=seqs.__getitem__)
    return tuple([results[i] for i in order])


def _watch(engine: Engine, progress: bool | Callable[[ProgressSnapshot], object]) -> ProgressWatcher:
    """A watcher of ``engine``'s lanes for ``run(progress=...)``; its counts start at this run's start."""
    from .._progress import ProgressWatcher
    from .._progress_view import choose_view

    view, close, every = choose_view(progress)
    return ProgressWatcher(lambda: [(lane.backend.name, lane) for lane in engine.lane_list], view,
                           close=close, every=every)


class Run:
    """One run of an engine: what it records, and how it ends."""

    def __init__(self, engine: Engine, *, timeout: float | None, fail_first: bool, finite: bool,
                 spare_on_timeout: bool) -> None:
        self.engine = engine
        self.timeout = timeout
        self.fail_first = fail_first
        self.finite = finite
        self.spare_on_timeout = spare_on_timeout
        self.results: list[TaskResult] = new_results(engine.keep_results)  # appended by `Engine.finish`
        #: the task number of each of `results`, appended with it (a bounded deque when they are bounded):
        #: the summary sorts by these instead of parsing every task id
        self.seqs: MutableSequence[int] = [] if engine.keep_results is None else deque(maxlen=engine.keep_results)
        self.stop = anyio.Event()
        self.began = time.perf_counter()
        self.timed_out = False  # the run stopped at its time limit
        self.broken: BaseException | None = None  # the engine failed during this run (`Engine.broke`)

    def task_failed(self, handle: TaskHandle[Any]) -> None:
        """A task of this run failed: with fail-first, cancel the rest and end the run."""
        if not self.fail_first:
            return
        self.engine.cancel_all(f"cancelled: fail_first after task {handle.name!r} ({handle.task_id}) failed",
                               spare_must_complete=True)
        self.stop.set()

    def clear_results(self) -> None:
        """Forget the results gathered so far (``queue.clear_results()``)."""
        self.results.clear()
        self.seqs.clear()

    def end(self) -> None:
        """End the run early (``shutdown()``, ``cancel()``)."""
        self.stop.set()

    async def __call__(self, *, progress: bool | Callable[[ProgressSnapshot], object]) -> RunSummary:
        """Install the run, start the service if needed, wait for the work, return the summary."""
        engine = self.engine
        service = engine.service
        own_service = not service.running
        engine.run = self  # every piece of run state before the service starts
        engine.log_tasks = enabled("start")  # asked once per run: nothing is built when DEBUG is off
        bar = None
        try:
            if progress is not False:  # before the service starts: a task that ends on its first turn counts
                bar = _watch(engine, progress)
            await service.start()
            reason = stopping_reason()
            if reason is not None:  # the process is stopping (SIGTERM): this run ends at once
                engine.stop_all(reason)
            if bar is not None:
                service.spawn(bar.run)
            await self._wait()
        except BaseException:
            await cancel_interrupted(engine)  # Ctrl-C, a cancelled caller: every task still ends, cancelled
            raise
        finally:
            engine.run = None
            if self.stop in engine.idle_waiters:
                engine.idle_waiters.remove(self.stop)
            if bar is not None:
                bar.close()
            if own_service:
                await service.stop()
        broken = self.broken
        if broken is not None and not isinstance(broken, Exception):
            raise broken  # a SystemExit or KeyboardInterrupt comes out of run() on every loop alike
        results = self.results
        dropped = getattr(results, "dropped", None)
        return RunSummary(in_submission_order(results, self.seqs), time.perf_counter() - self.began,
                          timed_out=self.timed_out, earlier=None if dropped is None else dropped.as_tuple(),
                          earlier_backends=None if dropped is None else dropped.backends)

    async def _wait(self) -> None:
        engine = self.engine
        timeout = self.timeout
        with anyio.move_on_after(timeout if timeout is not None else float("inf")) as limit:
            if self.finite:
                if engine.outstanding or engine.hooks_running:
                    engine.idle_waiters.append(self.stop)
                    await self.stop.wait()
            else:
                await self.stop.wait()
            await engine.wait_idle()  # the tasks stopped by fail-first or cancel(), and the hooks
        if limit.cancelled_caught:
            self.timed_out = True
            engine.cancel_all(f"cancelled: the run timed out after {timeout:g}s",
                              spare_must_complete=self.spare_on_timeout)
            await engine.wait_idle(hooks=False)  # spared must_complete tasks run on
            engine.cut_hooks()  # the limit bounds the hooks too: those still running are cancelled
            try:
                await engine.wait_idle()
            finally:
                engine.hooks_cut = False
