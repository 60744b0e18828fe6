"""Handles as arguments: a task waits for the tasks it depends on, then gets their values.

A dependency cycle cannot be built: a handle exists only once its task is submitted,
so a task can only depend on tasks submitted before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import DependencyError
from ._handle import WAITING, TaskHandle
from ._results import TaskStatus

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ("dependency_done", "wait_for")


def wait_for(engine: Engine, handle: TaskHandle[Any], deps: list[TaskHandle[Any]]) -> None:
    """Park ``handle`` until every handle in ``deps`` has ended."""
    handle._where = WAITING
    engine.waiting.add(handle)
    handle._deps = len(deps)
    for dep in deps:
        if dep._result is not None:
            dependency_done(dep, handle)
            continue
        if dep._dependents is None:
            dep._dependents = []
        dep._dependents.append(handle)


def _value(arg: Any) -> Any:
    return arg._result.value if isinstance(arg, TaskHandle) and arg._result is not None else arg


def dependency_done(dep: TaskHandle[Any], handle: TaskHandle[Any]) -> None:
    """``dep`` ended: fail ``handle`` if it did not succeed, release ``handle`` after the last one."""
    if handle._where is not WAITING:
        return
    engine: Engine = handle._engine
    result = dep._result
    assert result is not None
    if result.status is not TaskStatus.SUCCEEDED:
        engine.waiting.discard(handle)
        upstream = result.exception
        why = ("(it was itself blocked by a dependency)" if isinstance(upstream, DependencyError)
               else f"with {type(upstream).__name__}: {upstream}" if upstream is not None else "")
        error = DependencyError(
            f"task {handle._name!r} ({handle.task_id}) did not run: its dependency "
            f"{dep._name!r} ({dep.task_id}) {result.status.value} {why}".rstrip()
        )
        error.__cause__ = result.exception
        engine.finish(handle, TaskStatus.FAILED, None, error, str(error))
        return
    handle._deps -= 1
    if handle._deps == 0:
        engine.waiting.discard(handle)
        handle._args = tuple(_value(a) for a in handle._args)
        handle._kwargs = {k: _value(v) for k, v in handle._kwargs.items()}
        engine.schedule_or_ready(handle, engine.lanes[handle._backend])
