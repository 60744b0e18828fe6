"""What a queue that goes away unfinished does: say how many tasks it dropped, release its pools.

Called by the finalizers of `osiiso.AsyncQueue` and `osiiso.Queue` (garbage collection or
interpreter exit) and by a forced stop; nothing here may raise.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ("finalize_first", "release_backends", "run_first_at_exit", "warn_dropped")

#: the finalizers that interpreter exit runs before it kills the workers of unclosed process pools
_first: list[weakref.finalize[Any, Any]] = []
_kept = 0  # how many of `_first` were alive when it was last pruned


def finalize_first(obj: object, fn: Callable[..., object], *args: Any) -> weakref.finalize[Any, Any]:
    """``weakref.finalize(obj, fn, *args)``, run at interpreter exit before the process pools'
    workers are killed (`run_first_at_exit`): a queue dropped unfinished then cancels its tasks,
    and counts them, while its pools still work (killed first, its running tasks would look crashed)."""
    global _kept
    finalizer = weakref.finalize(obj, fn, *args)
    if len(_first) >= 2 * _kept + 16:
        _first[:] = [f for f in _first if f.alive]
        _kept = len(_first)
    _first.append(finalizer)
    return finalizer


def run_first_at_exit() -> None:
    """Run the finalizers of `finalize_first` still pending, newest first (the process backend's exit hook)."""
    while _first:
        finalizer = _first.pop()
        try:
            finalizer()
        except Exception:  # a finalizer must not stop the exit hook that runs it
            logging.getLogger("osiiso").exception("osiiso: a finalizer failed at exit")


def warn_dropped(count: int, queue: str, fix: str) -> None:
    """A ``queue`` was collected with ``count`` unfinished tasks: a log line and a ``ResourceWarning``.

    The log line (on the ``"osiiso"`` logger) shows with no logging set up, the warning under
    ``-X dev``; called by finalizers, so it never raises, even where warnings are errors.
    """
    if not count:
        return
    message = (f"an osiiso.{queue} was garbage-collected with {count} unfinished task{'s' if count != 1 else ''}, "
               f"dropped without running to the end — {fix} before the queue goes away")
    logging.getLogger("osiiso").warning("osiiso: %s", message)
    try:
        warnings.warn(message, ResourceWarning, stacklevel=2)
    except Exception:  # an "error" warnings filter: the log line has said it already
        pass


def release_backends(engine: Engine) -> None:
    """The queue was garbage-collected (or the interpreter exits): warn of dropped tasks, release the pools."""
    warn_dropped(engine.outstanding, "AsyncQueue",
                 "await q.run() (or q.join(), or use `async with osiiso.AsyncQueue() as q:`)")
    for lane in list(engine.lanes.values()):
        try:
            lane.backend.close_now()
        except Exception:  # a finalizer must not raise
            logging.getLogger("osiiso").exception("osiiso: could not release the %r backend", lane.backend.name)

