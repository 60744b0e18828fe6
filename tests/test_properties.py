"""Property tests (hypothesis): option validation and merging, priority order, retry delays, GCRA bounds."""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osiiso import AsyncQueue, TaskOptions
from osiiso._engine.ratelimit import RateLimiter

pytestmark = [pytest.mark.timeout(60)]
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERY_FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "backend": st.sampled_from(["auto", "async", "thread", "process"]),
    "priority": st.integers(min_value=-10**6, max_value=10**6),
    "timeout": st.none() | finite,
    "retries": st.integers(min_value=0, max_value=100),
    "retry_delay": st.just(0) | finite,
    "backoff": finite,
    "retry_on": st.sampled_from([ValueError, (KeyError, OSError), (Exception,), BaseException]),
    "delay": st.none() | st.just(0) | finite,
    "must_complete": st.booleans(),
    "name": st.none() | st.text(max_size=10),
    "group_id": st.none() | st.text(max_size=10),
    "metadata": st.none() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    "detached": st.booleans(),
}
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "backend": st.text(max_size=8).filter(lambda s: s not in ("auto", "async", "thread", "process", "dask")),
    "priority": st.floats(allow_nan=False) | st.booleans() | st.text(max_size=3),
    "timeout": st.floats(max_value=0) | st.just(float("nan")) | st.text(max_size=3),
    "retries": st.integers(max_value=-1) | st.booleans() | st.floats(allow_nan=False),
    "retry_delay": st.floats(max_value=-0.001, allow_nan=False) | st.just(None) | st.just(float("nan")),
    "backoff": st.floats(max_value=0) | st.just(None),
    "retry_on": st.sampled_from(["ValueError", 3, (ValueError, 3), (int,)]),
    "delay": st.floats(max_value=-0.001, allow_nan=False) | st.just(float("nan")),
    "must_complete": st.integers() | st.none(),
    "name": st.integers() | st.floats(allow_nan=False),
    "metadata": st.lists(st.integers(), max_size=2) | st.integers(),
    "detached": st.integers() | st.text(max_size=2),
}


@FEW
@given(st.fixed_dictionaries({}, optional=VALID))
def test_valid_options_are_accepted_and_kept(values: dict[str, Any]) -> None:
    """Any combination of valid values builds a TaskOptions that holds them (retry_on as a tuple)."""
    options = TaskOptions(**values)
    for key, value in values.items():
        expected = (value,) if key == "retry_on" and isinstance(value, type) else value
        assert getattr(options, key) == expected
    assert options.explicit == frozenset(values)
    assert options.replace() == options


@FEW
@given(st.sampled_from(sorted(INVALID)).flatmap(lambda k: st.tuples(st.just(k), INVALID[k])))
def test_invalid_options_are_rejected_with_value_error(field_value: tuple[str, Any]) -> None:
    """An invalid value for any field raises ValueError naming the field, in TaskOptions() and replace()."""
    key, value = field_value
    with pytest.raises(ValueError, match=key):
        TaskOptions(**{key: value})
    with pytest.raises(ValueError, match=key):
        TaskOptions().replace(**{key: value})


layer = st.fixed_dictionaries({}, optional={k: VALID[k] for k in ("priority", "timeout", "retries", "name",
                                                                     "must_complete", "backoff")})


@FEW
@given(layer, layer, layer)
def test_merge_order_is_defaults_then_opts_then_keywords(defaults: dict[str, Any], opts: dict[str, Any],
                                                       keywords: dict[str, Any]) -> None:
    """Each field comes from the keywords if given, else from opts, else from the queue's defaults."""
    q = AsyncQueue(defaults=TaskOptions(**defaults))

    async def f() -> None: ...

    handle = q.submit(f, opts=TaskOptions(**opts), **keywords)
    plain = TaskOptions()
    for key in ("priority", "timeout", "retries", "name", "must_complete", "backoff"):
        expected = keywords.get(key, opts.get(key, defaults.get(key, getattr(plain, key))))
        assert getattr(handle.options, key) == expected, key
    bound = q.task(TaskOptions(**opts), **keywords)(f)
    for key in keywords:
        assert getattr(bound.default_options, key) == keywords[key]


@VERY_FEW
@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=30))
def test_one_worker_runs_tasks_in_priority_then_submission_order(priorities: list[int]) -> None:
    """With one worker, tasks run by (priority, submission order), lowest priority first."""
    order: list[int] = []

    async def record(i: int) -> None:
        order.append(i)

    async def main() -> None:
        q = AsyncQueue(workers=1)
        for i, priority in enumerate(priorities):
            q.submit(record, i, priority=priority)
        summary = await q.run()
        assert summary.ok

    anyio.run(main)
    assert order == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))


@VERY_FEW
@given(st.integers(min_value=1, max_value=3), st.sampled_from([0.005, 0.01, 0.02]),
       st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_retry_k_waits_retry_delay_times_backoff_to_the_k_minus_1(retries: int, retry_delay: float,
                                                                   backoff: float) -> None:
    """The delay before retry k is at least retry_delay * backoff**(k-1) (and not absurdly more)."""
    starts: list[float] = []

    async def fail() -> None:
        starts.append(time.monotonic())
        raise ValueError("again")

    async def main() -> None:
        q = AsyncQueue()
        handle = q.submit(fail, retries=retries, retry_delay=retry_delay, backoff=backoff)
        await q.run()
        assert handle.attempts == retries + 1 and handle.status == "failed"

    anyio.run(main)
    for k in range(1, retries + 1):
        expected = retry_delay * backoff ** (k - 1)
        gap = starts[k] - starts[k - 1]
        assert gap >= expected * 0.95, (k, gap, expected)
        assert gap < expected + 1.0, (k, gap, expected)


@FEW
@given(st.floats(min_value=0.5, max_value=200), st.integers(min_value=1, max_value=10),
       st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=80))
def test_gcra_never_lets_more_than_burst_plus_rate_t_start_in_a_window(rate: float, burst: int,
                                                                       gaps: list[float]) -> None:
    """With a fake clock, no window of length t holds more than burst + rate*t starts."""
    limiter = RateLimiter(rate, burst)
    now = 1000.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        wait = limiter.reserve(now)
        assert wait >= 0
        starts.append(now + wait)
    assert starts == sorted(starts), "a later caller started before an earlier one"
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            t = starts[j] - starts[i]
            assert j - i + 1 <= burst + rate * t + 1e-6, (i, j, t)


@FEW
@given(st.floats(min_value=0.5, max_value=200), st.integers(min_value=1, max_value=10))
def test_gcra_allows_a_burst_after_idle_then_paces(rate: float, burst: int) -> None:
    """After an idle spell, burst callers start at once; the next one waits one interval per extra start."""
    limiter = RateLimiter(rate, burst)
    now = 5000.0
    waits = [limiter.reserve(now) for _ in range(burst + 3)]
    assert all(w < 1e-9 for w in waits[:burst]), waits  # float rounding may leave a picosecond
    for extra in range(1, 4):
        assert math.isclose(waits[burst - 1 + extra], extra / rate, rel_tol=1e-9, abs_tol=1e-9)
