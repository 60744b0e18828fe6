"""One ``run()``: start the workers if needed, wait for the work, apply the run's policies."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from ._handle import TaskHandle
from ._results import RunSummary, TaskResult

if TYPE_CHECKING:
    from ._queue import AsyncQueue

__all__ = ("run_queue",)


def _submission_order(result: TaskResult) -> int:
    return int(result.task_id[5:])


async def run_queue(queue: AsyncQueue, timeout: float | None, policy: str, progress: bool) -> RunSummary:
    """The body of `AsyncQueue.run` once its arguments are checked.

    The run waits on one event, set when the work is done (finite mode), or by
    ``shutdown()``, ``cancel()`` or a fail-first failure. It opens no task group of its
    own, so an exception that interrupts it (Ctrl-C, a cancelled caller) comes out as
    itself, after every unfinished task has been cancelled and recorded.
    """
    engine = queue._engine
    settings = queue._settings
    own_service = not queue._serving
    await queue._ensure_service()
    engine.run_results = []
    stop = queue._stop_run = anyio.Event()
    began = time.perf_counter()
    timed_out = False

    def fail_first(handle: TaskHandle[Any]) -> None:
        engine.cancel_all(f"cancelled: fail_first after task {handle.name!r} ({handle.task_id}) failed",
                          spare_must_complete=True)
        stop.set()

    if policy == "fail_first":
        engine.failure_listener = fail_first
    bar = None
    if progress:
        from ._progress import ProgressBar

        bar = ProgressBar(engine)
        engine.spawn(bar.run)
    try:
        with anyio.move_on_after(timeout if timeout is not None else float("inf")) as limit:
            if settings.mode == "finite":
                if engine.outstanding or engine.hooks_running:
                    engine.idle_waiters.append(stop)
                    await stop.wait()
            else:
                await stop.wait()
        if limit.cancelled_caught:
            timed_out = True
            spare = settings.on_timeout == "complete"
            engine.cancel_all(f"cancelled: the run timed out after {timeout:g}s", spare_must_complete=spare)
        await engine.wait_idle()
    except BaseException:
        # Ctrl-C, a cancelled caller: every task still ends with one (cancelled) result
        with anyio.CancelScope(shield=True):
            engine.cancel_all("cancelled: the run was interrupted", spare_must_complete=False)
            with anyio.move_on_after(10):
                await engine.wait_idle(hooks=False)  # every task ends; hooks are cut short with the service
        raise
    finally:
        results = engine.run_results or []
        engine.run_results = None
        engine.failure_listener = None
        queue._stop_run = None
        if stop in engine.idle_waiters:
            engine.idle_waiters.remove(stop)
        if bar is not None:
            bar.close()
        if own_service:
            await queue._stop_service()
    results.sort(key=_submission_order)
    return RunSummary(tuple(results), time.perf_counter() - began, timed_out=timed_out)
