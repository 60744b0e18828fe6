"""What a queue that goes away unfinished does: say how many tasks it dropped, release its pools.

Called by the finalizers of `osiiso.AsyncQueue` and `osiiso.Queue` (garbage collection or
interpreter exit) and by a forced stop; nothing here may raise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sized
from typing import TYPE_CHECKING

from ._events import osiiso_logger

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ("release_backends", "warn_dropped")


def warn_dropped(count: int, queue: str, fix: str) -> None:
    """A ``queue`` was collected with ``count`` unfinished tasks: a log line and a ``ResourceWarning``.

    The log line (on the ``"osiiso"`` logger) shows with no logging set up, the warning under
    ``-X dev``; called by finalizers, so it never raises, even where warnings are errors.
    """
    if not count:
        return
    message = (f"an osiiso.{queue} was garbage-collected with {count} unfinished task{'s' if count != 1 else ''}, "
               f"dropped without running to the end — {fix} before the queue goes away")
    osiiso_logger.warning("osiiso: %s", message)
    try:
        warnings.warn(message, ResourceWarning, stacklevel=2)
    except Exception:  # an "error" warnings filter: the log line has said it already
        pass


def release_backends(engine: Engine, handovers: Sized = ()) -> None:
    """The queue was garbage-collected (or the interpreter exits): warn of dropped tasks (those
    ``handovers`` holds, handed over from other threads and never admitted, included), release the pools."""
    warn_dropped(engine.outstanding + len(handovers), "AsyncQueue",
                 "await q.run() (or q.join(), or use `async with osiiso.AsyncQueue() as q:`)")
    for lane in list(engine.lanes.values()):
        try:
            lane.backend.close_now()
        except Exception:  # a finalizer must not raise
            osiiso_logger.exception("osiiso: could not release the %r backend", lane.backend.name)

