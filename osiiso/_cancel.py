"""The cooperative cancellation signal seen from inside a running task.

A thread cannot be killed, so when a thread attempt times out or is cancelled the
thread backend abandons it and raises this signal. Code running in the task polls it
with `cancelled` or `check_cancelled`. Outside a thread task both report
"not cancelled": coroutine tasks are cancelled for real, process tasks are killed.
"""

from __future__ import annotations

import threading

from ._errors import TaskCancelledError

__all__ = ("CancelToken", "cancelled", "check_cancelled", "current_token", "use_token")


class CancelToken:
    """A flag one attempt polls; set by the backend when it abandons the attempt."""

    __slots__ = ("_flag", "reason")

    def __init__(self) -> None:
        self._flag = False
        self.reason = "cancelled"

    def set(self, reason: str = "cancelled") -> None:
        """Raise the signal (from any thread)."""
        self.reason = reason
        self._flag = True

    def is_set(self) -> bool:
        """Whether the signal was raised."""
        return self._flag


_local = threading.local()


def use_token(token: CancelToken | None) -> None:
    """Make ``token`` the signal of the attempt now running in this thread."""
    _local.token = token


def current_token() -> CancelToken | None:
    """The signal of the attempt running in this thread, if any."""
    return getattr(_local, "token", None)


def cancelled() -> bool:
    """Return ``True`` inside a thread task whose attempt was cancelled or timed out.

    Long-running thread tasks call this between steps and return early when it turns
    true; the queue has already recorded the task's result and moved on.
    """
    token = getattr(_local, "token", None)
    return token is not None and token._flag


def check_cancelled() -> None:
    """Raise `TaskCancelledError` inside a thread task that was cancelled or timed out."""
    token = getattr(_local, "token", None)
    if token is not None and token._flag:
        raise TaskCancelledError(f"this attempt was abandoned: {token.reason}")
