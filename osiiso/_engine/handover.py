"""The engine's side of the hand-over: taking in the tasks other threads submitted.

A task submitted from another thread than the loop's is queued by `osiiso._intake.Intake` and
taken in on the loop, in batches (`Intake._admit_foreign`). Until then its handle is `NEW`, in
no place of the engine, and a ``cancel()`` that reaches it (`Records.cancel`) records its
reason only: the task is cancelled here, as it is admitted, so it ends once and nothing is
taken out of a place it never entered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._handle import TaskHandle
    from .engine import Engine
    from .lanes import Lane

__all__ = ("admit_handed_over",)


def admit_handed_over(engine: Engine, batch: list[tuple[TaskHandle[Any], Lane]], refused: str | None) -> None:
    """Admit ``batch`` in order; cancel each task a ``cancel()`` reached first, and every one with
    reason ``refused`` if that is given (the queue shut down before the batch reached it)."""
    admit, cancel = engine.admit, engine.cancel
    for handle, lane in batch:
        admit(handle, lane)
        reason = handle._cancel_reason or refused
        if reason is not None:
            cancel(handle, reason)
