"""The bad-input catalogue: every public entry point given something wrong.

Each case must raise a clear error at the call that was wrong, whose message names the
offending value or name, and leave the queue usable (a good task submitted afterwards runs).
``tests/test_validation.py`` covers the constructor and ``TaskOptions`` basics; this module
covers everything else.
"""

from __future__ import annotations

import decimal
import fractions
import functools
import gc
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from support import ASYNCIO

import osiiso
from osiiso import AsyncQueue, ClosedError, SerializationError, TaskOptions

pytestmark = [pytest.mark.timeout(30)]

_LOCK = threading.Lock()


@pytest.fixture
def anyio_backend() -> object:
    """Bad input is checked before any loop matters: asyncio is enough here."""
    return ASYNCIO


def plain(x: int = 1) -> int:
    return x


async def coro_fn(x: int = 1) -> int:
    return x


def yields(x: int = 1) -> Iterator[int]:
    yield x


def greet(name: str) -> str:
    return f"hello {name}"


def wait_for(*, timeout: float) -> float:
    return timeout


def fetch(url: str, timeout: float = 10.0) -> float:
    return timeout


def broken_items() -> Iterator[int]:
    yield 1
    raise RuntimeError("the iterable broke")


async def assert_usable(q: AsyncQueue) -> None:
    """A good task still runs on ``q`` (reset first if the case closed it)."""
    if q.closed:
        q.reset()
    q.clear_results()
    before = q.pending_count
    handle = q.submit(plain, 7, backend="thread")
    summary = await q.run()
    assert handle.value() == 7
    assert summary.total_submitted == before + 1
    await q.shutdown()  # release the thread pool: later tests count threads


# (id, call on a fresh queue, expected exception, text the message must contain)
Case = tuple[str, Callable[[AsyncQueue], object], type[BaseException], str]
CASES: list[Case] = [
    ("submit-non-callable", lambda q: q.submit("not a function"), TypeError, "'not a function'"),
    ("submit-none", lambda q: q.submit(None), TypeError, "None"),  # type: ignore[arg-type]
    ("submit-opts-dict", lambda q: q.submit(plain, opts={"retries": 1}), TypeError, "{'retries': 1}"),
    ("submit-unknown-option", lambda q: q.submit(plain, retires=1), TypeError, "'retires'"),
    ("submit-task-kwarg", lambda q: q.submit(plain, x=1), TypeError, "functools.partial"),
    ("submit-bad-backend", lambda q: q.submit(plain, backend="gpu"), ValueError, "'gpu'"),
    ("submit-backend-none", lambda q: q.submit(plain, backend=None), ValueError, "None"),
    ("submit-priority-float", lambda q: q.submit(plain, priority=1.5), ValueError, "1.5"),
    ("submit-timeout-str", lambda q: q.submit(plain, timeout="1"), ValueError, "'1'"),
    ("submit-timeout-nan", lambda q: q.submit(plain, timeout=float("nan")), ValueError, "NaN"),
    ("submit-timeout-fraction", lambda q: q.submit(plain, timeout=fractions.Fraction(1, 2)), ValueError,
     "must be an int or a float, got Fraction(1, 2) (Fraction): pass float(timeout)"),
    ("submit-delay-decimal", lambda q: q.submit(plain, delay=decimal.Decimal("0.5")), ValueError,
     "must be an int or a float, got Decimal('0.5') (Decimal): pass float(delay)"),
    ("submit-retries-bool", lambda q: q.submit(plain, retries=True), ValueError, "True"),
    ("submit-retry-on-instance", lambda q: q.submit(plain, retry_on=ValueError("x")), ValueError, "retry_on"),
    ("submit-delay-and-run-at", lambda q: q.submit(plain, delay=1, run_at=2), ValueError, "delay and run_at"),
    ("submit-metadata-list", lambda q: q.submit(plain, metadata=[1]), ValueError, "[1]"),
    ("submit-sync-on-async", lambda q: q.submit(plain, backend="async"), TypeError, "plain"),
    ("submit-sync-partial-on-async", lambda q: q.submit(functools.partial(plain, 1), backend="async"),
     TypeError, "functools.partial"),
    ("submit-awaitable-with-args", lambda q: _with_coroutine(lambda c: q.submit(c, 1)), TypeError, "awaitable"),
    ("submit-coroutine-object-retries", lambda q: _with_coroutine(lambda c: q.submit(c, retries=2)),
     ValueError, "coroutine object"),
    ("submit-coroutine-object-thread", lambda q: _with_coroutine(lambda c: q.submit(c, backend="thread")),
     TypeError, "coroutine"),
    ("submit-generator-function", lambda q: q.submit(yields), TypeError, "return a list"),
    ("map-generator-function", lambda q: q.map(yields, [1]), TypeError, "return a list"),
    ("task-generator-function", lambda q: q.task(yields), TypeError, "return a list"),
    ("submit-option-shadows-parameter", lambda q: q.submit(greet, name="ada"), TypeError,
     "functools.partial(greet, name=value)"),
    ("submit-option-shadows-keyword-only", lambda q: q.submit(wait_for, timeout=3), TypeError,
     "functools.partial(wait_for, timeout=value)"),
    ("bound-option-shadows-parameter", lambda q: q.task(greet)(name="ada"), TypeError, "positionally"),
    ("map-not-iterable", lambda q: q.map(plain, 5), TypeError, "int"),
    ("map-none", lambda q: q.map(plain, None), TypeError, "NoneType"),  # type: ignore[arg-type]
    ("map-unknown-option", lambda q: q.map(plain, [1], prio=1), TypeError, "'prio'"),
    ("map-bad-option-value", lambda q: q.map(plain, [1], retries=-1), ValueError, "-1"),
    ("group-not-iterable", lambda q: q.group(plain, 5), TypeError, "int"),
    ("group-calls-not-tuples", lambda q: q.group([plain, plain]), TypeError, "plain"),
    ("group-empty-call", lambda q: q.group([()]), TypeError, "()"),
    ("group-non-callable-call", lambda q: q.group([(5, 1)]), TypeError, "5"),
    ("group-id-int", lambda q: q.group(plain, [1], group_id=3), ValueError, "3"),
    ("group-unknown-option", lambda q: q.group(plain, [1], tiemout=1), TypeError, "'tiemout'"),
    ("task-non-callable", lambda q: q.task(5), TypeError, "5"),  # type: ignore[call-overload]
    ("task-opts-dict", lambda q: q.task({"retries": 1}), TypeError, "{'retries': 1}"),  # type: ignore[call-overload]
    ("task-unknown-option", lambda q: q.task(retrys=1), TypeError, "'retrys'"),
    ("task-bad-value", lambda q: q.task(retries=-1), ValueError, "-1"),
    ("task-decorates-non-callable", lambda q: q.task(retries=1)(5), TypeError, "5"),
    ("task-sync-on-async", lambda q: q.task(backend="async")(plain), TypeError, "@q.task(backend='async')"),
    ("task-sync-on-async-opts", lambda q: q.task(TaskOptions(backend="async"))(plain), TypeError, "plain"),
    ("bound-options-sync-on-async", lambda q: q.task(plain).options(backend="async"), TypeError, "synchronous"),
    ("bound-bad-override", lambda q: q.task(plain)(1, retries=-1), ValueError, "-1"),
    ("bound-bad-override-type", lambda q: q.task(plain)(1, timeout="soon"), ValueError, "'soon'"),
    ("bound-options-unknown", lambda q: q.task(plain).options(retrys=1), TypeError, "'retrys'"),
    ("bound-options-bad-value", lambda q: q.task(plain).options(priority="high"), ValueError, "'high'"),
    ("bound-map-not-iterable", lambda q: q.task(plain).map(5), TypeError, "int"),
    ("bound-map-unknown-option", lambda q: q.task(plain).map([1], foo=1), TypeError, "'foo'"),
    ("bound-group-unknown-option", lambda q: q.task(plain).group([1], foo=1), TypeError, "'foo'"),
    ("replace-bad-value", lambda q: TaskOptions().replace(timeout=-1), ValueError, "-1"),
    ("replace-unknown", lambda q: TaskOptions().replace(foo=1), TypeError, "'foo'"),
    # one start time in one call: replace(run_at=) over a delay replaces it (test_validation), both at once do not
    ("replace-contradiction", lambda q: TaskOptions(delay=1).replace(run_at=5.0, delay=2), ValueError,
     "delay and run_at"),
    ("options-positional", lambda q: TaskOptions(1), TypeError, "positional"),  # type: ignore[misc]
    ("register-backend-auto", lambda q: osiiso.register_backend("auto", "x:y"), ValueError, "'auto'"),
]


def _with_coroutine(call: Callable[[Any], object]) -> object:
    """Call with a fresh coroutine object, closing it whatever happens (no 'never awaited')."""
    coro = coro_fn()
    try:
        return call(coro)
    finally:
        coro.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("case", "call", "exc_type", "needle"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_at_the_call_and_the_queue_stays_usable(
        case: str, call: Callable[[AsyncQueue], object], exc_type: type[BaseException], needle: str) -> None:
    """A wrong call raises a clear error naming the offender, with no internal exception as its
    context (one traceback, not two), and a good task runs afterwards."""
    q = AsyncQueue(threads=2)
    with pytest.raises(exc_type) as info:
        call(q)
    assert needle in str(info.value), f"{case}: {info.value}"
    assert info.value.__context__ is None, f"{case}: an internal {info.value.__context__!r} rides along"
    assert q.pending_count == 0, f"{case}: the failed call left tasks behind"
    await assert_usable(q)


@pytest.mark.anyio
async def test_an_option_named_like_a_parameter_is_fine_when_the_parameter_gets_a_value() -> None:
    """An option that shares a parameter's name is accepted when the parameter is given
    positionally or has a default: the keyword is the option, as written; put() refuses as submit() does."""
    q = AsyncQueue()
    named = q.submit(greet, "ada", name="greeting")
    defaulted = q.submit(fetch, "https://x.example", timeout=5)
    bound = q.task(greet)("alan", name="bound")
    with pytest.raises(TypeError, match="put\\(\\) took name="):
        await q.put(greet, name="ada")
    await q.run(strict=True)
    assert (named.value(), named.name) == ("hello ada", "greeting")
    assert defaulted.value() == 10.0 and defaulted.options.timeout == 5
    assert (bound.value(), bound.name) == ("hello alan", "bound")
    await q.shutdown()


@pytest.mark.anyio
async def test_run_arguments_name_the_bad_value() -> None:
    """run() refuses a bad timeout, fail_policy or progress value, naming it, and the queue runs after."""
    q = AsyncQueue()
    for kwargs, needle in [({"timeout": True}, "True"), ({"timeout": "1"}, "'1'"),
                           ({"timeout": float("nan")}, "nan"), ({"fail_policy": "never"}, "'never'"),
                           ({"progress": "yes"}, "'yes'")]:
        with pytest.raises(ValueError) as info:
            await q.run(**kwargs)  # type: ignore[arg-type]
        assert needle in str(info.value)
    await assert_usable(q)


@pytest.mark.anyio
async def test_closed_queue_refuses_every_entry_point_until_reset() -> None:
    """After shutdown() every way to add work raises ClosedError saying what to do; reset() reopens."""
    q = AsyncQueue()
    await q.shutdown()
    bound = q.task(plain)
    for call in (lambda: q.submit(plain), lambda: q.map(plain, [1]), lambda: q.group(plain, [1]),
                 lambda: bound(1), lambda: q.group([(plain, 1)])):
        with pytest.raises(ClosedError, match="reset"):
            call()
    with pytest.raises(ClosedError, match="reset"):
        await q.put(plain)
    with pytest.raises(ClosedError, match="reset"):
        await q.start()
    with pytest.raises(ClosedError, match="reset"):
        await q.run()
    await assert_usable(q)


@pytest.mark.anyio
async def test_unpicklable_function_for_the_process_backend_fails_its_task_naming_the_object() -> None:
    """A function closing over a lock is accepted at submit and fails at run with SerializationError naming the lock."""
    q = AsyncQueue(processes=1)
    lock = threading.Lock()

    def uses_lock() -> int:  # a closure: cloudpickle ships it by value, lock and all
        with lock:
            return 1

    handle = q.submit(uses_lock, backend="process")  # accepted: pickling happens when the task runs
    also = q.submit(plain, _LOCK, backend="process")
    summary = await q.run()
    assert summary.failed == 2
    for h, what in ((handle, "the function 'uses_lock'"), (also, "argument 0 of 'plain'")):
        exc = h.exception()
        assert isinstance(exc, SerializationError)
        assert what in str(exc) and "_thread.lock" in str(exc), str(exc)
    await assert_usable(q)


@pytest.mark.anyio
async def test_helpers_refuse_bad_input() -> None:
    """amap/tmap/pmap/run/as_completed refuse bad input with errors naming it."""
    with pytest.raises(TypeError, match="backend='async'"):
        await osiiso.amap(plain, [1], backend="async")
    with pytest.raises(TypeError, match="5"):
        await osiiso.amap(5, [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers.*0"):
        await osiiso.amap(coro_fn, [1], workers=0)
    with pytest.raises(TypeError, match="'retrys'"):
        await osiiso.amap(coro_fn, [1], retrys=1)


@pytest.mark.timeout(30)
def test_sync_helpers_refuse_bad_input() -> None:
    """tmap/pmap and osiiso.run refuse bad input with errors naming it."""
    with pytest.raises(TypeError, match="5"):
        osiiso.tmap(5, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int"):
        osiiso.tmap(plain, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'foo'"):
        osiiso.pmap(plain, [1], foo=1)
    with pytest.raises(ValueError, match="'curio'"):
        osiiso.run(coro_fn, backend="curio")
    with pytest.raises(TypeError, match="5"):
        osiiso.run(5)  # type: ignore[arg-type]
    coro = coro_fn()
    with pytest.raises(TypeError, match="coroutine object"):
        osiiso.run(coro, 1)
    coro.close()
    with pytest.raises(TypeError, match="synchronous"):
        osiiso.run(plain, backend="trio")
    with pytest.raises(osiiso.ExecutionError, match="SerializationError.*_thread.lock"):
        osiiso.pmap(lambda _: _LOCK, [1])
    assert osiiso.tmap(plain, [1, 2]) == (1, 2)


# -- cases that were bugs, fixed: kept as regression tests ------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("call", [lambda q: q.map(plain, broken_items()),
                                  lambda q: q.group([(plain, 1), (5, 1)])],
                         ids=["map-iterable-raises", "group-bad-second-call"])
async def test_a_failed_map_or_group_submits_nothing(call: Callable[[AsyncQueue], object]) -> None:
    """A map()/group() that raises leaves no task behind: it is all or nothing."""
    q = AsyncQueue()
    with pytest.raises((TypeError, RuntimeError)):
        call(q)
    assert q.pending_count == 0, f"{q.pending_count} task(s) were submitted without a handle"


@pytest.mark.parametrize("option", ["delay", "run_at", "retry_delay", "backoff"])
def test_infinite_start_times_are_refused(option: str) -> None:
    """delay, run_at, retry_delay and backoff must be finite numbers."""
    with pytest.raises(ValueError, match=option):
        TaskOptions(**{option: float("inf")})


@pytest.mark.anyio
async def test_a_coroutine_object_is_refused_a_second_time_and_once_started() -> None:
    """A coroutine object runs once: submitting it again, or one already started, is a ValueError
    naming the fix, and the first submission runs as usual."""
    q = AsyncQueue()
    coro = coro_fn(3)
    first = q.submit(coro)
    with pytest.raises(ValueError, match="submitted already.*call the coroutine function again"):
        q.submit(coro)
    with pytest.raises(ValueError, match="submitted already"):
        q.group([(coro,)])
    twice = coro_fn(4)
    with pytest.raises(ValueError, match="is in it twice"):
        q.group([(coro_fn, 5), (twice,), (twice,)])  # all or none: the first two are not queued either
    twice.close()
    assert q.pending_count == 1
    await q.run(strict=True)
    assert first.value() == 3
    with pytest.raises(ValueError, match="has started already"):
        q.submit(coro)  # it ran to its end
    await q.shutdown()


@pytest.mark.anyio
async def test_a_coroutine_object_that_never_runs_is_closed() -> None:
    """A coroutine object whose task ends without running it (cancelled before it started, or cut
    by a forced shutdown while queued) is closed: Python does not warn that it was never awaited."""
    q = AsyncQueue()
    cancelled, queued = coro_fn(), coro_fn()
    handle = q.submit(cancelled)
    assert handle.cancel()
    dropped = q.submit(queued)
    await q.shutdown(force=True)
    assert handle.cancelled() and dropped.cancelled()
    assert inspect.getcoroutinestate(cancelled) == inspect.CORO_CLOSED
    assert inspect.getcoroutinestate(queued) == inspect.CORO_CLOSED


@pytest.mark.parametrize("value", [0, -1, float("inf")])
def test_a_bad_backoff_is_not_told_to_be_none(value: float) -> None:
    """backoff takes no None: its error offers none (only options that take None say "or None")."""
    with pytest.raises(ValueError, match="backoff") as info:
        TaskOptions(backoff=value)
    assert "None" not in str(info.value)
    with pytest.raises(ValueError, match=r"timeout must be > 0 \(or None for no limit\)"):
        TaskOptions(timeout=0)


@pytest.mark.anyio
async def test_coroutine_object_for_the_process_backend_is_refused_at_submit() -> None:
    """A coroutine object given backend='process' is a TypeError at submit, as for backend='thread'."""
    q = AsyncQueue(processes=1)
    coro = coro_fn()
    try:
        with pytest.raises(TypeError, match="coroutine"):
            q.submit(coro, backend="process")
    finally:
        coro.close()
        if q.pending_count:
            await q.run()
        await q.shutdown()


@pytest.mark.timeout(10)
def test_run_with_a_sync_function_names_it_on_asyncio() -> None:
    """osiiso.run(plain) on asyncio says that 'plain' is not an async function, without calling it."""
    calls: list[int] = []

    def sync_main() -> int:
        calls.append(1)
        return 1

    with pytest.raises(TypeError, match="sync_main") as info:
        osiiso.run(sync_main, backend="asyncio")
    assert "async" in str(info.value)
    assert not calls, "the sync function was called"


@pytest.mark.anyio
async def test_add_done_callback_refuses_a_non_callable() -> None:
    """add_done_callback with a non-callable raises TypeError at the call."""
    q = AsyncQueue()
    handle = q.submit(coro_fn)
    try:
        with pytest.raises(TypeError, match="5"):
            handle.add_done_callback(5)  # type: ignore[arg-type]
    finally:
        await q.run()


@pytest.mark.anyio
async def test_cancel_with_a_non_string_reason_is_a_clear_error() -> None:
    """cancel(reason=5) raises a TypeError naming the reason."""
    q = AsyncQueue()
    await q.start()
    handle = q.submit(anyio.sleep, 30)
    try:
        with pytest.raises(TypeError, match="reason"):
            handle.cancel(reason=5)  # type: ignore[arg-type]
    finally:
        await q.shutdown(force=True)


@pytest.mark.anyio
async def test_run_strict_must_be_a_bool() -> None:
    """run(strict='yes') raises ValueError naming the value, as run(progress='yes') does."""
    q = AsyncQueue()
    with pytest.raises(ValueError, match="'yes'"):
        await q.run(strict="yes")  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_as_completed_refuses_what_is_not_a_handle() -> None:
    """as_completed over non-handles raises TypeError naming the offending element."""
    error: tuple[type[BaseException], str] | None = None
    try:
        async for _ in osiiso.as_completed([1, 2]):  # type: ignore[list-item]
            pass
    except Exception as exc:  # keep no traceback: it would keep the leaked streams alive
        error = (type(exc), str(exc))
    gc.collect()  # the leaked streams warn now, under this test's filters, not in a later test
    assert error is not None and error[0] is TypeError and "1" in error[1], error


@pytest.mark.timeout(10)
def test_pmap_unknown_option_names_pmap() -> None:
    """An unknown option passed to pmap() is reported against pmap(), the call that was wrong."""
    with pytest.raises(TypeError, match=r"pmap\(\)"):
        osiiso.pmap(plain, [1], foo=1)
