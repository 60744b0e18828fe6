"""Pickling on the parent's side of the process backend: calls out, results and errors back.

`dumps_function` cloudpickles a task's callable (once per pool, see `.jobs.FunctionTable`),
`dumps_args` pickles a call's arguments and names the one that cannot travel, `loads_result`
unpickles a value, and `decode_error` turns a worker's error record (see `.child`) back into
an exception: the task's own, with the worker's traceback as its ``__cause__`` (a
`RemoteTraceback`, as CPython's ``concurrent.futures.process._RemoteTraceback``), or a
`RemoteError` or `SerializationError` saying what could not travel. Every failure names the
task and ends with the fix. Whatever (un)pickling raises is caught, ``BaseException``s that
are no ``Exception`` (a ``__reduce__`` that raises ``SystemExit``) included: user code runs
inside pickle, and a failure there is that task's ``SerializationError``. The worker never
imports this module: its half of the encoding (`.child.dumps_value`, `.child.encode_error`)
is stdlib only.
"""

from __future__ import annotations

import pickle
from typing import Any

from ..._errors import RemoteError, SerializationError
from .child import dumps_value, pickling_failure, type_name
from .pickling import RefusedObject, dumps_code

__all__ = ("RemoteTraceback", "decode_error", "describe", "dumps_args", "dumps_function", "loads_result")


class RemoteTraceback(Exception):
    """The worker's formatted traceback, attached as ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def describe(obj: object) -> str:
    """A short phrase naming an object's type: ``"a '_thread.lock' object"``."""
    return f"a {type_name(obj)!r} object"


def dumps_function(fn: object, name: str, backend: str = "process", *, what: str = "the function") -> bytes:
    """Pickle a task's callable by value (`.pickling.dumps_code`), or raise `SerializationError`
    naming it (``what`` it is: ``"the function"``, ``"the initializer"``)."""
    try:
        return dumps_code(fn)
    except BaseException as exc:
        detail = exc.explain() if isinstance(exc, RefusedObject) else pickling_failure(exc)
        raise SerializationError(
            f"{backend} backend could not pickle {what} {name!r} ({describe(fn)}: {detail}) — "
            "make it a module-level function, or keep unpicklable objects (locks, sockets, "
            "open files) out of its closure and globals"
        ) from exc


def dumps_args(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, backend: str = "process") -> bytes:
    """Pickle a call's arguments (`.child.dumps_value`); on failure name the one that cannot travel."""
    try:
        return dumps_value((args, kwargs))
    except BaseException as exc:
        error: BaseException = exc
    offenders = [(f"argument {i}", a) for i, a in enumerate(args)]
    offenders += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in offenders:
        try:
            dumps_value(value)
        except RefusedObject as exc:
            raise SerializationError(f"{backend} backend cannot send {label} of {name!r}: {exc.explain()}") from exc
        except BaseException as exc:
            detail = f"{describe(value)}: {pickling_failure(exc)}"
            raise SerializationError(
                f"{backend} backend could not pickle {label} of {name!r} ({detail}) — "
                "pass plain data, or create the object inside the task"
            ) from exc
    raise SerializationError(
        f"{backend} backend could not pickle the arguments of {name!r} ({pickling_failure(error)}) — pass plain data"
    ) from error


def loads_result(blob: bytes, name: str) -> Any:
    """In the parent: unpickle a task's result, or raise `SerializationError` saying why."""
    try:
        return pickle.loads(blob)
    except BaseException as exc:
        raise SerializationError(
            f"process backend could not unpickle the result of {name!r} in the parent ({exc!r}) — "
            "return plain data, or types importable here"
        ) from exc


def decode_error(record: tuple[Any, ...], name: str) -> BaseException:
    """In the parent: rebuild the exception an error record describes."""
    kind = record[0]
    if kind == "exc":
        try:
            exc = pickle.loads(record[1])
        except BaseException as why:
            return RemoteError(f"{why!r} (raised while unpickling the error of {name!r})",
                               type_name="?", remote_traceback=record[2])
        exc.__cause__ = RemoteTraceback(f'\n"""\n{record[2]}"""')
        return exc  # type: ignore[no-any-return]
    if kind == "init":
        cause = decode_error(record[1], "initializer")
        error = RuntimeError(
            f"the process pool's initializer raised {cause!r} in its worker, so {name!r} could "
            "not run there — fix the initializer")
        error.__cause__ = cause
        return error
    if kind == "remote":
        _, qualname, message, tb = record
        return RemoteError(f"{qualname}: {message}", type_name=qualname, remote_traceback=tb)
    _, what, qualname, detail = record
    if what == "refused":
        return SerializationError(f"process backend cannot send the result of {name!r} back: {detail}")
    if what == "result":
        fix = "return plain data (numbers, strings, lists, dicts, dataclasses…)"
    elif what == "function":
        fix = "make sure the modules it uses are importable in the worker (sys.path)"
    else:
        fix = "pass plain data, or make its class importable in the worker"
    return SerializationError(
        f"process backend could not {'pickle' if what == 'result' else 'unpickle'} the {what} "
        f"of {name!r} in the worker (a {qualname!r} object: {detail}) — {fix}"
    )
