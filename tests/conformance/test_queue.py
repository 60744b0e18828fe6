"""Conformance: queue-level behaviour (limits, hooks, modes, shutdown, threads) on every backend and loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest
from support import aeventually

import osiiso
from osiiso import AsyncQueue, ClosedError, QueueFullError

from .kit import Boom, Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_size_limit_rejects_submit_and_put_waits(kit: Kit) -> None:
    """At its size limit submit() raises QueueFullError while put() waits for room."""
    q = AsyncQueue(size=2)
    q.submit(kit.slow, 0.05, 1, **kit.opts)
    q.submit(kit.slow, 0.05, 2, **kit.opts)
    with pytest.raises(QueueFullError, match="size"):
        q.submit(kit.echo, 3, **kit.opts)
    async with q:
        third = await q.put(kit.echo, 3, **kit.opts)
        assert (await third).value == 3
    assert len(q.results) == 3


async def test_map_and_group_submit_every_call_or_none(kit: Kit) -> None:
    """A fan-out that does not fit under the size limit queues nothing; one that fits gets
    consecutive task ids, an empty one no handle, and a shut queue refuses it with ClosedError."""
    q = AsyncQueue(size=3)
    q.submit(kit.echo, 0, **kit.opts)
    with pytest.raises(QueueFullError, match="3 tasks do not fit"):
        q.map(kit.echo, range(3), **kit.opts)
    with pytest.raises(QueueFullError):
        q.group(kit.echo, [1, 2, 3], **kit.opts)
    assert q.pending_count == 1
    first, second = q.map(kit.add, [(1, 2), {"a": 3, "b": 4}], **kit.opts)
    assert int(second.task_id.split("-")[1]) == int(first.task_id.split("-")[1]) + 1
    assert q.map(kit.echo, [], **kit.opts) == []
    summary = await q.run(strict=True)
    assert sorted(summary.values) == [0, 3, 7]
    await q.shutdown()
    with pytest.raises(ClosedError):
        q.map(kit.echo, [1], **kit.opts)


async def test_hooks_sync_and_async(kit: Kit) -> None:
    """on_start runs before each attempt and on_complete once per task; async hooks are awaited."""
    starts: list[str] = []
    completes: list[str] = []

    async def on_complete(result: osiiso.TaskResult) -> None:
        await anyio.sleep(0)
        completes.append(f"{result.name}:{result.status}")

    q = AsyncQueue(on_start=lambda h: starts.append(h.name), on_complete=on_complete)
    q.submit(kit.echo, 1, name="one", **kit.opts)
    q.submit(kit.fail, "x", name="two", **kit.opts)
    await q.run()
    assert sorted(starts) == ["one", "two"]
    assert sorted(completes) == ["one:succeeded", "two:failed"]
    await q.shutdown()


async def test_a_failing_hook_is_logged_and_ignored(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged to the 'osiiso' logger and never breaks the queue."""
    def bad_hook(_: object) -> None:
        raise RuntimeError("hook bug")

    q = AsyncQueue(on_start=bad_hook, on_complete=bad_hook)
    with caplog.at_level(logging.ERROR, logger="osiiso"):
        handle = q.submit(kit.echo, 5, **kit.opts)
        await q.run(strict=True)
    assert handle.value() == 5
    assert "hook bug" in caplog.text


async def test_infinite_mode_serves_until_shutdown(kit: Kit) -> None:
    """In mode='infinite' run() serves new tasks until shutdown(), then returns their summary."""
    q = AsyncQueue(mode="infinite")
    served = anyio.Event()
    summary_box: list[osiiso.RunSummary] = []

    async def runner() -> None:
        summary_box.append(await q.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner)
        await q.start()
        for i in range(5):
            q.submit(kit.echo, i, **kit.opts).add_done_callback(lambda h: served.set() if h.value() == 4 else None)
        await served.wait()
        await q.shutdown()
    assert sorted(summary_box[0].values) == [0, 1, 2, 3, 4]


async def test_async_with_drains_on_clean_exit(kit: Kit) -> None:
    """Leaving `async with` normally waits for every task."""
    async with AsyncQueue() as q:
        handles = [q.submit(kit.slow, 0.05, i, **kit.opts) for i in range(4)]
    assert [h.value() for h in handles] == [0, 1, 2, 3]
    assert q.closed


async def test_async_with_error_forces_shutdown_and_propagates_unwrapped(kit: Kit) -> None:
    """An exception in the body cancels the tasks and comes out as itself, not in an ExceptionGroup."""
    with pytest.raises(Boom, match="body"):
        async with AsyncQueue() as q:
            handle = q.submit(kit.slow, 20, **kit.opts)
            raise Boom("body")
    assert handle.cancelled()


async def test_closed_queue_rejects_tasks_until_reset(kit: Kit) -> None:
    """After shutdown submit() raises ClosedError; reset() reopens an idle queue."""
    q = AsyncQueue()
    await q.shutdown()
    with pytest.raises(ClosedError):
        q.submit(kit.echo, 1, **kit.opts)
    q.reset()
    handle = q.submit(kit.echo, 1, **kit.opts)
    await q.run()
    assert handle.value() == 1
    await q.shutdown()


async def test_force_shutdown_cancels_running_tasks(kit: Kit) -> None:
    """shutdown(force=True) cancels running and waiting tasks promptly."""
    started = anyio.Event()
    q = AsyncQueue(workers=1, on_start=lambda h: started.set())
    await q.start()
    running = q.submit(kit.slow, 20, **kit.opts)
    waiting = q.submit(kit.echo, 1, **kit.opts)
    await started.wait()
    began = time.monotonic()
    await q.shutdown(force=True)
    assert time.monotonic() - began < 10
    assert running.cancelled() and waiting.cancelled()


async def test_submit_and_cancel_from_other_threads(kit: Kit) -> None:
    """Once started, submit() and cancel() are safe from other threads."""
    async with AsyncQueue() as q:
        handles: list[osiiso.TaskHandle[object]] = []

        def producer() -> None:
            for i in range(50):
                handles.append(q.submit(kit.echo, i, **kit.opts))

        await anyio.to_thread.run_sync(producer)
        results = [await h for h in handles]
        assert sorted(r.value for r in results) == list(range(50))
        started = anyio.Event()
        q2 = AsyncQueue(on_start=lambda h: started.set())
        await q2.start()
        slow = q2.submit(kit.slow, 20, **kit.opts)
        await started.wait()
        await anyio.to_thread.run_sync(slow.cancel)
        assert (await slow).status == "cancelled"
        await anyio.to_thread.run_sync(q2.cancel)
        await q2.shutdown()


@pytest.mark.parametrize("canceller", ["the loop", "the submitting thread"])
async def test_a_task_cancelled_before_its_hand_over_reaches_the_loop_ends_cancelled_once(kit: Kit,
                                                                                        canceller: str) -> None:
    """A task another thread submitted, cancelled before the loop has taken it in (the loop is busy
    meanwhile), ends cancelled, once, and leaves every count of the queue right."""
    import threading

    from osiiso._engine.invariants import check_invariants

    async with AsyncQueue() as q:
        box: list[osiiso.TaskHandle[object]] = []

        def submit(cancel: bool) -> None:
            box.append(q.submit(kit.slow, 30, **kit.opts))
            box.append(q.submit(kit.echo, 1, **kit.opts))
            if cancel:
                assert box[0].cancel("cancelled before the loop took it in") is True

        # the loop's thread blocks on the join: the hand-overs (and a cancel from the thread) wait
        thread = threading.Thread(target=submit, args=(canceller != "the loop",))
        thread.start()
        thread.join()
        if canceller == "the loop":
            assert box[0].cancel("cancelled before the loop took it in") is True  # on the loop, at once
        slow, other = box
        with anyio.fail_after(20):
            assert (await slow).status == "cancelled"
            assert (await other).value == 1
        assert "before the loop took it in" in slow.result().message and slow.result().attempts == 0
        check_invariants(q._engine)
        lane = q._engine.lanes[kit.backend]
        assert q._engine.outstanding == 0 and lane.queued == lane.size == 0
        assert (lane.done, lane.cancelled) == (2, 1) and q.stats[kit.backend]["done"] == 2
        assert [r.task_id for r in q.results].count(slow.task_id) == 1


async def test_threads_sending_the_first_tasks_of_a_backend_at_once_share_one_lane(kit: Kit) -> None:
    """Many threads submitting a backend's first task together: one lane, every task runs once."""
    import sys
    import threading

    from osiiso._engine.invariants import check_invariants

    for _ in range(5):
        async with AsyncQueue() as q:  # started: submit() from other threads hands over to the loop
            barrier = threading.Barrier(8)
            handles: list[osiiso.TaskHandle[object]] = []

            def producer(i: int) -> None:
                barrier.wait()
                handles.append(q.submit(kit.echo, i, **kit.opts))

            interval = sys.getswitchinterval()
            sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race, if any, shows
            try:
                threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
                for thread in threads:
                    thread.start()
                await anyio.to_thread.run_sync(lambda: [t.join() for t in threads])
            finally:
                sys.setswitchinterval(interval)
            assert sorted([(await h).value for h in handles]) == list(range(8))  # type: ignore[type-var]
            check_invariants(q._engine)
            assert q.stats[kit.backend]["done"] == 8


async def test_queue_cancel_ends_the_run(kit: Kit) -> None:
    """queue.cancel() from another thread cancels everything and run() returns."""
    started = anyio.Event()
    q = AsyncQueue(on_start=lambda h: started.set())
    for _ in range(3):
        q.submit(kit.slow, 20, **kit.opts)

    async def stopper() -> None:
        await started.wait()
        await anyio.to_thread.run_sync(q.cancel)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stopper)
        summary = await q.run()
    assert summary.cancelled == 3
    await q.shutdown()


async def test_a_slow_on_complete_hook_leaves_its_slot_to_the_next_task(kit: Kit) -> None:
    """While the on_complete hooks of finished tasks wait, the next tasks run on other workers: as many
    more as the lane's cap may await hooks (and the workers of batched tasks, as always)."""
    release = anyio.Event()
    in_hook: list[str] = []

    async def on_complete(result: osiiso.TaskResult) -> None:
        in_hook.append(result.name)
        await release.wait()

    from osiiso._engine.invariants import check_invariants

    q = AsyncQueue(workers=2, threads=2, processes=2, on_complete=on_complete)
    handles = [q.submit(kit.echo, i, name=f"t{i}", **kit.opts) for i in range(6)]
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.run)
        await q.start()
        lane = q._engine.lanes[kit.backend]
        with anyio.fail_after(20):
            await aeventually(lambda: lane.cap > 0, "the lane to open")
            ended = min(6, 2 * lane.cap)  # the lane's cap of workers, and as many more awaiting hooks
            await aeventually(lambda: len(in_hook) >= ended, f"{ended} tasks to end while their hooks wait")
        check_invariants(q._engine)
        if not lane.backend.batch_capacity:  # no more (the workers of batched tasks may be more)
            assert sum(h.done() for h in handles) == ended
        release.set()
    assert [h.value() for h in handles] == list(range(6)) and len(in_hook) == 6
    await q.shutdown()


async def test_on_one_worker_the_next_task_runs_while_the_first_ones_hook_waits(kit: Kit) -> None:
    """workers=1: the first task's slow on_complete hook does not hold the second task back."""
    release = anyio.Event()

    async def on_complete(result: osiiso.TaskResult) -> None:
        if result.name == "first":
            await release.wait()

    q = AsyncQueue(workers=1, threads=1, processes=1, on_complete=on_complete)
    first = q.submit(kit.echo, 1, name="first", **kit.opts)
    second = q.submit(kit.echo, 2, name="second", **kit.opts)
    async with anyio.create_task_group() as tg:
        tg.start_soon(q.run)
        with anyio.fail_after(20):
            await aeventually(second.done, "the second task to end while the first one's hook waits")
        assert first.done() and not release.is_set()
        release.set()
    assert (first.value(), second.value()) == (1, 2)
    await q.shutdown()


async def test_put_waits_for_room_taken_by_another_threads_submit(kit: Kit) -> None:
    """put() waits, not raises, when the last room went to a task another thread submitted that the
    loop has not admitted yet."""
    import threading

    q = AsyncQueue(size=2)
    async with q:
        q.submit(kit.slow, 0.05, 1, **kit.opts)
        other = threading.Thread(target=lambda: q.submit(kit.slow, 0.05, 2, **kit.opts))
        other.start()
        other.join()  # handed over, not admitted: the loop has not run since
        assert q._inbound == 1
        assert q.pending_count + q.active_count == 2  # the one being handed over counts as pending
        with anyio.fail_after(10):
            third = await q.put(kit.echo, 3, **kit.opts)
            assert (await third).value == 3
    assert sorted(r.value for r in q.results) == [1, 2, 3]


@pytest.mark.parametrize("where", ["another thread", "the hook"])
async def test_queue_cancel_with_an_async_on_complete_calls_every_hook_and_ends_the_run(kit: Kit, where: str) -> None:
    """queue.cancel(), from another thread or from an async on_complete hook: run() returns once
    every task's hook (the cancelled ones' too) has been awaited."""
    seen: list[str] = []
    first = anyio.Event()

    async def on_complete(result: osiiso.TaskResult) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(result.name)
        if result.name == "first":
            first.set()
            if where == "the hook":
                q.cancel()

    q = AsyncQueue(workers=3, processes=3, on_complete=on_complete)  # each task a worker: "first" ends first
    q.submit(kit.echo, 1, name="first", **kit.opts)
    q.submit(kit.slow, 20, name="long-1", **kit.opts)
    q.submit(kit.slow, 20, name="long-2", **kit.opts)

    async def stopper() -> None:
        await first.wait()
        await anyio.to_thread.run_sync(q.cancel)

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            if where == "another thread":
                tg.start_soon(stopper)
            summary = await q.run()
        assert (summary.succeeded, summary.cancelled) == (1, 2)
        assert sorted(seen) == ["first", "long-1", "long-2"]
        await q.shutdown()
    assert q.closed


async def test_rate_limit_spaces_attempt_starts(kit: Kit) -> None:
    """rate=20 with burst=2 lets two attempts start at once, then one per 50 ms."""
    q = AsyncQueue(rate=20, burst=2)
    handles = [q.submit(kit.echo, i, **kit.opts) for i in range(6)]
    await q.run(strict=True)
    starts = sorted(h.result().started_at or 0 for h in handles)
    assert starts[-1] - starts[0] >= 4 * 0.05 * 0.9  # 2 at once, then 4 more at 50 ms intervals


async def test_stats_count_per_backend(kit: Kit) -> None:
    """stats reports pending, running and done per backend."""
    q = AsyncQueue()
    q.map(kit.echo, range(3), **kit.opts)
    assert q.stats[kit.backend]["pending"] == 3 and q.pending_count == 3
    await q.run()
    stats = q.stats[kit.backend]
    assert (stats["pending"], stats["running"], stats["done"]) == (0, 0, 3)
    assert q.active_count == 0
    await q.shutdown()


async def test_workers_start_as_tasks_become_ready(kit: Kit) -> None:
    """Worker coroutines start one per ready task, never beyond the lane's cap, and stop with the service."""
    started: list[str] = []
    first = anyio.Event()
    four = anyio.Event()

    def on_start(handle: osiiso.TaskHandle[object]) -> None:
        started.append(handle.task_id)
        if len(started) == 1:
            first.set()
        if len(started) == 4:
            four.set()

    # four processes: a process task's on_start fires when a worker process begins it
    q = AsyncQueue(workers=200, threads=6, processes=4, on_start=on_start)
    async with q:
        # held tasks: they run until cancelled below, so none frees its worker for the next
        held = [q.submit(kit.slow, 30, **kit.opts)]
        await first.wait()
        assert q.stats[kit.backend]["workers"] == 1  # not 200 (async), 6 (thread) or 16 (process)
        held += [q.submit(kit.slow, 30, **kit.opts) for _ in range(3)]
        await four.wait()
        assert q.stats[kit.backend]["workers"] == 4
        for handle in held:
            handle.cancel()
        cap = {"async": 200, "thread": 6, "process": 16, "dask": 64}[kit.backend]  # dask: its default capacity
        handles = q.map(kit.echo, range(40), **kit.opts)
        lane = q._engine.lanes[kit.backend]
        while not all(h.done() for h in handles):
            # a process task waiting in a batch gives its slot back (`held`): its worker is beyond
            # the cap, and may stay parked while tasks wait, for the next batch
            assert lane.running <= cap
            assert lane.workers - len(lane.idle) <= cap + lane.held
            assert q.stats[kit.backend]["workers"] == lane.workers
            await anyio.sleep(0.01)
        assert [h.value() for h in handles] == list(range(40))
    assert q.stats[kit.backend]["workers"] == 0


async def test_the_last_free_slot_goes_to_the_most_urgent_task_of_any_backend(kit: Kit) -> None:
    """Under the workers cap, tasks of different backends start in priority, then submission, order."""
    from .kit import a_echo

    order: list[str] = []
    q = AsyncQueue(workers=1, on_start=lambda h: order.append(h.name))
    plan = [(kit.echo, 3), (a_echo, 3), (kit.echo, 1), (a_echo, 5), (a_echo, 1), (kit.echo, 5), (kit.echo, 3)]
    for i, (fn, priority) in enumerate(plan):
        q.submit(fn, i, name=f"{i}", priority=priority, **({"backend": kit.backend} if fn is kit.echo else {}))
    await q.run(strict=True)
    expected = sorted(range(len(plan)), key=lambda i: (plan[i][1], i))
    assert order == [str(i) for i in expected]


async def test_a_pipeline_under_the_workers_cap_moves_early_items_through_first(kit: Kit) -> None:
    """A freed slot goes to the next step of an early item before the first step of a later one."""
    from .kit import a_slow

    order: list[str] = []
    q = AsyncQueue(workers=1, on_start=lambda h: order.append(h.name))
    for i in range(5):
        page = q.submit(a_slow, 0.001, i, name=f"fetch-{i}")
        q.submit(kit.echo, page, name=f"step-{i}", **kit.opts)
    summary = await q.run(strict=True)
    assert list(summary.values) == [v for i in range(5) for v in (i, i)]
    # step-i became ready after fetch-(i+1) was queued, but was submitted before it
    assert order == [name for i in range(5) for name in (f"fetch-{i}", f"step-{i}")]


async def test_reentrant_run_is_refused(kit: Kit) -> None:
    """A second run() or a reset() while a run is in progress raises RuntimeError and the first is unaffected."""
    q = AsyncQueue()
    started = anyio.Event()
    q2 = AsyncQueue(on_start=lambda h: started.set())
    q2.submit(kit.slow, 0.2, **kit.opts)
    async with anyio.create_task_group() as tg:
        tg.start_soon(q2.run)
        await started.wait()
        with pytest.raises(RuntimeError, match="already in progress"):
            await q2.run()
        with pytest.raises(RuntimeError, match="idle queue"):
            q2.reset()
    assert q2.results[0].status == "succeeded"
    await q.shutdown()
    await q2.shutdown()


async def test_run_summary_holds_only_this_runs_results(kit: Kit) -> None:
    """Each run's summary holds the results recorded during it; queue.results holds them all."""
    q = AsyncQueue()
    q.submit(kit.echo, 1, **kit.opts)
    first = await q.run()
    q.submit(kit.echo, 2, **kit.opts)
    second = await q.run()
    assert first.values == (1,) and second.values == (2,)
    assert len(q.results) == 2
    q.clear_results()
    assert q.results == ()
    await q.shutdown()


async def test_dependencies_pass_values_and_propagate_failure(kit: Kit) -> None:
    """A handle given as an argument is awaited and replaced by its value; a failed one fails the dependent."""
    q = AsyncQueue()
    a = q.submit(kit.square, 3, **kit.opts)
    b = q.submit(kit.add, a, 1, **kit.opts)
    failed = q.submit(kit.fail, "upstream", **kit.opts)
    dependent = q.submit(kit.echo, failed, **kit.opts)
    await q.run()
    assert b.value() == 10
    error = dependent.exception()
    assert isinstance(error, osiiso.DependencyError) and isinstance(error.__cause__, Boom)
    assert dependent.attempts == 0 and "upstream" in dependent.result().message
    await q.shutdown()


async def test_strict_run_raises_execution_error(kit: Kit) -> None:
    """run(strict=True) raises ExecutionError listing the failures."""
    q = AsyncQueue()
    q.submit(kit.fail, "strict", **kit.opts)
    with pytest.raises(osiiso.ExecutionError, match="strict") as info:
        await q.run(strict=True)
    assert len(info.value.results) == 1
    await q.shutdown()




async def test_run_cancelled_from_outside_records_every_task(kit: Kit) -> None:
    """When the caller cancels run(), every task still ends with exactly one (cancelled) result."""
    started = anyio.Event()
    q = AsyncQueue(workers=2, on_start=lambda h: started.set())
    handles = [q.submit(kit.slow, 20, **kit.opts) for _ in range(4)]
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(q.run)
            await started.wait()
            scope.cancel()
    assert all(h.done() for h in handles)
    assert {h.status for h in handles} == {"cancelled"}
    assert len(q.results) == 4
    await q.shutdown()


async def test_cancelling_a_dependent_leaves_its_dependency_alone(kit: Kit) -> None:
    """Cancelling a waiting dependent does not cancel the task it depends on."""
    q = AsyncQueue()
    upstream = q.submit(kit.slow, 0.1, 5, **kit.opts)
    dependent = q.submit(kit.echo, upstream, **kit.opts)
    dependent.cancel()
    await q.run()
    assert upstream.value() == 5 and dependent.cancelled() and dependent.attempts == 0
    await q.shutdown()


async def test_fail_first_cancels_waiting_dependents(kit: Kit) -> None:
    """With fail_first a failure cancels tasks still waiting on their dependencies."""
    q = AsyncQueue(fail_policy="fail_first")
    upstream = q.submit(kit.slow, 5, 1, **kit.opts)
    waiting = q.submit(kit.echo, upstream, **kit.opts)
    q.submit(kit.fail, "first", **kit.opts)
    summary = await q.run()
    assert waiting.cancelled() and upstream.cancelled()
    assert summary.failed == 1 and summary.cancelled == 2
    await q.shutdown()


async def test_fail_first_cancels_whole_chains_of_waiting_dependents(kit: Kit) -> None:
    """With fail_first every task of a chain waiting behind a running one ends cancelled, none
    failed for its cancelled dependency, whatever order the engine holds them in."""
    q = AsyncQueue(workers=4, threads=4, processes=4, fail_policy="fail_first")
    chains = []
    for _ in range(3):
        link = q.submit(kit.slow, 20, **kit.opts)
        chain = [link]
        for _ in range(6):
            link = q.submit(kit.echo, link, **kit.opts)
            chain.append(link)
        chains.append(chain)
    q.submit(kit.fail, "first", **kit.opts)
    with anyio.fail_after(20):
        summary = await q.run()
    assert (summary.failed, summary.cancelled) == (1, 21)
    assert all(h.cancelled() and "fail_first" in h.result().message for chain in chains for h in chain)
    await q.shutdown()


async def test_fail_first_counts_a_failure_for_a_cancelled_dependency(kit: Kit) -> None:
    """A task that fails because its dependency was cancelled is a failure: fail_first cancels the rest."""
    started = anyio.Event()
    q = AsyncQueue(workers=3, threads=3, processes=3, fail_policy="fail_first", on_start=lambda h: started.set())
    upstream = q.submit(kit.slow, 20, **kit.opts)
    dependent = q.submit(kit.echo, upstream, **kit.opts)
    others = [q.submit(kit.slow, 20, **kit.opts) for _ in range(2)]

    async def cancel_upstream() -> None:
        await started.wait()
        upstream.cancel()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_upstream)
            summary = await q.run()
    assert dependent.status is osiiso.TaskStatus.FAILED
    assert all(h.cancelled() and "fail_first" in h.result().message for h in others)
    assert (summary.failed, summary.cancelled) == (1, 3)
    await q.shutdown()


async def test_forced_shutdown_cancels_waiting_dependents(kit: Kit) -> None:
    """shutdown(force=True) cancels dependents that are still waiting."""
    started = anyio.Event()
    q = AsyncQueue(on_start=lambda h: started.set())
    await q.start()
    upstream = q.submit(kit.slow, 20, **kit.opts)
    waiting = q.submit(kit.echo, upstream, **kit.opts)
    await started.wait()
    await q.shutdown(force=True)
    assert upstream.cancelled() and waiting.cancelled()


async def test_dependencies_cross_backends(kit: Kit) -> None:
    """A task on this backend can depend on a coroutine task and feed a thread task."""
    q = AsyncQueue()

    async def produce() -> int:
        return 6

    first = q.submit(produce)
    middle = q.submit(kit.square, first, **kit.opts)
    last = q.submit(_plus_one, middle, backend="thread")
    await q.run(strict=True)
    assert last.value() == 37
    await q.shutdown()


def _plus_one(x: int) -> int:
    return x + 1


def _eager_service_start(monkeypatch: pytest.MonkeyPatch, until: Callable[[], Awaitable[object]]) -> None:
    """Make the service start as eagerly as it may: work ends before ``start()`` returns."""
    from osiiso._engine.service import Service

    real_start = Service.start

    async def eager_start(self: Service) -> None:
        await real_start(self)
        await until()

    monkeypatch.setattr(Service, "start", eager_start)


async def test_a_run_counts_tasks_that_end_while_its_service_starts(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's state is in place before its service starts: tasks that end at once are in its summary."""
    q = AsyncQueue()
    handles = [q.submit(kit.echo, i, **kit.opts) for i in range(5)]

    async def all_ended() -> None:
        for handle in handles:
            await handle

    _eager_service_start(monkeypatch, all_ended)
    with anyio.fail_after(30):
        summary = await q.run()
    assert summary.values == (0, 1, 2, 3, 4)
    await q.shutdown()


async def test_fail_first_sees_a_failure_that_ends_while_the_service_starts(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fail-first listener is installed before the service starts, so an early failure still stops the run."""
    q = AsyncQueue(fail_policy="fail_first")
    failing = q.submit(kit.fail, "early", **kit.opts)
    later = q.submit(kit.echo, 1, delay=30, **kit.opts)
    _eager_service_start(monkeypatch, failing.wait)
    with anyio.fail_after(30):
        summary = await q.run()
    assert failing.result().status == "failed" and later.cancelled()
    assert summary.failed == 1 and summary.cancelled == 1
    await q.shutdown()
