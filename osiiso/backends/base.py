"""The backend interface: how one attempt of one task runs, and how it is interrupted.

The engine (``osiiso._engine``) owns everything else: ordering, priorities, retries,
timeouts, rate limits, cancellation, hooks and results. A backend answers one
question only. It gets an `Attempt` and must

* run it and return its value, or raise the exception the task raised;
* stop it when the engine's cancel scope around `Backend.run` is cancelled
  (timeout, ``cancel()``, fail-first, shutdown): the async backend's coroutine is
  cancelled, a thread attempt is abandoned (its cooperative flag raised), a
  process attempt's worker is killed. In every case the backend lets the
  cancellation exception propagate; it never turns it into a value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._errors import TaskCancelledError

__all__ = ("Attempt", "Backend", "BackendConfig", "CancelledElsewhere", "forced_close_error")


@dataclass(frozen=True)
class BackendConfig:
    """The queue settings a backend may need, resolved once per queue.

    ``workers_auto``: the queue's ``workers`` was left automatic (``None``); then each open
    `Backend.remote` lane adds its capacity to the queue-wide cap (`Engine.opened`).
    ``spaced``: the queue has a ``rate`` limit, which spaces hand-overs: a backend then takes
    no more attempts than it can start at once, so none waits behind another and then starts
    back to back with it.
    """

    workers: int
    threads: int
    processes: int
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    mp_context: Any = None
    max_tasks_per_child: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    workers_auto: bool = False
    spaced: bool = False


class Attempt:
    """One try at running a task, as a backend sees it.

    ``fn(*args, **kwargs)`` is the call to make (dependencies already replaced by
    their values). ``timeout`` is the per-attempt limit in seconds, or ``None``;
    ``number`` counts attempts from 1. ``name`` and ``task_id`` (made from the
    task's submission number ``seq``) name the task in messages; ``priority``
    (lower runs first) is for a backend that queues attempts itself. The engine
    fills every field before each attempt. A backend that queues work before it
    really starts (a busy process worker) calls `hold_clock` when it queues the
    attempt and `restart_clock` when the attempt begins executing, so the timeout
    (and the task's ``started_at``) count execution only. `ran_on` names the
    worker that runs it (a thread, a process slot).
    """

    __slots__ = ("_clock", "_task", "args", "fn", "kwargs", "name", "number", "priority", "seq", "timeout")

    def __init__(self, fn: Callable[..., Any] | None, args: tuple[Any, ...], kwargs: dict[str, Any], number: int,
                 timeout: float | None, task: Any = None, clock: Any = None, *, name: str | None = None,
                 seq: int = 0, priority: int = 3) -> None:
        self.fn: Callable[..., Any] = fn  # type: ignore[assignment]  # None only in a blank the engine refills
        self.args = args
        self.kwargs = kwargs
        self.number = number
        self.timeout = timeout
        self.name: str = name if name is not None else getattr(fn, "__name__", repr(fn))
        self.seq = seq
        self.priority = priority
        self._task = task  # handed back to the clock; a backend sees it as `handle`
        self._clock = clock

    @property
    def task_id(self) -> str:
        """The id of the task this attempt belongs to (``"task-<seq>"``), for messages."""
        return f"task-{self.seq}" if self.seq else "task-?"

    @property
    def dependents(self) -> list[Any]:
        """The handles of the tasks still waiting for this attempt's task (it is one of their arguments).

        Read it when the attempt succeeds: a backend that can hand its result to those tasks
        without a round trip (dask's futures) keeps it for them until each has ended.
        """
        task = self._task
        found = getattr(task, "_dependents", None) or ()
        return [h for h in found if not h.done()]

    @property
    def handle(self) -> Any:
        """The `TaskHandle` of the task this attempt belongs to (``None`` outside the engine)."""
        return self._task

    def hold_clock(self) -> None:
        """The attempt waits (for a worker) before it runs: stop its timeout until
        `restart_clock` (call from the loop thread)."""
        if self._clock is not None:
            self._clock.hold(self._task)

    def batched(self) -> bool:
        """Ask to queue the attempt in a batch, behind others of a short function (loop thread).

        If granted (``True``), from now until the attempt ends the task leaves its lane's room for
        the next ready task, which can join a batch too; under the queue's ``workers`` the lane's
        batched tasks take only as many slots as its workers could be executing. It is refused on a
        queue with a ``rate`` limit, whose starts must stay spaced (tasks queued in a batch behind
        a slow one would start back to back): the backend then treats the attempt as unbatched.
        Only a backend that runs at most one such attempt per worker at a time, and holds at most
        `Backend.batch_capacity` of them, may ask.
        """
        return self._clock is not None and bool(self._clock.batch(self._task))

    def restart_clock(self, at: float | None = None) -> None:
        """The attempt starts executing now, or began at wall time ``at`` (a `time.time()` read where it
        runs): its timeout counts from there (loop thread)."""
        if self._clock is not None:
            self._clock.restart(self._task, at)

    def began(self) -> None:
        """The attempt really begins executing now (loop thread): a backend that `Backend.reports_starts`
        calls it once per attempt that runs, when it hands the attempt to an idle worker or when a
        queued one is reported started. The queue's ``on_start`` hook fires here."""
        if self._clock is not None:
            self._clock.attempt_began(self._task)

    def ran_on(self, where: str) -> None:
        """Name the place this attempt runs (``"thread/3"``, ``"process/0"``), for its
        `osiiso.AttemptTiming` (loop thread). Without it, the backend's name."""
        if self._clock is not None:
            self._clock.ran_on(self._task, where)


class Backend(ABC):
    """Runs attempts of tasks for the engine. One instance per queue and backend name."""

    #: the name used in ``TaskOptions.backend`` and in results
    name: ClassVar[str]
    #: its attempts run on other machines (a cluster), not on this one's threads and cores: with
    #: ``workers`` left automatic, the queue-wide cap grows by its ``capacity`` while it is open
    remote: ClassVar[bool] = False
    #: it calls `Attempt.began` when each attempt really begins (its attempts may wait in a worker's
    #: queue first): the engine then fires a plain ``on_start`` hook there, not before `run`
    reports_starts: ClassVar[bool] = False

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many attempts this backend may have in flight at once."""

    @property
    def parallel(self) -> int:
        """How many of its attempts can be executing at once (its workers), at most ``capacity``."""
        return self.capacity

    #: attempts this backend may hold queued in batches (`Attempt.batched`) beyond ``capacity``
    batch_capacity: int = 0
    #: attempts it batches at most now, for the function it last batched (``batch_capacity`` at most;
    #: fewer for a function whose calls take longer). While its lane holds as many, the engine hands
    #: the lane no task: one handed over then could not be batched, and would take a slot that
    #: frees only once the batches before it have run, so the workers would run dry first
    batch_limit: int = 0
    #: it can run an attempt without a coroutine awaiting it: `begin`, `outcome` and `abort`
    #: (the engine's direct attempts, ``osiiso._engine.direct``, for a queue without hooks)
    direct: ClassVar[bool] = False

    def begin(self, attempt: Attempt, ended: Callable[[Any], None]) -> Any:
        """Start ``attempt`` from plain code on the loop thread, and return a ticket for it.

        Later, on the loop thread and never from inside this call, the backend calls
        ``ended(ticket)`` once the attempt has an outcome (then `outcome` returns or raises
        it), unless `abort` was called first. An exception raised here is the attempt's failure.
        Only a backend with ``direct = True`` implements it; the `Attempt` stays the backend's
        until the attempt ends.
        """
        raise NotImplementedError

    def outcome(self, ticket: Any) -> Any:
        """The value of the ended attempt behind ``ticket``, or raise what it raised (after ``ended``)."""
        raise NotImplementedError

    def abort(self, ticket: Any) -> None:
        """Stop the attempt behind ``ticket`` (a timeout, a cancel, the queue stopping) as a cancelled
        `run` would: ``ended`` is not called for it afterwards."""
        raise NotImplementedError

    def check(self, fn: Callable[..., Any]) -> None:  # noqa: B027 - optional hook
        """Reject, at submit time, a callable this backend cannot run (raise ``TypeError``)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources; called in the loop before this backend's first attempt."""

    @abstractmethod
    def run(self, attempt: Attempt) -> Awaitable[Any]:
        """Run one attempt and return its value, or raise what it raised.

        Usually an ``async def``. Awaited inside a cancel scope owned by the engine: when
        that scope is cancelled the backend interrupts the attempt in its own way and
        re-raises the cancellation exception.
        """

    async def aclose(self, *, force: bool = False) -> None:  # noqa: B027 - optional hook
        """Release resources. ``force`` means do not wait for attempts in flight.

        A backend that holds attempts of its own (a pool's queue, its running calls) fails
        those still there after a forced close with `forced_close_error`.
        """

    def close_now(self) -> None:  # noqa: B027 - optional hook
        """Release resources at once, without awaiting (the queue was garbage-collected).

        Called from a finalizer, possibly in any thread and with no event loop running.
        """

    def stats(self) -> dict[str, int]:
        """Backend-specific counters merged into ``AsyncQueue.stats`` (live workers…)."""
        return {}


class CancelledElsewhere(TaskCancelledError):
    """Raised by `Backend.run` when something outside the engine cancelled the attempt.

    A cluster's operator cancelled its future, or its scheduler dropped it: the engine
    records the task ``cancelled`` with this message as the reason (never retried), where
    any other exception from ``run`` counts as the attempt's failure.
    """


def forced_close_error(backend: str) -> TaskCancelledError:
    """The error of an attempt still queued or running when ``backend`` was closed with ``force=True``.

    One error for every backend: the thread and process pools fail such attempts with it
    (the async backend holds none: the engine cancels its coroutines). A fresh exception
    per attempt, so no two tasks share a traceback.
    """
    return TaskCancelledError(
        f"the {backend} backend was closed with force=True while this attempt was queued or running, "
        "so it was stopped — shut down without force=True to let running tasks finish")
