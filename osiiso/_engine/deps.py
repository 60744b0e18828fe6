"""Handles as arguments: which tasks a task depends on, the values it gets, the error when one fails.

The engine parks a task with dependencies in ``Engine.waiting`` and releases or fails it as
they end (`Engine._settle`, iterative, so a chain of any length ends without recursion). This
module holds the pure parts. A dependency cycle cannot be built: a handle exists only once
its task is submitted, so a task can only depend on tasks submitted before it.
"""

from __future__ import annotations

from typing import Any

from .._errors import DependencyError
from .._handle import TaskHandle
from .._results import TaskResult
from .text import describe

__all__ = ("dependencies_of", "dependency_error", "resolve_arguments")


def dependencies_of(handle: TaskHandle[Any]) -> list[TaskHandle[Any]]:
    """The handles among ``handle``'s arguments (empty for most tasks, found cheaply).

    A handle of another queue is refused (``ValueError``): that queue's engine records its
    result, on its own loop, and could never release a task of this one.
    """
    args, kwargs = handle._args, handle._kwargs
    if not (TaskHandle in map(type, args) or (kwargs and TaskHandle in map(type, kwargs.values()))):
        return []
    deps = [a for a in (*args, *kwargs.values()) if isinstance(a, TaskHandle)]
    for dep in deps:
        if dep._engine is not handle._engine:
            raise ValueError(
                f"task {handle._name!r} got {dep!r} as an argument, a handle of another queue: a task "
                "depends only on tasks of its own queue — submit both to one queue, or await the "
                "handle and pass its value (`(await handle).value`)")
    return deps


def _value(arg: Any) -> Any:
    return arg._result.value if isinstance(arg, TaskHandle) and arg._result is not None else arg


def resolve_arguments(handle: TaskHandle[Any]) -> None:
    """Every dependency succeeded: replace the handles among the arguments by their values."""
    handle._args = tuple(_value(a) for a in handle._args)
    handle._kwargs = {k: _value(v) for k, v in handle._kwargs.items()}


def dependency_error(handle: TaskHandle[Any], dep: TaskHandle[Any], result: TaskResult) -> DependencyError:
    """The error of ``handle``, which will not run because its dependency ``dep`` ended with ``result``."""
    upstream = result.exception
    why = ("(it was itself blocked by a dependency)" if isinstance(upstream, DependencyError)
           else f"with {describe(upstream)}" if upstream is not None else "")
    error = DependencyError(
        f"task {handle._name!r} ({handle.task_id}) did not run: its dependency "
        f"{dep._name!r} ({dep.task_id}) {result.status.value} {why}".rstrip()
    )
    error.__cause__ = result.exception
    return error
