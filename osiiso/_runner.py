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
    """The body of :meth:`AsyncQueue.run` once its arguments are checked."""
    engine = queue._engine
    settings = queue._settings
    own_service = not queue._serving
    await queue._ensure_service()
    engine.run_results = []
    stop = queue._stop_run = anyio.Event()
    began = time.perf_counter()

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
    try:
        async with anyio.create_task_group() as tg:
            if bar is not None:
                tg.start_soon(bar.run)
            with anyio.move_on_after(timeout if timeout is not None else float("inf")) as limit:
                if settings.mode == "finite":
                    async with anyio.create_task_group() as waits:
                        async def idle() -> None:
                            await engine.wait_idle()
                            waits.cancel_scope.cancel()

                        async def stopped() -> None:
                            await stop.wait()
                            waits.cancel_scope.cancel()

                        waits.start_soon(idle)
                        waits.start_soon(stopped)
                else:
                    await stop.wait()
            if limit.cancelled_caught:
                spare = settings.on_timeout == "complete"
                engine.cancel_all(f"cancelled: the run timed out after {timeout:g}s", spare_must_complete=spare)
            await engine.wait_idle()
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            engine.cancel_all("cancelled: the run was cancelled", spare_must_complete=False)
            with anyio.move_on_after(10):
                await engine.wait_idle()
        raise
    finally:
        results = engine.run_results or []
        engine.run_results = None
        engine.failure_listener = None
        queue._stop_run = None
        if bar is not None:
            bar.close()
        if own_service:
            await queue._stop_service()
    results.sort(key=_submission_order)
    return RunSummary(tuple(results), time.perf_counter() - began)
