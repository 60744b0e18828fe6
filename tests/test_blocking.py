"""The blocking front end: osiiso.Queue, its handles and groups, bound tasks, ThreadQueue and ProcessQueue."""

from __future__ import annotations

import gc
import inspect
import threading
import time
from collections.abc import Callable

import anyio
import pytest

import osiiso
from osiiso import Queue

pytestmark = [pytest.mark.timeout(60)]


def double(x: int) -> int:
    return 2 * x


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_then(seconds: float, value: object = None) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not osiiso.cancelled():
        time.sleep(0.005)
    return value


async def a_double(x: int) -> int:
    await anyio.sleep(0)
    return 2 * x


def loop_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("osiiso-") and t.name.endswith("-loop")]


# -- running, handles, groups -------------------------------------------------------------------
def test_submit_run_and_values_without_a_with_block() -> None:
    """submit() then run() blocks until the work is done; handles give their values at once."""
    q = Queue()
    handles = [q.submit(double, i) for i in range(5)] + [q.submit(a_double, 10)]
    summary = q.run()
    assert summary.ok and summary.succeeded == 6
    assert [h.value() for h in handles] == [0, 2, 4, 6, 8, 20]
    assert {h.backend for h in handles} == {"thread", "async"}
    q.shutdown()
    assert q.closed and not loop_threads()


def test_with_block_drains_and_stops_its_loop_thread() -> None:
    """A clean exit of `with Queue()` drains the work and ends the loop thread."""
    with Queue() as q:
        handle = q.submit(sleep_then, 0.05, "late")
        assert loop_threads()
    assert handle.value() == "late" and q.closed
    assert not loop_threads()


def test_an_exception_in_the_with_block_forces_shutdown_and_propagates_unchanged() -> None:
    """An exception inside `with Queue()` cancels the work and comes out as itself."""
    with pytest.raises(KeyError, match="mine"):
        with Queue() as q:
            slow = q.submit(sleep_then, 20)
            raise KeyError("mine")
    assert slow.cancelled() and q.closed


def test_result_and_value_wait_with_a_timeout() -> None:
    """result()/value() block until the task ends, or raise TimeoutError after `timeout` seconds."""
    with Queue() as q:
        slow = q.submit(sleep_then, 20)
        with pytest.raises(TimeoutError, match="has not ended after 0.05s"):
            slow.result(timeout=0.05)
        quick = q.submit(sleep_then, 0.05, 7)
        assert quick.value(timeout=10) == 7 and quick.result().ok and quick.wait() is quick.result()
        slow.cancel()
        assert slow.result(timeout=10).status == "cancelled"
        with pytest.raises(osiiso.TaskCancelledError):
            slow.value()
        failed = q.submit(fail, "boom")
        with pytest.raises(ValueError, match="boom"):
            failed.value(timeout=10)
        assert isinstance(failed.exception(), ValueError)


def test_waiting_for_a_handle_starts_the_workers() -> None:
    """A wait on a queue that was never started starts its workers, as join() does."""
    q = Queue()
    assert q.submit(double, 21).value(timeout=10) == 42
    q.shutdown()


def test_groups_wait_values_and_complete_in_order() -> None:
    """A group's wait()/values() block; as_completed() and iter_completed() yield in completion order."""
    with Queue() as q:
        group = q.group(sleep_then, [(0.3, "slow"), (0.0, "fast")])
        order = [h.value() for h in group.as_completed(timeout=10)]
        assert order == ["fast", "slow"]
        assert group.values() == ("slow", "fast") and group.wait().succeeded == 2
        assert len(group) == 2 and group[0] is group.handles[0] and group.done()
        mixed = q.group([(double, 1), (fail, "bad")], group_id="g")
        with pytest.raises(osiiso.ExecutionError, match="in group 'g'") as info:
            mixed.values(timeout=10)
        assert [r.name for r in info.value.results] == ["fail"]
        hs = [q.submit(sleep_then, s, s) for s in (0.2, 0.0)]
        assert [h.value() for h in osiiso.iter_completed(hs, timeout=10)] == [0.0, 0.2]
        stuck = q.group(sleep_then, [20])
        with pytest.raises(TimeoutError):
            list(stuck.as_completed(timeout=0.05))
        with pytest.raises(TimeoutError, match="has not ended after 0.05s"):
            stuck.values(timeout=0.05)
        assert stuck.cancel() == 1


def test_iter_completed_refuses_async_handles() -> None:
    """iter_completed() takes the blocking handles; an AsyncQueue handle is a TypeError pointing at as_completed."""
    q = osiiso.AsyncQueue()
    with pytest.raises(TypeError, match="as_completed"):
        list(osiiso.iter_completed([q.submit(double, 1)]))  # type: ignore[list-item]
    q.cancel()


def size(obj: object) -> int:
    return len(obj)  # type: ignore[arg-type]


def _yields() -> object:
    yield 1


def test_submit_errors_of_the_blocking_queue_carry_no_internal_context() -> None:
    """Bad input to the blocking Queue raises with no internal exception (a cache miss) as its context."""
    with Queue() as q:
        bad: list[Callable[[], object]] = [
            lambda: q.submit("not callable"), lambda: q.submit(double, retires=1),  # type: ignore[arg-type]
            lambda: q.submit(double, backend="gpu"), lambda: q.submit(double, timeout="1"),
            lambda: q.submit(_yields), lambda: q.map(double, [1], prio=1),
            lambda: q.task()(double)(1, retries=-1), lambda: q.group([(5, 1)]),
            lambda: q.submit(double, backend="async"), lambda: q.map(_yields, [()])]
        for call in bad:
            with pytest.raises((TypeError, ValueError)) as info:
                call()
            assert info.value.__context__ is None, repr(info.value.__context__)
        assert q.submit(double, 2).value(timeout=10) == 4


def test_an_option_shadowing_a_parameter_is_refused_at_submit() -> None:
    """Queue.submit and a blocking bound task refuse name= for a function that needs a name argument."""

    def greet(name: str) -> str:
        return f"hello {name}"

    with Queue() as q:
        with pytest.raises(TypeError, match="functools.partial"):
            q.submit(greet, name="ada")
        with pytest.raises(TypeError, match="positionally"):
            q.task()(greet)(name="ada")
        assert q.submit(greet, "ada", name="g").value(timeout=10) == "hello ada"


def test_blocking_handles_in_containers_are_dependencies() -> None:
    """Blocking handles in a list, tuple or dict argument (submit, map, bound task) are waited for and
    replaced by their values."""
    with Queue() as q:
        parts = [q.submit(double, i) for i in range(3)]
        total = q.submit(sum, parts)
        mapped = q.map(size, [(tuple(parts),), {"obj": {"a": parts[0]}}])

        @q.task()
        def pair(items: list[int], *, more: dict[str, int]) -> tuple[int, int]:
            return sum(items), more["x"]

        bound = pair(parts, more={"x": parts[2]})
        assert total.value(timeout=10) == 6
        assert [m.value(timeout=10) for m in mapped] == [3, 1]
        assert bound.value(timeout=10) == (6, 4)


def test_blocking_handles_are_dependencies() -> None:
    """A blocking handle passed as an argument (positional, keyword, in map items, in group calls) is a dependency."""
    with Queue() as q:
        first = q.submit(sleep_then, 0.05, 3)
        second = q.submit(double, first)
        mapped = q.map(double, [first, (first,)])
        grouped = q.group([(double, first)])

        @q.task()
        def add(a: int, *, b: int) -> int:
            return a + b

        summed = add(first, b=second)
        assert second.value(timeout=10) == 6
        assert [h.value() for h in mapped] == [6, 6] and grouped.values() == (6,)
        assert summed.value(timeout=10) == 9


def test_done_callbacks_and_hooks_get_blocking_handles() -> None:
    """add_done_callback(fn) and the on_start hook receive SyncTaskHandles."""
    seen: list[object] = []
    done = threading.Event()
    with Queue(on_start=seen.append) as q:
        handle = q.submit(double, 2)
        handle.add_done_callback(lambda h: (seen.append(h), done.set()))
        assert done.wait(10)
    assert all(isinstance(h, osiiso.SyncTaskHandle) for h in seen) and seen[-1] == handle
    assert len({handle, seen[-1]}) == 1  # equal and hash alike: the same task


def test_submit_from_many_threads() -> None:
    """submit() is safe from any thread once started; every task runs once."""
    with Queue() as q:
        handles: list[osiiso.SyncTaskHandle[int]] = []
        lock = threading.Lock()

        def producer(base: int) -> None:
            for i in range(100):
                h = q.submit(double, base + i)
                with lock:
                    handles.append(h)

        threads = [threading.Thread(target=producer, args=(k * 100,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        q.join()
    assert sorted(h.value() for h in handles) == [2 * i for i in range(400)]


def test_cancel_from_another_thread_ends_the_run_and_closes() -> None:
    """q.cancel() from any thread stops the run; the queue ends closed, as after shutdown(force=True)."""
    started = threading.Event()
    q = Queue(on_start=lambda h: started.set())
    q.submit(sleep_then, 20)
    threading.Thread(target=lambda: (started.wait(10), q.cancel())).start()
    summary = q.run()
    assert summary.cancelled == 1 and q.closed
    with pytest.raises(osiiso.ClosedError, match="create a new queue") as info:
        q.submit(double, 1)
    assert "AsyncQueue" not in str(info.value)  # the blocking Queue's error names no class it does not use
    q.shutdown()
    q.reset()
    assert q.submit(double, 2).value(timeout=10) == 4
    q.shutdown()


def test_put_waits_for_room() -> None:
    """At the size limit submit() raises QueueFullError, put() waits for room."""
    with Queue(size=1) as q:
        q.submit(sleep_then, 0.1)
        with pytest.raises(osiiso.QueueFullError):
            q.submit(double, 1)
        assert q.put(double, 1).value(timeout=10) == 2


def test_run_timeout_and_strict() -> None:
    """run(timeout=) reports timed_out; run(strict=True) raises ExecutionError."""
    q = Queue()
    q.submit(sleep_then, 20)
    summary = q.run(timeout=0.05)
    assert summary.timed_out and not summary.ok
    q.submit(fail, "no")
    with pytest.raises(osiiso.ExecutionError, match="no"):
        q.run(strict=True)
    q.shutdown()


def test_state_is_the_async_queues() -> None:
    """results, stats, counts, closed and repr read the engine's state."""
    q = Queue(loop="asyncio")
    q.submit(double, 1, detached=True)
    q.run()
    assert len(q.results) == 1 and q.stats["thread"]["done"] == 1
    assert q.active_count == 0 and q.pending_count == 0 and not q.closed
    assert repr(q).startswith("<Queue ") and "loop=asyncio" in repr(q)
    q.clear_results()
    assert q.results == ()
    q.shutdown()


# -- event loops ------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_the_loop_option_picks_the_event_loop(loop: str) -> None:
    """loop='asyncio' | 'uvloop' | 'trio' runs the engine, and coroutine tasks, on that loop."""
    import importlib.util

    import sniffio

    if loop != "asyncio" and importlib.util.find_spec(loop) is None:
        pytest.skip(f"{loop} is not installed")

    async def which() -> str:
        name = sniffio.current_async_library()
        if name == "asyncio":
            import asyncio

            return "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio"
        return name

    with Queue(loop=loop) as q:
        assert q.submit(which).value(timeout=10) == loop
        assert q.loop == loop


def test_an_unknown_loop_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """loop must be asyncio, uvloop or trio, and installed."""
    import importlib.util

    with pytest.raises(ValueError, match="loop must be one of 'asyncio', 'uvloop', 'trio'"):
        Queue(loop="curio")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="loop='uvloop' needs uvloop, which is not installed"):
        Queue(loop="uvloop")


def test_blocking_calls_inside_an_event_loop_point_at_async_queue() -> None:
    """Calling a blocking method from a thread that runs an event loop is a RuntimeError naming AsyncQueue."""
    q = Queue()
    h = q.submit(double, 1)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="AsyncQueue"):
            q.run()
        with pytest.raises(RuntimeError, match="AsyncQueue"):
            with q:
                pass
        with pytest.raises(RuntimeError, match="AsyncQueue"):
            h.value()

    osiiso.run(main)
    assert q.run().succeeded == 1
    q.shutdown()


def test_a_refused_shutdown_inside_an_event_loop_leaves_the_queue_as_it_was() -> None:
    """q.shutdown() from async code is refused with the AsyncQueue error; the started queue runs on, unclosed."""
    release = threading.Event()
    started = threading.Event()
    q = Queue(on_start=lambda h: started.set())
    q.start()
    handle = q.submit(lambda: (release.wait(20), "done")[1])
    assert started.wait(10)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="AsyncQueue"):
            q.shutdown()

    osiiso.run(main)
    assert not q.closed and loop_threads() == ["osiiso-asyncio-loop"]
    release.set()
    assert handle.value(timeout=10) == "done"
    q.shutdown()
    assert q.closed and not loop_threads()


def test_a_shutdown_from_a_hook_is_refused_and_strands_no_loop_thread() -> None:
    """q.shutdown() in an on_complete hook (the loop's thread) is the AsyncQueue error; no loop thread is left."""
    errors: list[BaseException] = []

    def hook(result: osiiso.TaskResult) -> None:
        try:
            q.shutdown()
        except BaseException as exc:
            errors.append(exc)

    q = Queue(on_complete=hook)
    q.submit(double, 1)
    assert q.run().succeeded == 1
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError) and "AsyncQueue" in str(errors[0])
    assert not q.closed and loop_threads() == ["osiiso-asyncio-loop"]
    q.submit(double, 2)
    assert q.run().succeeded == 1 and loop_threads() == ["osiiso-asyncio-loop"]
    q.shutdown()
    assert not loop_threads()


def test_a_coroutine_task_may_submit_but_not_block() -> None:
    """A coroutine task of the queue may submit to it, but waiting there would deadlock: RuntimeError."""
    with Queue() as q:
        async def parent() -> str:
            child = q.submit(double, 5)
            try:
                child.value()
            except RuntimeError as exc:
                return f"{child.task_id} refused: {'AsyncQueue' in str(exc)}"
            return "waited"

        assert q.submit(parent).value(timeout=10) == "task-2 refused: True"


def test_a_dropped_queue_stops_its_loop_thread() -> None:
    """A Queue collected without shutdown() is shut down by force: work cancelled, pool and loop thread gone."""
    def pool_threads() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("osiiso-thread-")}

    before = pool_threads()
    q = Queue()
    q.start()
    handle = q.submit(sleep_then, 20)
    del q
    gc.collect()
    assert handle.done() and handle.result().status == "cancelled"  # the finalizer waited for the shutdown
    assert not loop_threads()
    deadline = time.monotonic() + 10
    while pool_threads() - before:  # the abandoned attempt's thread ends when it sees osiiso.cancelled()
        assert time.monotonic() < deadline, f"pool threads outlived their queue: {pool_threads() - before}"
        time.sleep(0.01)


# -- bound tasks ------------------------------------------------------------------------------
def test_bound_tasks_submit_and_keep_the_function() -> None:
    """@q.task() on a Queue: calls, map, group, overrides and options() work as on AsyncQueue, blocking."""
    q = Queue()

    @q.task(retries=2, name="twice")
    def twice(x: int, *, plus: int = 0) -> int:
        """Double and add."""
        return 2 * x + plus

    assert twice.__name__ == "twice" and twice.__doc__ == "Double and add."
    assert list(inspect.signature(twice).parameters) == ["x", "plus"]
    one = twice(1, plus=1, priority=0)
    many = twice.map([2, 3], timeout=5)
    group = twice.group([4])
    fast = twice.options(timeout=1)
    assert one.options.priority == 0 and one.options.retries == 2
    assert all(h.options.timeout == 5 for h in many) and fast.default_options.timeout == 1
    assert fast.queue is q and "twice" in repr(fast)
    q.run(strict=True)
    assert one.value() == 3 and [h.value() for h in many] == [4, 6] and group.values() == (8,)
    plain = q.task(double, backend="thread")
    assert plain(4).value(timeout=10) == 8
    q.shutdown()


# -- ThreadQueue and ProcessQueue -------------------------------------------------------------
def test_thread_queue_runs_on_threads_and_waits_for_room() -> None:
    """ThreadQueue: thread backend by default, `workers` threads, and submit() on a full queue waits for room."""
    with osiiso.ThreadQueue(workers=3, size=2) as q:
        handles = [q.submit(sleep_then, 0.02, i) for i in range(6)]
        mapped = q.map(double, range(4))
        assert q.stats["thread"]["threads_live"] <= 3
    assert [h.value() for h in handles] == list(range(6)) and [h.value() for h in mapped] == [0, 2, 4, 6]
    assert {h.backend for h in handles} == {"thread"}
    q2 = osiiso.ThreadQueue(defaults=osiiso.TaskOptions(backend="async", retries=1))
    assert q2.submit(a_double, 1).backend == "async"
    q2.cancel()


@pytest.mark.parametrize("kind", ["ThreadQueue", "ProcessQueue"])
def test_every_fan_out_of_a_full_compat_queue_waits_for_room(kind: str) -> None:
    """At the size limit of a ThreadQueue/ProcessQueue, group(), bound map() and group() wait for room as map() does."""
    with getattr(osiiso, kind)(workers=2, size=2) as q:
        bound = q.task(double)
        mapped = q.map(double, range(6))
        group = q.group(double, range(6))
        calls = q.group([(double, i) for i in range(6)], group_id="calls")
        bound_mapped = bound.map(range(6))
        bound_group = bound.group(range(6), group_id="bound")
        expected = tuple(2 * i for i in range(6))
        assert tuple(h.value(timeout=30) for h in mapped) == expected
        assert tuple(h.value(timeout=30) for h in bound_mapped) == expected
        for made, group_id in ((group, group.group_id), (calls, "calls"), (bound_group, "bound")):
            assert made.values(timeout=30) == expected
            assert made.group_id == group_id and {h.group_id for h in made} == {group_id}
    with pytest.raises(osiiso.QueueFullError):  # a plain Queue still refuses what does not fit
        Queue(size=2).group(double, range(6))


def test_process_queue_runs_in_processes() -> None:
    """ProcessQueue: process backend by default (lambdas too), `workers` processes, `context` for mp_context."""
    with osiiso.ProcessQueue(workers=1, context="spawn") as q:
        assert q.submit(lambda x: x + 1, 1).value(timeout=30) == 2
        assert q.submit(double, 3).backend == "process"
    with pytest.raises(TypeError, match="not both"):
        osiiso.ProcessQueue(context="spawn", mp_context="spawn")


@pytest.mark.parametrize("call", ["shutdown", "shutdown-force", "join", "run"])
def test_a_thread_task_that_waits_for_its_own_queue_is_refused(call: str) -> None:
    """A thread task calling its own queue's run(), join() or shutdown() (each waits for every task,
    this one too) fails with a RuntimeError naming the call; the queue goes on and shuts down cleanly."""
    box: dict[str, Queue] = {}

    def task() -> str:
        q = box["q"]
        if call.startswith("shutdown"):
            q.shutdown(force=call.endswith("force"))
        else:
            getattr(q, call)()
        return "returned"

    q = box["q"] = Queue(workers=2)
    handle = q.submit(task, backend="thread")
    other = q.submit(double, 4, backend="thread")
    summary = q.run(timeout=30)
    assert summary.failed == 1 and other.value() == 8
    error = handle.exception()
    assert isinstance(error, RuntimeError)
    assert f"Queue.{call.split('-')[0]}() cannot be called from one of the queue's own tasks" in str(error)
    assert not q.closed
    q.shutdown()
    assert not [t for t in threading.enumerate() if t.name.startswith("osiiso-") and t.is_alive()
                and "loop" in t.name]


def test_put_on_a_full_queue_never_started_starts_it_and_waits_for_room() -> None:
    """put() on a queue at its size limit whose workers never started starts them: the room comes."""
    with Queue(size=1) as q:
        first = q.submit(double, 1)
        second = q.put(double, 2)
        assert (first.value(timeout=10), second.value(timeout=10)) == (2, 4)


def test_a_task_waiting_for_room_only_its_own_tasks_could_make_is_refused() -> None:
    """A ThreadQueue task submitting to its full queue, where every unfinished task is one waiting so,
    gets QueueFullError (the wait could never end) instead of hanging; with room to come, it waits."""
    q = osiiso.ThreadQueue(size=1)

    @q.task()
    def child(x: int) -> int:
        return x

    @q.task()
    def parent(x: int) -> str:
        child(x)
        return "submitted"

    with q:
        result = parent(1).result(timeout=20)
        assert result.status == "failed" and isinstance(result.exception, osiiso.QueueFullError)
        assert "would wait for ever" in result.message and "raise size=" in result.message
    roomy, release = osiiso.ThreadQueue(size=2, threads=2), threading.Event()

    @roomy.task()
    def leaf(x: int) -> int:
        return x

    @roomy.task()
    def branch(x: int) -> int:
        return leaf(x).value()  # type: ignore[no-any-return]

    with roomy:
        held = roomy.submit(release.wait, 20)  # takes the room the branch's leaf needs, until released
        handle = branch(3)
        deadline = time.monotonic() + 20
        while roomy._own_waiting == 0 and time.monotonic() < deadline:  # the branch waits for room
            time.sleep(0.005)
        assert roomy._own_waiting == 1
        release.set()
        assert handle.value() == 3 and held.value() is True
