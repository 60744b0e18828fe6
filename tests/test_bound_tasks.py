"""Bound tasks built from other bound tasks or from callables with attributes of their own."""

from __future__ import annotations

from typing import Any

import pytest

import osiiso
from osiiso import AsyncQueue, TaskOptions

pytestmark = [pytest.mark.timeout(30)]


def _fails() -> None:
    raise ValueError("boom")


def _same(x: Any) -> Any:
    return x


class _Scale:
    """A callable object whose own ``_options`` attribute a bound task must not take as its own."""

    def __init__(self) -> None:
        self._options = {"factor": 2}
        self._queue = "not a queue"

    def __call__(self, x: int) -> int:
        return x * int(self._options["factor"])


class _Job:
    """A class with a ``map`` method: binding the class must keep the bound task's ``map``."""

    def __init__(self, x: int) -> None:
        self.x = x

    def map(self, f: Any) -> Any:
        return f(self.x)


@pytest.mark.anyio
async def test_stacked_and_rebound_tasks_combine_their_options_and_use_the_last_queue() -> None:
    """A bound task decorated again keeps its options under the new ones; bound to another queue,
    it submits there, with its own options (not its first queue's defaults)."""
    async with AsyncQueue(defaults=TaskOptions(priority=7)) as q1, AsyncQueue() as q2:
        stacked = q1.task(retries=2)(q1.task(name="inner", backend="thread")(_fails))
        assert stacked.default_options == TaskOptions(priority=7, retries=2, name="inner", backend="thread")
        result = await stacked()
        assert (result.attempts, result.name, result.backend) == (3, "inner", "thread")
        first = q1.task(name="same", backend="thread")(_same)
        again = q2.task(first)
        assert again.queue is q2 and again.default_options == TaskOptions(name="same", backend="thread")
        assert (await again(5)).value == 5
        assert (len(q1.results), len(q2.results)) == (1, 1)
        copy = first.options(retries=1)
        assert copy.default_options == TaskOptions(priority=7, name="same", backend="thread", retries=1)
        with pytest.raises(TypeError, match=r"options\(\): opts must be a TaskOptions, got \{'timeout': 3\}"):
            first.options({"timeout": 3})  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_callables_own_attributes_do_not_replace_the_bound_tasks() -> None:
    """A callable object with ``_options``/``_queue`` attributes, and a class with a ``map`` method,
    bind as any function does; the name and doc still come from the callable."""
    async with AsyncQueue() as q:
        scale = q.task(backend="thread")(_Scale())
        assert (await scale(3)).value == 6
        jobs = q.task(backend="thread")(_Job)
        assert [(await h).value.x for h in jobs.map([1, 2])] == [1, 2]
        assert (jobs.__name__, jobs.__doc__, jobs.__wrapped__) == ("_Job", _Job.__doc__, _Job)


def test_blocking_bound_tasks_stack_rebind_and_bind_methods() -> None:
    """The same on a blocking Queue: stacked options combine, a callable's attributes stay its own,
    and a method decorated in a class body gets its instance."""
    q = osiiso.Queue()

    class Doubler:
        def __init__(self, k: int) -> None:
            self.k = k

        @q.task(backend="thread")
        def times(self, x: int) -> int:
            return self.k * x

    with q:
        stacked = q.task(retries=1)(q.task(name="n")(_same))
        assert stacked.default_options == TaskOptions(retries=1, name="n")
        assert stacked(4).result().name == "n"
        assert q.task(_Scale())(5).value() == 10
        two = Doubler(2)
        assert two.times(4).value() == 8
        assert [h.value() for h in two.times.map([1, (2,)])] == [2, 4]
        assert two.times.group([3]).values() == (6,)


@pytest.mark.anyio
async def test_group_ids_come_from_the_preset_and_a_failed_group_takes_none() -> None:
    """A bound task's group() (and group() with opts) uses the preset group_id; generated ids run on
    without a gap when a group() call fails."""
    async with AsyncQueue(size=3) as q:
        preset = q.task(group_id="deco", backend="thread")(_same)
        group = preset.group([1, 2])
        assert group.group_id == "deco" and {(await h).group_id for h in group} == {"deco"}
        assert q.group(_same, [1], opts=TaskOptions(group_id="x"), backend="thread").group_id == "x"
        await q.join()
        assert q.group(_same, [1], backend="thread").group_id == "group-1"
        with pytest.raises(osiiso.QueueFullError):
            q.group(_same, range(4), backend="thread")
        with pytest.raises(TypeError):
            q.group([_same])  # type: ignore[list-item]
        assert q.group(_same, [2], backend="thread").group_id == "group-2"


def test_a_full_blocking_queue_group_keeps_one_generated_id() -> None:
    """A ThreadQueue group() too big for its size waits for room task by task, all under the id it
    was given first; the next group gets the next number."""
    with osiiso.ThreadQueue(size=2) as q:
        group = q.group(_same, range(5))
        assert group.group_id == "group-1"
        assert {h.result().group_id for h in group.handles} == {"group-1"}
        assert q.group(_same, [1]).group_id == "group-2"
