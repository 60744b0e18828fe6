"""Chaos: seeded random mixes of tasks that succeed, fail, hang, crash and get cancelled.

Each round builds one queue and routes every task to the async, thread or process backend
(chosen per task). The tasks succeed, raise, time out, hang until cancelled (from a task on
the loop, from another thread, or by ``q.cancel()``), crash their worker process
(``os._exit``, SIGKILL, a segfault), return unpicklable values, raise unpicklable
exceptions (some whose pickling raises ``SystemExit`` or ``KeyboardInterrupt``), run out of
memory under an address-space limit, raise ``KeyboardInterrupt`` or ``SystemExit``, depend
on each other, and are submitted while the queue shuts down. Process tasks also write junk
on their worker's result pipe, fork (the child falling out of the task), leave a non-daemon
thread behind, and start processes in a new session. Beside the main queue, each round runs
a small hostile queue whose initializer kills every worker, hangs, or kills about half of
them before they are ready.

After every round the suite checks the promise: every handle is done with the outcome its
kind calls for; ``on_complete`` saw exactly one ``TaskResult`` per task (the handle's own);
the summary's counts add up; ``run()`` returned within its bound; the engine's invariants
hold; no child process (the new-session ones included), thread or file descriptor is left
behind; and the queue runs again.

``pytest tests/chaos`` runs the short scale (CI); ``pytest tests/chaos --chaos-scale=full``
(or ``OSIISO_CHAOS_SCALE=full``) the long one: 100,000 tasks and over 1,000 crashes.
"""

from __future__ import annotations

import collections
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import cloudpickle
import pytest
from procutil import proc_state
from support import LOOPS, aeventually, eventually

from osiiso import (
    AsyncQueue,
    ClosedError,
    DependencyError,
    RemoteError,
    SerializationError,
    TaskCancelledError,
    TaskHandle,
    TaskResult,
    TaskTimeoutError,
    WorkerCrashedError,
)
from osiiso._engine.invariants import check_invariants
from osiiso._loops import current_loop_caller
from osiiso.backends.process import supervisor

from . import tasks

cloudpickle.register_pickle_by_value(tasks)

pytestmark = [pytest.mark.chaos]

RUN_BOUND = 90.0  # seconds: the longest one run() of a round may take
SIDE_TASKS = 4  # tasks per round on the hostile side queue
SETTLE = 15.0  # seconds: how long abandoned thread attempts get to notice and return
MODES = ("drain", "qcancel", "qcancel_mid", "shutdown", "shutdown_force")
BACKENDS = ("async", "thread", "process")
SYNC_ONLY = ("crash_exit", "crash_kill", "crash_segv", "memory", "orphan", "junk", "fork", "thread_left",
             "session_orphan")
SIDES = ("crash", "hang", "flaky")  # the initializer of each round's hostile side queue
LINGER = 0.5  # seconds: the process pool's EXIT_GRACE in these rounds (workers that linger are normal here)

# kind -> weight in the mix
WEIGHTS: dict[str, int] = {
    "ok": 40,
    "raise": 8,
    "timeout": 3,
    "cancel_early": 4,
    "cancel_loop": 3,
    "cancel_thread": 3,
    "cancel_done": 2,
    "unpicklable_value": 3,
    "unpicklable_error": 3,
    "keyboard_interrupt": 2,
    "system_exit": 2,
    "depend": 10,
    "crash_exit": 2,
    "crash_kill": 2,
    "crash_segv": 2,
    "memory": 1,
    "orphan": 1,
    "detached": 2,
    "unprintable": 3,  # its exception's __str__ and __repr__ raise
    "hook_raise": 3,  # its on_start and on_complete hooks raise SystemExit, a done callback KeyboardInterrupt
    "chain": 1,  # starts a dependency chain of 50-300 links on a head that fails or is cancelled
    "base_unpicklable_value": 2,
    "base_unpicklable_error": 2,
    "junk": 2,
    "fork": 2,
    "thread_left": 1,
    "session_orphan": 1,
}
#: the kinds a chain's head is (each fails, or is cancelled, so that every link ends with DependencyError)
CHAIN_HEADS = ("raise", "unprintable", "cancel_loop")


@dataclass
class Spec:
    """One task of a round: what it does and on which backend."""

    index: int
    kind: str
    backend: str
    retries: int = 0
    dep: int | None = None
    handle: TaskHandle[Any] | None = None
    orphan_file: str | None = None
    late: bool = False  # submitted by the stopper thread, once every other task has ended


@dataclass
class Tally:
    """Figures over all rounds."""

    tasks: int = 0
    crashes: int = 0
    cancellations: int = 0
    timeouts: int = 0
    closed_rejections: int = 0
    abandoned_threads: int = 0
    killed_workers: int = 0
    start_failures: int = 0
    rounds: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)


# -- what is left behind ----------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def is_mp_helper(pid: int) -> bool:
    """multiprocessing's resource tracker and forkserver (they exit with the parent)."""
    cmd = _cmdline(pid)
    return "multiprocessing.resource_tracker" in cmd or "multiprocessing.forkserver" in cmd


def leftover_processes() -> list[str]:
    """Descendants of this process (zombies included), multiprocessing's helpers left out.

    A forkserver's own children are workers started through it, so they count.
    """
    left: list[str] = []
    stack = _children(os.getpid())
    while stack:
        pid = stack.pop()
        stack.extend(_children(pid))
        if not is_mp_helper(pid):
            left.append(f"{pid} [{proc_state(pid)}] {_cmdline(pid)[:100]}")
    return left


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def extra_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def settle_threads(before: set[threading.Thread], bound: float = SETTLE) -> list[threading.Thread]:
    """Wait (up to ``bound``) for threads started since ``before`` to end; return the survivors."""
    deadline = time.monotonic() + bound
    for thread in extra_threads(before):
        thread.join(max(0.0, deadline - time.monotonic()))
    return extra_threads(before)


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """Start what lives for the whole interpreter before any baseline is taken.

    That is multiprocessing's forkserver and resource tracker, and uvloop's first-use pipe.
    """
    async def main() -> None:
        async with AsyncQueue(processes=1) as q:
            assert (await q.submit(tasks.s_ok, 1, backend="process")).value == 1

    for loop, options in LOOPS:
        anyio.run(main, backend=loop, backend_options=options)


# -- the mix ------------------------------------------------------------------------------
def make_mix(rng: random.Random, count: int, mode: str, tmp: Path) -> list[Spec]:
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    specs: list[Spec] = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        backend = "process" if kind in SYNC_ONLY else rng.choice(BACKENDS)
        if kind == "chain":
            specs.extend(make_chain(rng, len(specs)))
            continue
        spec = Spec(len(specs), kind, backend)
        if kind == "raise":
            spec.retries = rng.choice((0, 0, 1, 2))
        if kind == "depend":
            spec.dep = rng.randrange(spec.index) if spec.index else None
            if spec.dep is None:
                spec.kind = "ok"
        if kind in ("orphan", "session_orphan"):
            spec.orphan_file = str(tmp / f"orphan-{spec.index}")
        specs.append(spec)
    if mode == "qcancel":
        # tasks that hang until q.cancel(): on the loop and on threads from the start (they keep
        # the run open), on the process pool only once the rest has ended (a short process task
        # could otherwise queue behind it, see test_short_task_never_waits_behind_a_long_one)
        # (one on the thread pool of six and two on the loop: hung tasks count against workers=16,
        # so the others keep serving)
        for n in range(4):
            backend = ("process", "thread")[n] if n < 2 else "async"
            specs.append(Spec(len(specs), "forever", backend, late=n == 0))
    return specs


def make_chain(rng: random.Random, first: int) -> list[Spec]:
    """A head that fails or is cancelled, then 50-300 links, each depending on the one before."""
    head = Spec(first, rng.choice(CHAIN_HEADS), rng.choice(BACKENDS))
    chain = [head]
    for index in range(first + 1, first + 1 + rng.randrange(50, 300)):
        chain.append(Spec(index, "depend", rng.choice(BACKENDS), dep=index - 1))
    return chain


def call_of(spec: Spec, specs: list[Spec]) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The function, arguments and options that submit ``spec``."""
    sync = spec.backend != "async"
    kind, tag = spec.kind, f"t{spec.index}"
    options: dict[str, Any] = {"backend": spec.backend, "name": f"{kind}-{spec.index}"}
    # a hung task ends by its cancel or timeout however late load makes that, within the round's bound
    hang = (tasks.s_hang if sync else tasks.a_hang, (RUN_BOUND,))
    table: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        "ok": (tasks.s_ok if sync else tasks.a_ok, (tag,)),
        "hook_raise": (tasks.s_ok if sync else tasks.a_ok, (tag,)),
        "unprintable": (tasks.s_unprintable if sync else tasks.a_unprintable, (tag,)),
        "detached": (tasks.s_ok if sync else tasks.a_ok, (tag,)),
        "cancel_done": (tasks.s_ok if sync else tasks.a_ok, (tag,)),
        "raise": (tasks.s_raise if sync else tasks.a_raise, (tag,)),
        "timeout": hang,
        "cancel_early": hang,
        "cancel_loop": hang,
        "cancel_thread": hang,
        "forever": hang,
        "unpicklable_value": (tasks.s_unpicklable_value if sync else tasks.a_unpicklable_value, ()),
        "unpicklable_error": (tasks.s_unpicklable_error if sync else tasks.a_unpicklable_error, (tag,)),
        "keyboard_interrupt": (tasks.s_keyboard_interrupt if sync else tasks.a_keyboard_interrupt, ()),
        "system_exit": (tasks.s_system_exit if sync else tasks.a_system_exit, ()),
        "crash_exit": (tasks.s_exit, ()),
        "crash_kill": (tasks.s_sigkill, ()),
        "crash_segv": (tasks.s_segfault, ()),
        "memory": (tasks.s_memory, ()),
        "orphan": (tasks.s_orphan, (spec.orphan_file,)),
        "session_orphan": (tasks.s_session_orphan, (spec.orphan_file,)),
        "base_unpicklable_value": (tasks.s_base_unpicklable_value if sync else tasks.a_base_unpicklable_value,
                                   (tag,)),
        "base_unpicklable_error": (tasks.s_base_unpicklable_error if sync else tasks.a_base_unpicklable_error,
                                   (tag,)),
        "junk": (tasks.s_junk, (tag, spec.index % 3)),
        "fork": (tasks.s_fork, (tag, spec.index % 2)),
        "thread_left": (tasks.s_thread_left, (tag,)),
    }
    if kind == "depend":
        assert spec.dep is not None
        fn: Callable[..., Any] = tasks.s_ok if sync else tasks.a_ok
        return fn, (specs[spec.dep].handle,), options
    fn, args = table[kind]
    if kind in ("timeout", "orphan"):
        options["timeout"] = 0.1 if spec.backend == "async" else 0.3
    if kind == "session_orphan":
        options["timeout"] = 1.0  # time enough to start both processes and record them
    if kind == "raise":
        options.update(retries=spec.retries, retry_delay=0.001, backoff=2.0)
    if kind == "detached":
        options["detached"] = True
    return fn, args, options


# -- what each kind must end with ------------------------------------------------------------
def check_outcome(spec: Spec, result: TaskResult, specs: list[Spec], messy: bool) -> None:
    """Assert that ``result`` is what ``spec``'s kind calls for (``messy``: a cancel is fine too)."""
    kind, backend, exc = spec.kind, spec.backend, result.exception
    where = f"{spec.kind} on {backend}: {result!r}"
    if messy and result.status == "cancelled":
        assert isinstance(exc, TaskCancelledError), where
        return
    if kind in ("ok", "detached", "cancel_done", "hook_raise", "fork", "thread_left"):
        assert result.status == "succeeded" and result.value == f"t{spec.index}", where
        assert result.detached is (kind == "detached"), where
    elif kind == "junk":
        assert result.status == "failed" and isinstance(exc, WorkerCrashedError), where
        assert "result pipe" in str(exc), where
    elif kind == "base_unpicklable_value":
        if backend == "process":
            assert result.status == "failed" and isinstance(exc, SerializationError), where
            assert "BaseUnpicklable" in str(exc) and "SystemExit" in str(exc), where
        else:
            assert result.status == "succeeded" and result.value.tag == f"t{spec.index}", where
    elif kind == "base_unpicklable_error":
        assert result.status == "failed", where
        if backend == "process":
            assert isinstance(exc, RemoteError) and "BaseUnpicklableError" in exc.type_name, where
            assert f"base t{spec.index}" in str(exc), where
        else:
            assert isinstance(exc, tasks.BaseUnpicklableError), where
    elif kind == "raise":
        assert result.status == "failed" and isinstance(exc, ValueError), where
        assert f"boom t{spec.index}" in str(exc) and result.attempts == spec.retries + 1, where
    elif kind in ("timeout", "orphan", "session_orphan"):
        assert result.status == "failed" and isinstance(exc, TaskTimeoutError), where
        assert "timed out after" in result.message, where
    elif kind in ("cancel_early", "cancel_loop", "cancel_thread", "forever"):
        assert result.status == "cancelled" and isinstance(exc, TaskCancelledError), where
    elif kind == "unpicklable_value":
        if backend == "process":
            assert result.status == "failed" and isinstance(exc, SerializationError), where
            assert "_thread.lock" in str(exc), where
        else:
            assert result.status == "succeeded" and type(result.value).__name__ == "lock", where
    elif kind == "unpicklable_error":
        assert result.status == "failed", where
        if backend == "process":
            assert isinstance(exc, RemoteError) and "LockedError" in exc.type_name, where
            assert f"locked t{spec.index}" in str(exc) and "Traceback" in exc.remote_traceback, where
        else:
            assert isinstance(exc, tasks.LockedError), where
    elif kind == "unprintable":
        assert result.status == "failed" and type(exc).__name__ == "Unprintable", where
        assert "could not be shown" in result.message, where
    elif kind == "keyboard_interrupt":
        assert result.status == "failed" and isinstance(exc, KeyboardInterrupt), where
    elif kind == "system_exit":
        assert result.status == "failed" and isinstance(exc, SystemExit) and exc.code == 3, where
    elif kind.startswith("crash_"):
        assert result.status == "failed" and isinstance(exc, WorkerCrashedError), where
        assert exc.pid and str(exc.pid) in str(exc), where
        expected = {"crash_exit": (7, None), "crash_kill": (-9, "SIGKILL"), "crash_segv": (-11, "SIGSEGV")}
        assert (exc.exitcode, exc.signal_name) == expected[kind], where
    elif kind == "memory":
        assert result.status == "failed" and isinstance(exc, MemoryError), where
    elif kind == "depend":
        assert spec.dep is not None
        upstream = specs[spec.dep].handle
        assert upstream is not None and upstream.done(), where
        up = upstream.result()
        if up.status != "succeeded":
            assert result.status == "failed" and isinstance(exc, DependencyError), where
            assert result.attempts == 0 and exc.__cause__ is up.exception, where
        elif backend == "process" and type(up.value).__name__ in ("lock", "BaseUnpicklable"):
            assert result.status == "failed" and isinstance(exc, SerializationError), where
        else:
            assert result.status == "succeeded" and result.value is up.value or result.value == up.value, where
    else:  # pragma: no cover
        raise AssertionError(f"unknown kind {kind}")


def _interrupting_callback(handle: TaskHandle[Any]) -> None:
    raise KeyboardInterrupt(f"a done callback of {handle.name} raises")  # logged; nothing breaks


# -- one round ------------------------------------------------------------------------------
class Round:
    """One queue, one seeded mix, one ending (``mode``), and every check."""

    def __init__(self, seed: int, count: int, mode: str, tmp: Path, tally: Tally) -> None:
        self.rng = random.Random(seed)
        self.seed, self.mode, self.tally = seed, mode, tally
        self.messy = mode in ("qcancel_mid", "shutdown_force")
        own = tmp / f"round-{seed}"  # orphan pid files must not outlive their round (pids are reused)
        own.mkdir(exist_ok=True)
        self.specs = make_mix(self.rng, count, mode, own)
        self.completed: list[TaskResult] = []
        self.starts = 0
        self.started_loop: dict[int, anyio.Event] = {}
        self.started_thread: dict[int, threading.Event] = {}
        self.started_forever: dict[int, threading.Event] = {}
        self.live: dict[int, TaskHandle[Any]] = {}
        self.handles: list[TaskHandle[Any]] = []
        self.by_id: dict[str, Spec] = {}
        self.queue = AsyncQueue(workers=16, threads=6, processes=2, on_start=self.on_start,
                                on_complete=self.on_complete)
        # the hostile side queue: every worker it starts dies starting, hangs starting, or half of them die
        self.side_kind = SIDES[seed % len(SIDES)]
        initializer, initargs = {"crash": (tasks.init_crash, (("exit", "kill", "segv")[seed // 3 % 3],)),
                                 "hang": (tasks.init_hang, ()), "flaky": (tasks.init_flaky, ())}[self.side_kind]
        self.side_completed: list[TaskResult] = []
        self.side = AsyncQueue(processes=2, initializer=initializer, initargs=initargs,
                               on_complete=self.side_completed.append)
        self.side_handles: list[TaskHandle[Any]] = []

    def on_complete(self, result: TaskResult) -> None:
        self.completed.append(result)
        if result.name.startswith("hook_raise-"):
            raise SystemExit(f"on_complete of {result.name} raises")  # logged; the queue goes on

    # hooks (loop thread)
    def on_start(self, handle: TaskHandle[Any]) -> None:
        self.starts += 1
        if self.starts % 97 == 0:
            check_invariants(self.queue._engine)
        # the name says which spec this is (a producer thread may not have stored the handle yet)
        kind, _, index = handle.name.rpartition("-")
        if kind in ("cancel_loop", "cancel_thread", "forever"):
            self.live[int(index)] = handle  # a producer thread may not have stored it yet
        if kind == "cancel_loop":
            self.started_loop[int(index)].set()
        elif kind == "cancel_thread":
            self.started_thread[int(index)].set()
        elif kind == "forever":
            self.started_forever[int(index)].set()
        elif kind == "hook_raise":
            raise SystemExit(f"on_start of {handle.name} raises")  # logged; the task runs all the same

    def submit(self, spec: Spec) -> TaskHandle[Any]:
        fn, args, options = call_of(spec, self.specs)
        handle = self.queue.submit(fn, *args, **options)
        if spec.kind == "hook_raise":
            handle.add_done_callback(_interrupting_callback)
        spec.handle = handle
        self.by_id[handle.task_id] = spec
        self.handles.append(handle)
        return handle

    async def run(self) -> None:
        """The main queue's round, and beside it the hostile side queue's."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_side)
            await self._run_main()
        self._check_side()

    async def _run_side(self) -> None:
        """A few process tasks on the side queue, then its shutdown: all within the run bound."""
        side = self.side
        timeout = 0.3 if self.side_kind == "hang" else None
        self.side_handles = [side.submit(tasks.s_ok, f"side{i}", backend="process", timeout=timeout,
                                         name=f"side-{i}") for i in range(SIDE_TASKS)]
        with anyio.move_on_after(RUN_BOUND) as bound:
            await side.run()
            await side.shutdown(force=self.mode == "shutdown_force")
        assert not bound.cancelled_caught, f"the {self.side_kind} side queue hung (seed {self.seed})"

    def _check_side(self) -> None:
        """Each side task ended once, as its initializer calls for."""
        seen = collections.Counter(r.task_id for r in self.side_completed)
        assert sorted(seen) == sorted(h.task_id for h in self.side_handles) and set(seen.values()) == {1}, seen
        for handle in self.side_handles:
            result = handle.result()
            exc, where = result.exception, f"{self.side_kind} side: {result!r} (seed {self.seed})"
            start_failed = isinstance(exc, WorkerCrashedError) and "while starting" in str(exc)
            if self.side_kind == "hang":
                assert result.status == "failed" and isinstance(exc, TaskTimeoutError), where
            elif self.side_kind == "crash":
                assert result.status == "failed" and start_failed, where
            else:
                assert result.value == handle.name.replace("-", "") or start_failed, where
            self.tally.start_failures += start_failed

    async def _run_main(self) -> None:
        q = self.queue
        caller_events: list[threading.Thread] = []
        self.cancel_threads: list[threading.Thread] = []
        cancel_threads = self.cancel_threads
        specs = [s for s in self.specs if not s.late]
        for spec in self.specs:
            if spec.kind == "cancel_loop":
                self.started_loop[spec.index] = anyio.Event()
            elif spec.kind == "cancel_thread":
                self.started_thread[spec.index] = threading.Event()
            elif spec.kind == "forever":
                self.started_forever[spec.index] = threading.Event()
        # tasks whose dependency is submitted from another thread would race it: the loop submits
        # the first 70 %, two producer threads the rest (depending only on the first part)
        split = int(len(specs) * 0.7)
        for spec in specs[split:]:
            if spec.kind == "depend" and spec.dep is not None and spec.dep >= split:
                spec.dep = self.rng.randrange(split) if split else None
                if spec.dep is None:
                    spec.kind = "ok"
        ending = self.mode.startswith("shutdown")

        def wait_started(spec: Spec) -> None:
            """Wait until the task started (or already ended, as a cancel in a messy round does)."""
            event = self.started_thread[spec.index]
            eventually(lambda: event.is_set() or (spec.handle is not None and spec.handle.done()),
                       lambda: f"{spec.handle!r} to start", RUN_BOUND)

        self.wait_started = wait_started
        async with anyio.create_task_group() as tg:
            await q.start()

            async def cancel_when_started(spec: Spec) -> None:
                await self.started_loop[spec.index].wait()
                self.live[spec.index].cancel()

            def cancel_from_thread(spec: Spec) -> None:
                wait_started(spec)
                handle = self.live.get(spec.index) or spec.handle
                assert handle is not None
                handle.cancel("cancelled from another thread")

            self.cancel_from_thread = cancel_from_thread
            for spec in specs:
                if spec.kind == "cancel_loop":
                    tg.start_soon(cancel_when_started, spec)
            loop_part = specs[:split]
            # wait for the loop part to be submitted: thread cancellers need their handles
            for i, spec in enumerate(loop_part):
                handle = self.submit(spec)
                if spec.kind == "cancel_early":
                    handle.cancel()
                if i % 50 == 49:
                    await anyio.sleep(0)
            for spec in specs:
                if spec.kind == "cancel_thread" and spec.handle is not None:
                    thread = threading.Thread(target=cancel_from_thread, args=(spec,), name="chaos-canceller")
                    thread.start()
                    cancel_threads.append(thread)
            produced = anyio.Event()
            caller = current_loop_caller()
            remaining = [2]
            lock = threading.Lock()

            def producer(part: list[Spec]) -> None:
                try:
                    for spec in part:
                        if ending and spec.index % 2:
                            continue  # the loop submits these while the queue shuts down
                        handle = self.submit(spec)
                        if spec.kind == "cancel_early":
                            handle.cancel()
                        elif spec.kind == "cancel_thread":
                            wait_started(spec)
                            handle.cancel("cancelled from another thread")
                finally:
                    with lock:
                        remaining[0] -= 1
                        last = remaining[0] == 0
                    if last:  # queued after every hand-over of both producers
                        caller.call(produced.set)

            thread_part = specs[split:]
            for part in (thread_part[0::2], thread_part[1::2]):
                thread = threading.Thread(target=producer, args=(part,), name="chaos-producer")
                thread.start()
                caller_events.append(thread)
            await produced.wait()
            for thread in caller_events:
                thread.join()
            if ending:
                await self._shutdown_while_submitting(thread_part)
            else:
                await self._run_to_the_end()
            tg.cancel_scope.cancel()
        for thread in cancel_threads:
            thread.join(RUN_BOUND)
            assert not thread.is_alive(), "a canceller thread hung"
        await self._check()
        await self._run_again()

    async def _run_to_the_end(self) -> None:
        q = self.queue
        stopper: threading.Thread | None = None
        if self.mode == "qcancel":
            others = [s.handle for s in self.specs if s.kind != "forever" and s.handle is not None]
            left = [len(others)]
            all_done = threading.Event()

            def one_done(_: object) -> None:
                left[0] -= 1
                if left[0] == 0:
                    all_done.set()

            for handle in others:
                handle.add_done_callback(one_done)
            if not others:
                all_done.set()

            def stop() -> None:
                assert all_done.wait(RUN_BOUND), "the other tasks never finished"
                late = [s for s in self.specs if s.late]
                for spec in late:
                    self.submit(spec)
                for spec in self.specs:
                    if spec.kind == "forever":  # cancel them while they run
                        assert self.started_forever[spec.index].wait(RUN_BOUND), "never started"
                q.cancel()

            stopper = threading.Thread(target=stop, name="chaos-stopper")
        elif self.mode == "qcancel_mid":
            threshold = self.rng.randrange(max(1, len(self.handles)))
            reached = threading.Event()
            count = [0]

            def counted(_: object) -> None:
                count[0] += 1
                if count[0] >= threshold:
                    reached.set()

            for handle in self.handles:
                handle.add_done_callback(counted)

            def stop_mid() -> None:
                reached.wait(RUN_BOUND)
                q.cancel()

            stopper = threading.Thread(target=stop_mid, name="chaos-stopper")
        if stopper is not None:
            stopper.start()
        began = time.monotonic()
        summary = None
        with anyio.move_on_after(RUN_BOUND) as bound:
            try:
                summary = await q.run()
            except ClosedError:
                # the stopper's q.cancel() came before run() began, every task ended already: a
                # closed queue with nothing left has nothing to run (load can make a round that fast)
                assert self.mode == "qcancel_mid" and q.closed and not q._engine.outstanding
        elapsed = time.monotonic() - began
        assert not bound.cancelled_caught, f"run() did not return within {RUN_BOUND}s (seed {self.seed})"
        if stopper is not None:
            stopper.join(RUN_BOUND)
        self.elapsed = elapsed
        if summary is None:
            return
        assert summary.total_submitted == summary.succeeded + summary.failed + summary.cancelled
        assert summary.timeouts == sum(isinstance(r.exception, TaskTimeoutError) for r in summary.results)
        assert all(not r.detached for r in summary.results)
        ids = [r.task_id for r in summary.results]
        assert len(ids) == len(set(ids)), "a task appears twice in the summary"
        assert ids == sorted(ids, key=lambda t: int(t[5:])), "the summary is not in submission order"
        recorded = {r.task_id: r for r in q.results}
        assert all(recorded[r.task_id] is r for r in summary.results)

    async def _shutdown_while_submitting(self, thread_part: list[Spec]) -> None:
        """Shut down (gracefully or by force) while a loop task keeps submitting."""
        q = self.queue
        force = self.mode == "shutdown_force"
        late = [s for s in thread_part if s.index % 2]
        rejected = 0
        began = time.monotonic()
        with anyio.move_on_after(RUN_BOUND) as bound:
            async with anyio.create_task_group() as tg:
                async def submit_late() -> None:
                    nonlocal rejected
                    for spec in late:
                        if spec.kind == "depend" and spec.dep is not None and self.specs[spec.dep].handle is None:
                            spec.kind = "ok"
                        try:
                            handle = self.submit(spec)
                        except ClosedError as exc:
                            assert "shut down" in str(exc)
                            rejected += 1
                        else:
                            if spec.kind == "cancel_early":
                                handle.cancel()
                            elif spec.kind == "cancel_thread":
                                thread = threading.Thread(target=self.cancel_from_thread, args=(spec,),
                                                          name="chaos-canceller")
                                thread.start()
                                self.cancel_threads.append(thread)
                        await anyio.sleep(0)

                tg.start_soon(submit_late)
                await anyio.sleep(0)
                await q.shutdown(force=force)
        self.elapsed = time.monotonic() - began
        assert not bound.cancelled_caught, f"shutdown() did not return within {RUN_BOUND}s (seed {self.seed})"
        assert q.closed
        self.tally.closed_rejections += rejected
        with pytest.raises(ClosedError):
            q.submit(tasks.a_ok, 1)

    async def _check(self) -> None:
        q, specs = self.queue, self.specs
        submitted = [s for s in specs if s.handle is not None]
        check_invariants(q._engine)
        assert q._engine.outstanding == 0 and q.active_count == 0 and q.pending_count == 0
        seen = collections.Counter(r.task_id for r in self.completed)
        doubles = {k: v for k, v in seen.items() if v != 1}
        assert not doubles, f"on_complete saw these tasks more than once: {doubles}"
        assert set(seen) == {s.handle.task_id for s in submitted}, "a task never reported on_complete"  # type: ignore[union-attr]
        hooked = {r.task_id: r for r in self.completed}
        for spec in submitted:
            handle = spec.handle
            assert handle is not None
            assert handle.done(), f"{handle!r} ({spec.kind} on {spec.backend}) is not done (seed {self.seed})"
            result = handle.result()
            assert hooked[handle.task_id] is result, "on_complete got another result than the handle"
            assert result.status == handle.status
            check_outcome(spec, result, specs, self.messy)
            if spec.kind == "cancel_done":
                assert handle.cancel() is False and handle.status == result.status
            self.tally.statuses[result.status.value] += 1
            if isinstance(result.exception, WorkerCrashedError):
                self.tally.crashes += 1
            if isinstance(result.exception, TaskTimeoutError):
                self.tally.timeouts += 1
            if result.status == "cancelled":
                self.tally.cancellations += 1
        kept = [r for r in q.results]  # detached tasks included (SPEC section 8)
        assert len(kept) == len(submitted), "queue.results lost or doubled"
        assert {r.task_id for r in kept} == {s.handle.task_id for s in submitted}  # type: ignore[union-attr]
        self.tally.tasks += len(submitted)
        for spec in submitted:
            if spec.orphan_file and os.path.exists(spec.orphan_file):
                numbers = list(map(int, Path(spec.orphan_file).read_text().split()))
                for pid, started in zip(numbers[0::2], numbers[1::2]):
                    # a SIGKILLed process still shows 'R' until it is scheduled to die: give it a moment
                    await aeventually(lambda: (tasks.start_time(pid) != started  # a later process reusing the pid
                                               or proc_state(pid) in ("", "Z")),
                                      f"the child {pid} of a killed worker ({spec.kind}) to die", SETTLE)
        stats = q.stats
        if "thread" in stats:
            self.tally.abandoned_threads += stats["thread"]["threads_abandoned"]
        if "process" in stats:
            self.tally.killed_workers += stats["process"]["processes_killed"]

    async def _run_again(self) -> None:
        """The queue runs again: as it is, or (after a shutdown) once reset."""
        q = self.queue
        if q.closed:
            q.reset()
        else:
            q.clear_results()
        handles = [q.submit(tasks.s_ok if b != "async" else tasks.a_ok, b, backend=b) for b in BACKENDS]
        summary = await q.run()
        assert summary.ok and summary.values == BACKENDS
        assert [h.value() for h in handles] == list(BACKENDS)
        await q.shutdown()


def run_round(seed: int, count: int, mode: str, loop: tuple[str, dict[str, Any]], tmp: Path,
              tally: Tally) -> float:
    """Run one round in a fresh event loop and check what it leaves behind; return its seconds."""
    threads_before = set(threading.enumerate())
    fds_before = fd_count()
    began = time.monotonic()
    chaos = Round(seed, count, mode, tmp, tally)
    anyio.run(chaos.run, backend=loop[0], backend_options=loop[1])
    seconds = time.monotonic() - began
    survivors = settle_threads(threads_before)
    assert not survivors, f"threads left behind (seed {seed}): {survivors}"
    left = leftover_processes()
    assert not left, f"processes left behind (seed {seed}): {left}"
    fds_after = fd_count()
    assert fds_after <= fds_before, f"file descriptors leaked (seed {seed}): {fds_before} -> {fds_after}"
    tally.rounds += 1
    return seconds


def report(tally: Tally, seconds: float) -> str:
    return (f"chaos: {tally.rounds} rounds, {tally.tasks} tasks in {seconds:.1f}s; "
            f"crashes {tally.crashes}, cancellations {tally.cancellations}, timeouts {tally.timeouts}, "
            f"workers killed {tally.killed_workers}, threads abandoned {tally.abandoned_threads}, "
            f"submits rejected while closing {tally.closed_rejections}, "
            f"side tasks failed for want of a worker that starts {tally.start_failures}; "
            f"statuses {dict(tally.statuses)}; "
            "leaks: none")


@pytest.mark.timeout(1800)
def test_chaos_rounds_keep_every_promise(chaos_scale: str, chaos_seeds: set[int] | None, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every seeded round ends each task exactly once, as its kind calls for, and leaves nothing behind."""
    monkeypatch.setattr(supervisor, "EXIT_GRACE", LINGER)  # workers kept alive by a thread are killed sooner
    tally = Tally()
    began = time.monotonic()
    if chaos_scale == "full":
        plan = [(seed, 2200, MODES[seed % len(MODES)], LOOPS[seed % len(LOOPS)]) for seed in range(50)]
    else:
        plan = [(seed, 300, MODES[seed % len(MODES)], LOOPS[seed % len(LOOPS)]) for seed in range(10)]
    if chaos_seeds is not None:
        plan = [step for step in plan if step[0] in chaos_seeds]
        assert plan, f"--chaos-seeds picked no round of the {chaos_scale} run"
    for seed, count, mode, loop in plan:
        # a failing round's seed is in the captured output, whatever raised
        print(f"chaos round: seed {seed}, {count} tasks, {mode}, {loop[0]} {loop[1]}", file=sys.stderr, flush=True)
        seconds = run_round(seed, count, mode, loop, tmp_path, tally)
        print(f"chaos round: seed {seed} passed in {seconds:.1f}s", file=sys.stderr, flush=True)
    seconds = time.monotonic() - began
    print(report(tally, seconds), file=sys.stderr)
    if chaos_seeds is not None:
        return  # a chosen few rounds: the totals below are for whole runs
    assert tally.tasks >= (100_000 if chaos_scale == "full" else 2000)
    if chaos_scale == "full":
        assert tally.crashes >= 1000
    assert tally.crashes > 0 and tally.cancellations > 0 and tally.timeouts > 0


@pytest.mark.timeout(60)
def test_submit_from_a_thread_racing_shutdown_still_ends() -> None:
    """A task submitted from another thread while shutdown() begins either runs, is cancelled, or is refused."""
    async def main() -> TaskHandle[Any]:
        q = AsyncQueue()
        await q.start()
        box: list[TaskHandle[Any]] = []
        # the loop thread is blocked while the other thread submits: its hand-over is queued
        thread = threading.Thread(target=lambda: box.append(q.submit(tasks.s_ok, 1, backend="thread")))
        thread.start()
        thread.join()
        await q.shutdown()
        with anyio.move_on_after(2):
            await box[0]
        return box[0]

    handle = anyio.run(main)
    assert handle.done(), f"{handle!r} never ended"


def _mark_and_sleep(path: str, seconds: float) -> float:
    Path(path).write_text("started")
    time.sleep(seconds)
    return seconds


@pytest.mark.timeout(60)
def test_short_task_never_waits_behind_a_long_one(tmp_path: Path) -> None:
    """A short process task does not wait for a long task to end while another worker is idle."""
    async def main() -> float:
        async with AsyncQueue(processes=2) as q:
            for _ in range(3):  # the pool now knows tasks.s_ok as short
                await q.submit(tasks.s_ok, 0, backend="process")
            a, b = tmp_path / "long", tmp_path / "medium"
            long = q.submit(_mark_and_sleep, str(a), 6.0, backend="process")  # slot 0 (the first idle)
            medium = q.submit(_mark_and_sleep, str(b), 1.5, backend="process")  # slot 1
            await aeventually(lambda: a.exists() and b.exists(), "both workers to be busy")
            began = time.monotonic()
            await q.submit(tasks.s_ok, 1, backend="process")
            waited = time.monotonic() - began
            assert medium.done()
            long.cancel()
            return waited

    waited = anyio.run(main)
    assert waited < 3.5, f"a short task waited {waited:.1f}s behind a 6 s one while a worker was idle"


@pytest.mark.timeout(30)
def test_cancel_racing_a_failing_attempt_ends_cancelled() -> None:
    """A task whose cancel() returned True ends cancelled, even if its running attempt then raises."""
    box: list[TaskHandle[Any]] = []

    async def cancel_self_then_fail() -> None:
        assert box[0].cancel() is True  # the cancel is accepted while the attempt runs
        raise ValueError("failed after the cancel")

    async def main() -> TaskResult:
        q = AsyncQueue()
        box.append(q.submit(cancel_self_then_fail, retries=2))
        await q.run()
        return box[0].result()

    result = anyio.run(main)
    assert result.status == "cancelled", result
