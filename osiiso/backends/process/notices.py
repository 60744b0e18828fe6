"""What the process pool tells the ``"osiiso"`` log about its workers: crashes, recycles, kills.

`osiiso._events` records, built only when the logger takes the event's level (each function
asks first): one record per event (a garbled worker's death is its kill, not also a crash),
with ``backend="process"``, ``pid``, ``worker`` (``"process/<slot>"``) and, for a crash,
the task it interrupted.
"""

from __future__ import annotations

from ..._events import emit, enabled
from .events import Dead
from .jobs import ProcessJob, Slot, signal_name

__all__ = ("crashed", "garbled", "interrupted", "recycled")


def interrupted(slot: Slot) -> ProcessJob | None:
    """The job ``slot``'s worker was running, if any (read before its death settles the jobs)."""
    return next((job for job in slot.inflight if job.started and not job.cancelled), None)


def crashed(slot: Slot, event: Dead, job: ProcessJob | None) -> None:
    """The ``crash`` event: ``slot``'s worker died on its own, while running ``job`` (if any)."""
    if slot.garbled is not None or not enabled("crash"):
        return
    signal = signal_name(event.exitcode)
    how = f"was killed by {signal}" if signal else f"exited with code {event.exitcode}"
    attempt = job.attempt if job is not None else None
    task = f" running task {attempt.name!r} ({attempt.task_id})" if attempt is not None else ""
    emit("crash", "osiiso: worker process %d%s %s; a fresh worker replaces it", (event.pid, task, how),
         task_id=attempt.task_id if attempt is not None else None,
         task_name=attempt.name if attempt is not None else None, backend="process",
         attempt=attempt.number if attempt is not None else None, pid=event.pid, exitcode=event.exitcode,
         signal=signal, worker=f"process/{slot.index}")


def recycled(slot: Slot) -> None:
    """The ``recycle`` event: ``slot``'s worker ran ``max_tasks_per_child`` tasks and exits."""
    if not enabled("recycle"):
        return
    emit("recycle", "osiiso: worker process %d (slot %d) ran %d tasks (max_tasks_per_child): it exits and "
         "a fresh one takes its place", (slot.pid, slot.index, slot.sent), backend="process",
         pid=slot.pid, worker=f"process/{slot.index}", tasks=slot.sent)


def garbled(slot: Slot, why: str) -> None:
    """The ``kill`` event of a worker whose reports make no sense."""
    if not enabled("kill"):
        return
    emit("kill", "osiiso: worker process %d wrote %s on its result pipe — killed it", (slot.pid, why),
         backend="process", pid=slot.pid, worker=f"process/{slot.index}", reason=why)
