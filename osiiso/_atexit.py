"""What interpreter exit runs first: the finalizers of queues dropped unfinished, before any pool's workers die.

The process backend's exit hook kills the workers of pools nobody closed; a queue dropped with
tasks running in them must cancel those tasks first, or they would end as crashes. Python runs
``atexit`` hooks in the reverse order of their registration, which depends on import order, so
that order is not left to chance: the process backend's hook calls `run_first_at_exit` before
it kills anything. It imports only `_events` of the package (the backends import it).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from ._events import osiiso_logger

__all__ = ("finalize_first", "run_first_at_exit")

#: the finalizers that interpreter exit runs before it kills the workers of unclosed process pools
_first: list[weakref.finalize[Any, Any]] = []
_kept = 0  # how many of `_first` were alive when it was last pruned
_lock = threading.Lock()


def finalize_first(obj: object, fn: Callable[..., object], *args: Any) -> weakref.finalize[Any, Any]:
    """``weakref.finalize(obj, fn, *args)``, run at interpreter exit before the process pools'
    workers are killed (`run_first_at_exit`): a queue dropped unfinished then cancels its tasks,
    and counts them, while its pools still work (killed first, its running tasks would look crashed)."""
    global _kept
    finalizer = weakref.finalize(obj, fn, *args)
    with _lock:  # queues are made in any thread
        if len(_first) >= 2 * _kept + 16:
            _first[:] = [f for f in _first if f.alive]
            _kept = len(_first)
        _first.append(finalizer)
    return finalizer


def run_first_at_exit() -> None:
    """Run the finalizers of `finalize_first` still pending, newest first (the process backend's exit hook)."""
    while True:
        with _lock:
            if not _first:
                return
            finalizer = _first.pop()
        try:
            finalizer()
        except Exception:  # a finalizer must not stop the exit hook that runs it
            osiiso_logger.exception("osiiso: a finalizer failed at exit")
