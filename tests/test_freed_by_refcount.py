"""A queue that is dropped after its run frees its engine, and with it every result, by reference
counting alone: no reference cycle waits for the cyclic garbage collector.

A cycle through the engine keeps thousands of handles and results alive until the collector
runs, and makes whoever allocates next pay for traversing them (W1 ran 1.6x slower after a
bigger run in the same process).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from support import ASYNCIO

from osiiso import AsyncQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> object:
    return ASYNCIO


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def square(i: int) -> int:
    return i * i


async def asquare(i: int) -> int:
    return i * i


@pytest.mark.parametrize("backend", ["async", "thread", "process"])
@pytest.mark.parametrize("hooks", [False, True], ids=["no hooks", "hooks"])
async def test_a_dropped_queue_is_freed_without_the_collector(backend: str, hooks: bool, no_collector: None) -> None:
    kwargs = {"on_complete": lambda result: None} if hooks else {}
    q = AsyncQueue(**kwargs)  # type: ignore[arg-type]
    q.map(asquare if backend == "async" else square, range(300), backend=backend)
    summary = await q.run()
    await q.shutdown()
    assert summary.succeeded == 300
    engine = weakref.ref(q._engine)
    del q, summary
    assert engine() is None, "the engine is kept alive by a reference cycle"


# -- what a finished result leaves for the cyclic collector -----------------------------------------
async def test_a_finished_result_is_the_one_object_the_collector_tracks(no_collector: None) -> None:
    """Each attempt's timing is kept as a plain tuple, which the collector stops tracking, and a
    result of one attempt keeps that tuple itself: a finished task leaves its `TaskResult`, not
    three objects, and allocates two; `timings` still reads as `AttemptTiming`s, in every form
    a result takes."""
    import pickle

    from osiiso import AttemptTiming, TaskResult

    q = AsyncQueue()
    q.map(asquare, range(50))
    await q.run()
    result = q.results[0]
    gc.enable()
    gc.collect()
    raw = tuple.__getitem__(result, len(result) - 1)
    assert type(raw) is tuple and len(raw) == len(AttemptTiming._fields) and raw[0] == 1  # no tuple around it
    assert not gc.is_tracked(raw)
    (timing,) = result.timings
    assert type(timing) is AttemptTiming and timing.outcome == "ok" and timing.number == 1
    assert result._asdict()["timings"] == (timing,) and type(result._asdict()["timings"][0]) is AttemptTiming
    again = pickle.loads(pickle.dumps(result))
    assert again == result and type(again.timings[0]) is AttemptTiming
    made = TaskResult("task-1", "f", "succeeded", timings=(timing,))
    assert made.timings == (timing,) and type(made.timings[0]) is AttemptTiming
    changed = result._replace(timings=(timing, timing))
    assert changed.timings == (timing, timing) and type(changed.timings[1]) is AttemptTiming
    several = tuple.__getitem__(changed, len(changed) - 1)
    assert several == (tuple(timing), tuple(timing)) and all(type(t) is tuple for t in several)
    assert result._replace(timings=(timing,)) == result  # one timing: kept the same way, however given
    assert result._replace(timings=()).timings == ()
    with pytest.raises(TypeError, match="fields"):
        TaskResult._make(tuple(result)[:-1])
    await q.shutdown()


async def test_a_retried_result_keeps_each_timing_as_a_plain_tuple(no_collector: None) -> None:
    """A task that succeeds on its second attempt keeps both timings as plain tuples, as a failed
    or cancelled one does; `timings` reads them back as `AttemptTiming`s."""
    from osiiso import AttemptTiming

    calls: list[int] = []

    async def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt")
        return 7

    q = AsyncQueue()
    handle = q.submit(flaky, retries=1)
    await q.run()
    result = handle.result()
    assert result.value == 7 and result.attempts == 2
    raw = tuple.__getitem__(result, len(result) - 1)
    assert [type(t) for t in raw] == [tuple, tuple], raw
    assert [type(t) for t in result.timings] == [AttemptTiming, AttemptTiming]
    assert [t.outcome for t in result.timings] == ["error", "ok"]
    await q.shutdown()
