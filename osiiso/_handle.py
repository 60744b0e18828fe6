"""TaskHandle: the user's view of one submitted task, and the engine's record of it.

A handle is handed out by the queue; users never construct one. It is also the
engine's bookkeeping record (one object per task keeps memory per queued task low),
so every field that starts with ``_`` belongs to the engine.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio

from ._errors import TaskCancelledError
from ._events import osiiso_logger
from ._result import _CANCELLED, _PENDING, _SUCCEEDED
from ._results import AttemptTiming, TaskResult, TaskStatus

if TYPE_CHECKING:
    from ._loops import LoopCaller
    from ._options import TaskOptions

__all__ = ("TaskHandle", "as_completed")

T = TypeVar("T")
logger = osiiso_logger

# where an unfinished task is: exactly one of these at any time (docs/internals.md); NEW until
# the engine takes it in (`Engine.admit`), which for a task another thread submitted is later
NEW, WAITING, SCHEDULED, READY, RUNNING, DONE = "new", "waiting", "scheduled", "ready", "running", "done"


#: seconds a handle of a queue that is not running is awaited before a ``RuntimeWarning``
NOT_RUNNING_GRACE = 1.0


def _not_running_hint(handle: TaskHandle[Any]) -> str:
    return (f"awaiting task {handle._name!r} ({handle.task_id}) of a queue that is not running: it "
            f"has waited {NOT_RUNNING_GRACE:g}s and cannot end until the queue runs — call `await q.run()` "
            "(or `await q.join()`), or submit inside `async with osiiso.AsyncQueue() as q:`")


class TaskOwner(Protocol):
    """What a handle needs of the engine that owns it (``osiiso._engine.Engine``)."""

    @property
    def caller(self) -> LoopCaller | None:
        """How other threads reach the owner's loop (``None`` while it is not running)."""

    def request_cancel(self, handle: TaskHandle[Any], reason: str) -> None:
        """Cancel ``handle`` from any thread."""


class TaskHandle(Generic[T]):
    """A submitted task. ``await handle`` gives its `TaskResult` once it ends.

    ``value()`` returns the task's value or raises its error (``TaskCancelledError``
    when it was cancelled). ``cancel()`` may be called from any thread.
    """

    __slots__ = (
        "__weakref__",
        "_args",
        "_attempt_at",
        "_attempts",
        "_backend",
        "_callbacks",
        "_cancel_reason",
        "_created_at",
        "_dependents",
        "_deps",
        "_engine",
        "_event",
        "_fn",
        "_kwargs",
        "_name",
        "_options",
        "_ready_at",
        "_result",

        "_seq",
        "_slot",
        "_started_at",
        "_status",
        "_timings",
        "_where",
    )

    def __init__(self, engine: TaskOwner, seq: int, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], options: TaskOptions, backend: str, name: str,
                 created_at: float) -> None:
        self._engine = engine
        self._seq = seq
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._options = options
        self._backend = backend
        self._name = name
        self._status = _PENDING
        self._attempts = 0
        self._created_at = created_at
        self._started_at: float | None = None
        # the clock of the current attempt and the attempts closed so far (`_engine.attempts`)
        self._ready_at = created_at
        self._attempt_at: float | None = None
        self._timings: tuple[AttemptTiming, ...] = ()
        self._result: TaskResult | None = None
        self._event: anyio.Event | None = None
        self._callbacks: list[Callable[[TaskHandle[T]], object]] | None = None
        self._where = NEW
        self._cancel_reason: str | None = None
        self._slot: Any = None
        self._deps = 0
        self._dependents: list[TaskHandle[Any]] | None = None

    # -- identity ---------------------------------------------------------------------
    @property
    def task_id(self) -> str:
        """The task's id, unique within its queue (``"task-<n>"``)."""
        return f"task-{self._seq}"

    @property
    def name(self) -> str:
        """The ``name`` option, or the function's name when none was given."""
        return self._name

    @property
    def backend(self) -> str:
        """The backend that runs the task (``"auto"`` already resolved)."""
        return self._backend

    @property
    def group_id(self) -> str | None:
        """The ``group_id`` option."""
        return self._options.group_id

    @property
    def metadata(self) -> Mapping[str, Any] | None:
        """The ``metadata`` option."""
        return self._options.metadata

    @property
    def priority(self) -> int:
        """The ``priority`` option (lower runs first)."""
        return self._options.priority

    @property
    def options(self) -> TaskOptions:
        """The task's merged, validated options."""
        return self._options

    @property
    def status(self) -> TaskStatus:
        """``pending``, ``running``, ``retrying``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self._status

    @property
    def attempts(self) -> int:
        """How many attempts have started so far."""
        return self._attempts

    # -- outcome ----------------------------------------------------------------------
    def done(self) -> bool:
        """Whether the task has its result."""
        return self._result is not None

    def cancelled(self) -> bool:
        """Whether the task ended cancelled."""
        return self._status is _CANCELLED

    def _require_result(self) -> TaskResult:
        result = self._result
        if result is None:
            raise RuntimeError(
                f"task {self._name!r} ({self.task_id}) has not finished yet — "
                "await the handle (or the run) before asking for its outcome"
            )
        return result

    def result(self) -> TaskResult:
        """The task's `TaskResult` (raises ``RuntimeError`` if it has not ended)."""
        return self._require_result()

    def exception(self) -> BaseException | None:
        """The task's exception, or ``None`` if it succeeded."""
        return self._require_result().exception

    def value(self) -> T:
        """The task's value; raises its exception, or ``TaskCancelledError`` if cancelled."""
        result = self._require_result()
        if result.status is _SUCCEEDED:
            return result.value  # type: ignore[no-any-return]
        exc = result.exception
        if exc is None or (result.status is _CANCELLED and not isinstance(exc, TaskCancelledError)):
            raise TaskCancelledError(result.message) from exc
        raise exc

    def cancel(self, reason: str | None = None) -> bool:
        """Ask for the task to be cancelled (from any thread).

        Returns ``True`` if the task will end cancelled, ``False`` if it had already ended (as
        ``concurrent.futures.Future.cancel``). A waiting task is cancelled at once; a running one
        is interrupted the way its backend allows (see the cancellation guide).
        """
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"cancel() takes a reason string or None, got {reason!r}")
        if self._result is not None:
            return False
        text = reason or "cancelled by handle.cancel()"
        if not text.startswith("cancelled"):
            text = f"cancelled: {text}"
        engine = self._engine
        caller = engine.caller
        if caller is None or caller.in_loop_thread():
            engine.request_cancel(self, text)
            return True
        # Another thread than the loop's: the answer must hold even if the task ends meanwhile.
        # The reason is set first; the loop reads it where it records the result, after it has
        # marked the task done (`Records.finish`). Not done yet: the loop will see the reason and
        # record a cancellation. Done: the loop is recording it (or has): its result says.
        self._cancel_reason = text
        if self._where is DONE:
            return self._settled_status() is _CANCELLED
        caller.call(engine.request_cancel, self, text)
        return True

    def _settled_status(self) -> TaskStatus:
        """The status of a task the loop is recording right now (another thread waits for it)."""
        pause = 0.0
        deadline = time.monotonic() + 5.0
        while self._result is None and time.monotonic() < deadline:
            time.sleep(pause)  # the loop's thread goes on: it is inside one synchronous call
            pause = min(pause * 2 or 1e-5, 1e-3)
        result = self._result
        return result.status if result is not None else _CANCELLED

    def add_done_callback(self, fn: Callable[[TaskHandle[T]], object]) -> None:
        """Call ``fn(handle)`` when the task ends (at once if it already has).

        Safe from any thread once the queue has started; ``fn`` runs on the loop's thread.
        """
        if not callable(fn):
            raise TypeError(f"add_done_callback() takes a callable fn(handle), got {fn!r}")
        caller = self._engine.caller
        if caller is not None and not caller.in_loop_thread():
            caller.call(self.add_done_callback, fn)
            return
        if self._result is not None:
            _call_quietly(fn, self)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(fn)

    async def wait(self) -> TaskResult:
        """Wait for the task to end and return its `TaskResult`.

        Awaited while its queue is not running (never started, or its run is over), the task
        cannot end until something runs the queue: after `NOT_RUNNING_GRACE` seconds with the
        queue still not running, a ``RuntimeWarning`` says so (once per place), and the wait
        goes on — a queue started later, by another task, still ends it.
        """
        if self._result is None:
            if self._event is None:
                self._event = anyio.Event()
            if self._engine.caller is None:
                with anyio.move_on_after(NOT_RUNNING_GRACE):
                    await self._event.wait()
                if self._result is None and self._engine.caller is None:
                    warnings.warn(_not_running_hint(self), RuntimeWarning, stacklevel=2)
            await self._event.wait()
        assert self._result is not None
        return self._result

    def __await__(self) -> Generator[Any, None, TaskResult]:
        return self.wait().__await__()

    def _finish(self, result: TaskResult) -> None:
        """Engine only: store the result and wake whoever waits (loop thread)."""
        self._result = result  # `Records.finish` has set ``_where`` to DONE already
        self._status = result.status
        self._slot = None
        self._wake()

    def _wake(self) -> None:
        """Engine only: the result is stored; wake whoever awaits it and run the done callbacks."""
        if self._event is not None:
            self._event.set()
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for fn in callbacks:
                _call_quietly(fn, self)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_id} {self._name!r} {self._status.value}>"


def _call_quietly(fn: Callable[[Any], object], arg: object) -> None:
    try:
        fn(arg)
    except BaseException as exc:  # a callback never breaks the engine that calls it, whatever it raises
        try:
            shown = repr(fn)
        except BaseException:
            shown = f"<{type(fn).__name__}>"
        logger.error("osiiso: done callback %s raised %s; ignoring it", shown, type(exc).__name__,
                     exc_info=(type(exc), exc, exc.__traceback__))


class _Completed(Generic[T]):
    """The async iterator `as_completed` returns: handles in the order they finish.

    A plain iterator, not an async generator, so leaving it early (first result wins) needs no
    clean-up: nothing to close, nothing to warn about, and the handles that end afterwards are
    simply not wanted.
    """

    __slots__ = ("_arrived", "_event", "_left")

    def __init__(self, pending: list[TaskHandle[T]]) -> None:
        self._arrived: deque[TaskHandle[T]] = deque()
        self._event: anyio.Event | None = None
        self._left = len(pending)
        for handle in pending:
            handle.add_done_callback(self._arrive)

    def _arrive(self, handle: TaskHandle[T]) -> None:
        self._arrived.append(handle)
        if self._event is not None:
            self._event.set()

    def __aiter__(self) -> _Completed[T]:
        return self

    async def __anext__(self) -> TaskHandle[T]:
        if not self._left:
            raise StopAsyncIteration
        while not self._arrived:
            self._event = anyio.Event()
            try:
                await self._event.wait()
            finally:
                self._event = None
        self._left -= 1
        return self._arrived.popleft()


def as_completed(handles: Iterable[TaskHandle[T]]) -> AsyncIterator[TaskHandle[T]]:
    """Yield ``handles`` as they finish, earliest first (``async for h in as_completed(...)``)."""
    pending = list(handles)
    for item in pending:
        if not isinstance(item, TaskHandle):
            raise TypeError(f"as_completed() takes task handles, got {item!r} — pass what submit() returned")
    return _Completed(pending)
