"""`Driver`: what a blocking `osiiso.Queue` and its handles share — the AsyncQueue, and its loop thread.

The driver starts the loop thread (`osiiso._loopthread.LoopThread`) on first use, runs the
AsyncQueue's coroutine methods there for the blocking calls, cancels the run when a blocking
wait is interrupted, and stops the thread at ``shutdown()`` or when the queue is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ._dropped import warn_dropped
from ._events import osiiso_logger
from ._loopthread import LoopThread, check_not_in_event_loop, running_event_loop

if TYPE_CHECKING:
    from ._queue import AsyncQueue

__all__ = ("Driver",)

T = TypeVar("T")


class Driver:
    """What a `Queue` and its handles share: the AsyncQueue, and the loop thread that drives it.

    Handles hold the driver, not the queue, so a queue that nobody holds any more can be
    collected (its finalizer then stops the loop, as `AsyncQueue`'s releases its pools).
    """

    __slots__ = ("_lock", "_thread", "aq", "loop")

    def __init__(self, loop: str) -> None:
        self.loop = loop
        self.aq: AsyncQueue = None  # type: ignore[assignment]  # set right after, by Queue
        self._thread: LoopThread | None = None
        self._lock = threading.Lock()

    def thread(self) -> LoopThread:
        """The loop thread, started on first use."""
        thread = self._thread
        if thread is None:
            with self._lock:
                thread = self._thread
                if thread is None:
                    thread = self._thread = LoopThread(self.loop)
        return thread

    def call(self, what: str, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``await fn(*args, **kwargs)`` on the loop, blocking; ``what`` names the call in errors."""
        check_not_in_event_loop(what)
        return self.thread().call(fn, *args, **kwargs)

    def ensure_serving(self) -> None:
        """Start the queue's workers unless they run (something is about to wait for a task)."""
        if not self.aq._serving:
            self.call("waiting for a task of an osiiso.Queue", self.aq._ensure_service)

    def interrupted(self) -> None:
        """A blocking wait for this queue's tasks was interrupted (Ctrl-C): cancel the run as an
        interrupted ``run()`` does (`AsyncQueue._cancel_interrupted`), before the interrupt goes on."""
        thread = self._thread
        if thread is None:  # nothing was ever started: nothing runs
            return
        try:
            thread.finish(self.aq._cancel_interrupted)
        except Exception:  # the interrupt goes on regardless
            osiiso_logger.exception("osiiso: could not cancel the interrupted run")

    def close(self) -> None:
        """Stop the loop thread (it starts again if the queue is used after ``reset()``).

        Not from a thread that runs an event loop (the loop's own above all, which cannot join
        itself): refused there before anything changes, so the thread is never lost track of.
        """
        check_not_in_event_loop("Queue.shutdown()")
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.close()

    def abandon(self) -> None:
        """The queue was dropped without shutdown (its finalizer, in any thread): shut it down by force.

        Where it may block, it waits for the forced shutdown (pools released) and for the loop
        thread; on a thread that runs an event loop it only starts them. Either way it first
        warns how many tasks were unfinished (`_warn_dropped`).
        """
        with self._lock:
            thread, self._thread = self._thread, None
        try:
            if thread is None or running_event_loop() is not None:
                self._warn_dropped()  # no loop yet (nothing handed over), or a loop's own thread
                self.aq.cancel()  # without a loop it cancels and releases at once
                if thread is not None:
                    thread.abandon()
                return
            try:
                thread.call(self._drop)
            finally:
                thread.close()
        except Exception:  # a finalizer must not raise
            osiiso_logger.exception("osiiso: could not stop a dropped Queue")

    async def _drop(self) -> None:
        """On the loop, where no hand-over is half admitted: warn, then shut the queue down by force."""
        self._warn_dropped()
        await self.aq.shutdown(force=True)

    def _warn_dropped(self) -> None:
        """Say how many tasks the dropped queue leaves unfinished, those still being handed over included."""
        warn_dropped(self.aq._unfinished, "Queue", "call q.run() (or q.join(), or use `with osiiso.Queue() as q:`)")
