"""Validation of ``AsyncQueue(...)`` arguments, all at construction time."""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import os
from collections.abc import Callable
from typing import Any

from ._options import TaskOptions, check_number
from .backends.base import BackendConfig
from .backends.coroutine import is_async_callable

__all__ = ("QueueSettings", "check_choice", "check_hook", "check_run_arguments", "settings_from")

START_METHODS = ("spawn", "forkserver", "fork")


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ``ValueError`` naming all three."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


#: the most worker processes a queue may have
MAX_PROCESSES = 4096


def _count(name: str, value: object, *, allow_none: bool = True, allow_zero: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        floor = "0" if allow_zero else "1"
        raise ValueError(f"{name} must be an int >= {floor}{' or None' if allow_none else ''}, got {value!r}")
    return value


def _seconds(name: str, value: object) -> float | None:
    """A finite number of seconds > 0, or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    seconds = check_number(name, value, allow_none=True, positive=True)
    return float(seconds) if seconds is not None else None


_SLOWEST_RATE = 1 / (365 * 86_400)  # one attempt a year: a slower rate is a mistake


def _rate(rate: object, burst: int) -> float | None:
    """Attempts per second: finite, > 0, and not so small that one interval is infinite."""
    if rate is None:
        if burst != 1:
            raise ValueError(f"burst={burst} needs a rate: it is how many attempts may start back to back under "
                             "rate= — give rate= too, or leave burst out")
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"rate must be a number of attempts per second > 0 or None, got {rate!r}")
    value = check_number("rate", rate, allow_none=False, positive=True)
    assert value is not None
    interval = 1.0 / value
    if value < _SLOWEST_RATE or not math.isfinite(interval) or not math.isfinite((burst - 1) * interval):
        raise ValueError(f"rate={rate!r} with burst={burst} is too small: one attempt every {interval:g}s "
                         "cannot be timed — use a rate of at least one attempt a year (3.2e-08), or None")
    return float(value)


def check_run_arguments(timeout: object, strict: object, fail_policy: object, progress: object,
                        default_policy: str) -> tuple[float | None, str]:
    """Validate ``run()``'s arguments; return its time limit and its fail policy."""
    limit = _seconds("timeout", timeout)
    policy = check_choice("fail_policy", default_policy if fail_policy is None else fail_policy,
                          ("continue", "fail_first"))
    if not isinstance(strict, bool):
        raise ValueError(f"strict must be True or False, got {strict!r}")
    if not isinstance(progress, bool):
        if not callable(progress):
            raise ValueError(f"progress must be True, False or a function taking a ProgressSnapshot, got {progress!r}")
        if is_async_callable(progress):
            raise ValueError(f"progress={progress!r} is an async function: pass a plain function (it is called "
                             "on the event loop with each ProgressSnapshot, and must not block)")
    return limit, policy


def check_hook(name: str, value: object) -> Callable[..., object] | None:
    """A hook must be callable (sync or async) or ``None``."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be a callable (sync or async) or None, got {value!r}")
    return value


class QueueSettings:
    """Validated queue-wide settings."""

    __slots__ = (
        "backend",
        "burst",
        "defaults",
        "fail_policy",
        "keep_results",
        "mode",
        "on_complete",
        "on_retry",
        "on_start",
        "on_timeout",
        "rate",
        "size",
        "timeout",
    )

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    backend: BackendConfig
    size: int
    timeout: float | None
    mode: str
    keep_results: int | None
    fail_policy: str
    on_timeout: str
    rate: float | None
    burst: int
    defaults: TaskOptions
    on_start: Callable[..., object] | None
    on_complete: Callable[..., object] | None
    on_retry: Callable[..., object] | None


def _mp_context(value: object) -> Any:
    if value is None or isinstance(value, multiprocessing.context.BaseContext):
        return value
    if isinstance(value, str) and value in START_METHODS:
        if value not in multiprocessing.get_all_start_methods():
            raise ValueError(f"mp_context {value!r} is not available on this platform; "
                             f"use one of {multiprocessing.get_all_start_methods()!r}")
        return value
    raise ValueError(f"mp_context must be one of {', '.join(map(repr, START_METHODS))}, "
                     f"a multiprocessing context or None, got {value!r}")


def _keep(value: object) -> int | None:
    """``keep_results``: ``True`` keeps every result (``None``), ``False`` none, an int that many."""
    if value is True:
        return None
    if value is False:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError("keep_results must be True (keep every result), False (keep none) or an int >= 0 "
                     f"(keep that many of the newest), got {value!r}")


def _switch(name: str, value: object) -> bool:
    """A keyword that is ``True`` or ``False`` and nothing else (a ``TypeError`` otherwise)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} — pass {name}=False to turn it off")
    return value


def settings_from(*, workers: object, threads: object, processes: object, size: object, timeout: object,
                  mode: object, fail_policy: object, on_timeout: object, rate: object, burst: object,
                  defaults: object, on_start: object, on_complete: object, on_retry: object,
                  initializer: object, initargs: object, mp_context: object,
                  max_tasks_per_child: object, dask: object, keep_results: object = True,
                  process_batching: object = True, thread_batching: object = True) -> QueueSettings:
    """Validate every ``AsyncQueue`` argument and resolve the automatic sizes."""
    cpu = os.cpu_count() or 1
    n_workers = _count("workers", workers) or max(4, min(32, cpu * 4))
    n_threads = _count("threads", threads) or min(n_workers, 32, cpu + 4)
    n_processes = _count("processes", processes) or min(n_workers, cpu)
    if n_processes > MAX_PROCESSES:  # each has a slot made up front: a typo's billion would exhaust memory
        raise ValueError(f"processes must be at most {MAX_PROCESSES:,}, got {processes!r} — a worker process per "
                         "CPU (the default) is what CPU-bound work can use; for many waits use threads or coroutines")
    n_size = _count("size", size, allow_none=False, allow_zero=True)
    n_burst = _count("burst", burst, allow_none=False)
    assert n_burst is not None
    if n_burst > 1_000_000_000:
        raise ValueError(f"burst must be an int from 1 to 1,000,000,000, got {burst!r}")
    n_rate = _rate(rate, n_burst)
    if defaults is not None and not isinstance(defaults, TaskOptions):
        raise ValueError(f"defaults must be a TaskOptions or None, got {defaults!r}")
    if initializer is not None and not callable(initializer):
        raise ValueError(f"initializer must be a callable or None, got {initializer!r}")
    if not isinstance(initargs, tuple):
        raise ValueError(f"initargs must be a tuple, got {initargs!r}")
    extra: dict[str, Any] = {"process_batching": _switch("process_batching", process_batching),
                             "thread_batching": _switch("thread_batching", thread_batching)}
    if dask is not None:  # None: the backend's defaults ($DASK_SCHEDULER_ADDRESS, else an embedded cluster)
        from .backends.dask.options import coerce_options

        extra["dask"] = coerce_options(dask)
    return QueueSettings(
        backend=BackendConfig(
            workers=n_workers, threads=n_threads, processes=n_processes,
            initializer=initializer,
            initargs=initargs, mp_context=_mp_context(mp_context),
            max_tasks_per_child=_count("max_tasks_per_child", max_tasks_per_child),
            extra=extra, workers_auto=workers is None, spaced=n_rate is not None,
        ),
        size=n_size,
        timeout=_seconds("timeout", timeout),
        mode=check_choice("mode", mode, ("finite", "infinite")),
        keep_results=_keep(keep_results),
        fail_policy=check_choice("fail_policy", fail_policy, ("continue", "fail_first")),
        on_timeout=check_choice("on_timeout", on_timeout, ("complete", "cancel")),
        rate=n_rate,
        burst=n_burst,
        defaults=defaults if defaults is not None else TaskOptions(),
        on_start=check_hook("on_start", on_start),
        on_complete=check_hook("on_complete", on_complete),
        on_retry=check_hook("on_retry", on_retry),
    )
