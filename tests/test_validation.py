"""Bad input gets a clear error at the call that was wrong, naming the value and the fix."""

from __future__ import annotations

import pytest

from osiiso import AsyncQueue, TaskOptions


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": "4"}, "workers"),
        ({"threads": -1}, "threads"),
        ({"processes": 1.5}, "processes"),
        ({"processes": 10**11}, "processes must be at most 4,096"),
        ({"burst": 5}, "burst=5 needs a rate"),
        ({"rate": 1e-300}, "at least one attempt a year"),
        ({"size": -1}, "size"),
        ({"timeout": 0}, "timeout"),
        ({"mode": "forever"}, "'finite', 'infinite'"),
        ({"fail_policy": "stop"}, "'continue', 'fail_first'"),
        ({"on_timeout": "kill"}, "'complete', 'cancel'"),
        ({"rate": 0}, "rate"),
        ({"burst": 0}, "burst"),
        ({"defaults": {"retries": 1}}, "defaults"),
        ({"on_start": 3}, "on_start"),
        ({"on_complete": "x"}, "on_complete"),
        ({"on_retry": 1}, "on_retry"),
        ({"initializer": 1}, "initializer"),
        ({"initargs": [1]}, "initargs"),
        ({"mp_context": "threads"}, "mp_context"),
        ({"max_tasks_per_child": 0}, "max_tasks_per_child"),
        ({"dask": 8786}, "dask"),
    ],
)
def test_queue_arguments_are_validated(kwargs: dict[str, object], needle: str) -> None:
    """Each bad constructor argument raises ValueError naming the argument and its bad value."""
    with pytest.raises(ValueError, match=needle) as info:
        AsyncQueue(**kwargs)  # type: ignore[arg-type]
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_dask_argument_takes_none_an_address_or_dask_options() -> None:
    """dask= takes None, a scheduler address or a DaskOptions (checked without connecting); not a blank address."""
    from osiiso.backends.dask import DaskOptions

    AsyncQueue(dask=None)
    AsyncQueue(dask="tcp://127.0.0.1:8786")
    AsyncQueue(dask=DaskOptions(n_workers=2, hard_stop=True))
    with pytest.raises(ValueError, match="scheduler address"):
        AsyncQueue(dask="  ")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"backend": "gpu"}, "backend"),
        ({"priority": "high"}, "priority"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_delay": -0.1}, "retry_delay"),
        ({"backoff": 0}, "backoff"),
        ({"retry_on": "ValueError"}, "retry_on"),
        ({"retry_on": (ValueError, 3)}, "retry_on"),
        ({"delay": -1}, "delay"),
        ({"delay": 1, "run_at": 2}, "delay and run_at"),
        ({"must_complete": 1}, "must_complete"),
        ({"detached": "yes"}, "detached"),
        ({"name": 3}, "name"),
        ({"metadata": [1]}, "metadata"),
    ],
)
def test_task_options_are_validated(kwargs: dict[str, object], needle: str) -> None:
    """Each bad option raises ValueError naming the field."""
    with pytest.raises(ValueError, match=needle):
        TaskOptions(**kwargs)  # type: ignore[arg-type]


def test_unknown_options_suggest_close_matches() -> None:
    """An unknown option name is a TypeError that suggests the likely one."""
    q = AsyncQueue()

    async def f() -> None: ...

    with pytest.raises(TypeError, match="'retries'"):
        q.submit(f, retrys=2)
    with pytest.raises(TypeError, match="'timeout'"):
        TaskOptions().replace(timout=1)
    with pytest.raises(TypeError, match="functools.partial"):
        q.submit(f, url="x")


def test_options_merge_only_explicit_fields() -> None:
    """Queue defaults, then opts, then keyword overrides: only fields set explicitly override."""
    q = AsyncQueue(defaults=TaskOptions(retries=3, priority=5))

    async def f() -> None: ...

    handle = q.submit(f, opts=TaskOptions(priority=1), timeout=2)
    assert (handle.options.retries, handle.options.priority, handle.options.timeout) == (3, 1, 2)
    assert TaskOptions(retry_on=KeyError).retry_on == (KeyError,)
    frozen = TaskOptions()
    with pytest.raises(AttributeError, match="frozen"):
        frozen.priority = 1  # type: ignore[misc]


def test_a_start_time_replaces_the_other_one_set_below_it() -> None:
    """delay and run_at are one start time: one set in a later layer (opts, keywords, a bound task's
    call, replace()) replaces the other from a lower one; both in one layer stay an error."""
    q = AsyncQueue(defaults=TaskOptions(delay=30))

    def f() -> None: ...

    at = 2_000_000_000.0
    assert (q.submit(f, run_at=at).options.delay, q.submit(f, run_at=at).options.run_at) == (None, at)
    later = q.task(run_at=at)(f).options(delay=1)
    assert (later.default_options.delay, later.default_options.run_at) == (1, None)
    assert q.task(delay=5)(f)(run_at=at).options.run_at == at
    assert TaskOptions(delay=1, priority=2).replace(run_at=at) == TaskOptions(run_at=at, priority=2)
    assert TaskOptions(run_at=at).merged(TaskOptions(delay=3)) == TaskOptions(delay=3)
    with pytest.raises(ValueError, match="delay and run_at cannot both be set"):
        q.submit(f, delay=1, run_at=at)
    with pytest.raises(ValueError, match="delay and run_at cannot both be set"):
        TaskOptions(delay=1).replace(delay=2, run_at=at)
    q.cancel()


def test_sync_function_on_async_backend_is_rejected_at_submit() -> None:
    """A plain function with backend='async' is a TypeError at submit, naming the fix."""
    q = AsyncQueue()
    with pytest.raises(TypeError, match="backend='thread'"):
        q.submit(print, backend="async")
    with pytest.raises(TypeError, match="callable"):
        q.submit(42)  # type: ignore[arg-type]


def test_value_before_the_end_is_an_error() -> None:
    """Asking a handle for its value before the task ended raises a RuntimeError that says what to do."""
    q = AsyncQueue()

    async def f() -> int:
        return 1

    handle = q.submit(f)
    with pytest.raises(RuntimeError, match="await the handle"):
        handle.value()


@pytest.mark.anyio
@pytest.mark.timeout(10)
async def test_run_arguments_are_validated() -> None:
    """run() rejects a bad timeout or fail_policy before starting anything."""
    ran: list[str] = []

    async def f() -> None:
        ran.append("ran")

    q = AsyncQueue()
    handle = q.submit(f)
    with pytest.raises(ValueError, match="timeout"):
        await q.run(timeout=-1)
    with pytest.raises(ValueError, match="fail_policy"):
        await q.run(fail_policy="never")
    assert handle.status == "pending" and q.pending_count == 1 and ran == [], "a refused run() started the task"
    await q.run(strict=True)  # a good run() then runs it
    assert ran == ["ran"]
