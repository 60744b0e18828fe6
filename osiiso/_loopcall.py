"""Hand a callable from any thread to the event loop that owns the queue.

asyncio and trio each have a thread-safe "call this soon" primitive; this module
wraps whichever loop is running into one function, `current_loop_caller`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ("LoopCaller", "current_loop_caller")


class LoopCaller:
    """Call functions on one event loop from any thread, without blocking.

    ``call(fn, *args)`` runs ``fn(*args)`` on the loop's thread soon. It returns
    ``False`` (and does nothing) once the loop has closed, so late reports from
    worker threads are dropped instead of raising in a thread nobody watches.
    """

    __slots__ = ("_closed_errors", "_local_soon", "_soon", "loop", "thread_id")

    def __init__(self, soon: Callable[..., Any], closed_errors: tuple[type[BaseException], ...],
                 loop: object, local_soon: Callable[..., Any] | None = None) -> None:
        self._soon = soon
        self._local_soon = local_soon or soon
        self._closed_errors = closed_errors
        self.thread_id = threading.get_ident()
        #: the asyncio loop or trio token this caller reaches (identifies the event loop)
        self.loop = loop

    def in_loop_thread(self) -> bool:
        """Whether the calling thread is the loop's own thread."""
        return threading.get_ident() == self.thread_id

    def call_local(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` soon, from the loop's own thread (cheaper: no wake-up write)."""
        self._local_soon(fn, *args)

    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Schedule ``fn(*args)`` on the loop; ``False`` if the loop is gone."""
        try:
            self._soon(fn, *args)
        except self._closed_errors:
            return False
        return True


def current_loop_caller() -> LoopCaller:
    """Return a `LoopCaller` for the event loop running in this thread."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio  # no asyncio loop here: anyio only runs on asyncio or trio

        token = trio.lowlevel.current_trio_token()
        return LoopCaller(token.run_sync_soon, (trio.RunFinishedError,), token)
    return LoopCaller(loop.call_soon_threadsafe, (RuntimeError,), loop, loop.call_soon)
