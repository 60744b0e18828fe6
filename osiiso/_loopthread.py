"""The event loop behind a blocking `osiiso.Queue`: one background thread, driven through a portal.

The engine is the same one `AsyncQueue` uses; it only needs an event loop to run on. A
`LoopThread` starts one (asyncio, uvloop or trio) in a daemon thread with anyio's blocking
portal, and `LoopThread.call` runs a coroutine function there while the calling thread
blocks. A Ctrl-C (``KeyboardInterrupt``) that lands in the blocked thread cancels the call on
the loop and waits for it to end, so a run interrupted this way records every task as
cancelled before the interrupt goes on, as it does under `osiiso.run`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import sys
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ("LOOPS", "LoopThread", "check_loop", "check_not_in_event_loop", "running_event_loop")

T = TypeVar("T")

#: the event loops a Queue can run on, and how anyio starts each
LOOPS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {"use_uvloop": False}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
#: after a Ctrl-C, how long the interrupted call may take to cancel its tasks and record them
_CLEANUP_BOUND = 15.0


def check_loop(loop: object) -> str:
    """``loop`` if it names an event loop that can run here, else a ``ValueError`` saying why."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(map(repr, LOOPS))}, got {loop!r}")
    needs = {"uvloop": "uvloop", "trio": "trio"}.get(loop)
    if needs is not None and importlib.util.find_spec(needs) is None:
        raise ValueError(f"loop={loop!r} needs {needs}, which is not installed — pip install {needs}, "
                         "or use loop='asyncio'")
    return loop


def running_event_loop() -> str | None:
    """``"asyncio"`` or ``"trio"`` if the calling thread is running that event loop, else None."""
    try:
        import asyncio

        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        trio = sys.modules.get("trio")
        if trio is not None:
            try:
                trio.lowlevel.current_trio_token()
                return "trio"
            except RuntimeError:
                pass
    return None


def check_not_in_event_loop(what: str) -> None:
    """Raise ``RuntimeError`` if the calling thread is running an event loop.

    A blocking call there would stall that loop (or, on the queue's own loop, never return).
    """
    running = running_event_loop()
    if running is not None:
        raise RuntimeError(
            f"{what} blocks, and this thread is running an {running} event loop — in async code use "
            "osiiso.AsyncQueue (await q.run()), or call the blocking Queue from a plain thread "
            "(for instance with anyio.to_thread.run_sync)")


class LoopThread:
    """An event loop in a daemon thread, and the portal that runs calls on it."""

    __slots__ = ("_cm", "loop", "portal")

    def __init__(self, loop: str) -> None:
        backend, options = LOOPS[loop]
        self.loop = loop
        self._cm: AbstractContextManager[BlockingPortal] | None = start_blocking_portal(
            backend, options, name=f"osiiso-{loop}-loop")
        self.portal: BlockingPortal = self._cm.__enter__()

    def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Run ``await fn(*args, **kwargs)`` on the loop and return its value; block meanwhile.

        If the wait is interrupted (Ctrl-C), the call is cancelled on the loop and awaited, up to
        a bound, before the interrupt propagates.
        """
        ended = threading.Event()

        async def body() -> T:
            try:
                return await fn(*args, **kwargs)
            finally:
                ended.set()

        future = self.portal.start_task_soon(body)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # the wait, not the call, was interrupted
                future.cancel()
                ended.wait(_CLEANUP_BOUND)
            raise

    def finish(self, fn: Callable[..., Awaitable[object]], /, *args: Any) -> None:
        """Run ``await fn(*args)`` on the loop, waiting for it up to the same bound: the clean-up
        after an interrupt. Another interrupt stops the wait (not the clean-up), as in `call`."""
        future = self.portal.start_task_soon(fn, *args)
        try:
            future.result(_CLEANUP_BOUND)
        except concurrent.futures.TimeoutError:
            pass

    def call_sync(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run the plain function ``fn(*args)`` on the loop's thread and return its value."""
        return self.portal.call(functools.partial(fn, *args))

    def close(self) -> None:
        """Stop the loop and wait for its thread to end (not from the loop's own thread)."""
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def abandon(self) -> None:
        """Stop the loop without waiting for its thread (a queue dropped without shutdown)."""
        cm, self._cm = self._cm, None
        if cm is None:
            return
        try:
            self.portal.call(self.portal.stop, True)
        except RuntimeError:  # called on the loop's own thread: the daemon thread idles until exit
            _stranded.append(cm)  # (its context manager must not be collected: that would join the loop thread)


_stranded: list[AbstractContextManager[BlockingPortal]] = []
