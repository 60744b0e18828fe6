"""The event stream: what happened to a task or a worker, as records of the ``"osiiso"`` logger.

The engine and the backends report an event where they decide it (a start, a retry, a
timeout, a cancel, a worker crash or recycle, an abandoned thread, a finish) through `emit`.
Each event has one level (`LEVELS`) and goes out as one `logging.LogRecord` whose message is
formatted only by a handler that takes it (``%`` arguments), with ``extra`` fields: ``event``,
``task_id``, ``task_name``, ``backend``, ``attempt`` and what the event adds (``delay``,
``cause``, ``pid``, ``signal``, ...). Callers ask `enabled` first and build nothing when the
level is off; the engine asks for the per-task events (start, finish, at DEBUG) once per
run (`Engine.log_tasks`), so a change of level during a run is seen by the next run.

The records come from the ``"osiiso.events"`` child logger: they reach every handler of
``"osiiso"`` and of the root logger, and its level is the one set on ``"osiiso"``. It holds a
`logging.NullHandler`, so a program that configured no logging prints none of them (a
timeout is in the task's result already); ``logging.basicConfig(level=...)`` or a handler on
``"osiiso"`` shows them.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

__all__ = ("LEVELS", "emit", "enabled", "logger", "osiiso_logger")

logger = logging.getLogger("osiiso.events")
logger.addHandler(logging.NullHandler())  # no "last resort" printing where logging is not set up


class NeverRaising(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in typeshed
    """A logger whose calls never raise: a filter or handler of the program's that fails must not
    stop osiiso's own code (a hook's error being reported, the engine recording a failure). As
    `logging` does with a failing handler, and as `emit` does, the traceback goes to stderr."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs  # the caller's ``extra`` as given

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the record names the caller, not this method
        try:
            super().log(level, msg, *args, **kwargs)
        except Exception:
            if logging.raiseExceptions:
                traceback.print_exc()


#: the ``"osiiso"`` logger, for osiiso's messages outside the event stream
osiiso_logger = NeverRaising(logging.getLogger("osiiso"), {})

#: the level of each event
LEVELS: dict[str, int] = {
    "start": logging.DEBUG,
    "finish": logging.DEBUG,
    "cancel": logging.DEBUG,
    "retry": logging.INFO,
    "recycle": logging.INFO,
    "timeout": logging.WARNING,
    "crash": logging.WARNING,
    "abandon": logging.WARNING,
    "kill": logging.WARNING,
}


def enabled(event: str) -> bool:
    """Whether the ``"osiiso"`` logger (through ``"osiiso.events"``) takes records of ``event`` (ask first)."""
    return logger.isEnabledFor(LEVELS[event])


def emit(event: str, message: str, args: tuple[Any, ...], *, task_id: str | None = None,
         task_name: str | None = None, backend: str | None = None, attempt: int | None = None,
         **fields: Any) -> None:
    """Log ``event`` (``message % args``, formatted by the handler) with its ``extra`` fields.

    Never raises: a failing filter or handler must not become the task's error. As `logging`
    does with a failing handler, the traceback goes to stderr (unless `logging.raiseExceptions`
    is off).
    """
    extra = {"event": event, "task_id": task_id, "task_name": task_name, "backend": backend,
             "attempt": attempt, **fields}
    try:
        logger.log(LEVELS[event], message, *args, extra=extra, stacklevel=2)
    except Exception:
        if logging.raiseExceptions:
            traceback.print_exc()
