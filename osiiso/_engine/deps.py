"""Handles as arguments: which tasks a task depends on, the values it gets, the error when one fails.

A handle is a dependency as a direct argument (positional or keyword) and as an item of a
list or tuple argument or a value of a dict argument (fan-in, one level deep: exact types,
no deeper nesting, no subclasses such as named tuples). The task gets each value in place
of its handle, in a new container of the same type.

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

__all__ = ("MAY_HOLD_HANDLES", "dependencies_of", "dependency_error", "resolve_arguments")

#: the argument types that are, or may hold, a handle: a handle, or a list, tuple or dict of them
#: (exact types, one level deep, as dask does); a set, so the common case is one C-level
#: ``isdisjoint`` over the argument types and no Python loop
MAY_HOLD_HANDLES = frozenset({TaskHandle, list, tuple, dict})


def _handles_in(arg: Any) -> list[TaskHandle[Any]]:
    """The handles ``arg`` is or holds: itself, or the items of a list/tuple or values of a dict."""
    kind = type(arg)
    if kind is TaskHandle:
        return [arg]
    items = arg.values() if kind is dict else arg if kind is list or kind is tuple else ()
    return [item for item in items if type(item) is TaskHandle] if TaskHandle in map(type, items) else []


def dependencies_of(handle: TaskHandle[Any]) -> list[TaskHandle[Any]]:
    """The handles among ``handle``'s arguments, also inside list, tuple and dict arguments
    (empty for most tasks, found cheaply).

    A handle of another queue is refused (``ValueError``): that queue's engine records its
    result, on its own loop, and could never release a task of this one.
    """
    args, kwargs = handle._args, handle._kwargs
    if MAY_HOLD_HANDLES.isdisjoint(map(type, args)) and (
            not kwargs or MAY_HOLD_HANDLES.isdisjoint(map(type, kwargs.values()))):
        return []
    deps = [dep for arg in (*args, *kwargs.values()) for dep in _handles_in(arg)]
    for dep in deps:
        if dep._engine is not handle._engine:
            raise ValueError(
                f"task {handle._name!r} got {dep!r} as an argument, a handle of another queue: a task "
                "depends only on tasks of its own queue — submit both to one queue, or await the "
                "handle and pass its value (`(await handle).value`)")
    return deps


def _leaf(item: Any) -> Any:
    return item._result.value if type(item) is TaskHandle and item._result is not None else item


def _value(arg: Any) -> Any:
    """``arg`` with its handles replaced by their values; a container is rebuilt, same type, only if it held one."""
    kind = type(arg)
    if kind is TaskHandle:
        return _leaf(arg)
    if kind is list and TaskHandle in map(type, arg):
        return [_leaf(item) for item in arg]
    if kind is tuple and TaskHandle in map(type, arg):
        return tuple(_leaf(item) for item in arg)
    if kind is dict and TaskHandle in map(type, arg.values()):
        return {key: _leaf(item) for key, item in arg.items()}
    return arg


def resolve_arguments(handle: TaskHandle[Any]) -> None:
    """Every dependency succeeded: replace the handles among the arguments (and in their
    lists, tuples and dicts) by their values."""
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
