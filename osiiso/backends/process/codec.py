"""What crosses the pipes of the process backend, and how errors travel back.

Both sides import this module; it must stay light (the worker imports it before
its first task). Every message on a pipe is one ``pickle`` (protocol 5) of a list
of commands — plain tuples of ints and ``bytes`` — so a pipe is never blocked by a
user object that fails to (un)pickle: user data is pickled separately, into the
``bytes`` fields, and a failure there fails that one task only.

Parent → worker::

    (JOB, seq, key, fn_blob | None, args_blob, announce)
    (CANCEL, seq)

Worker → parent::

    (READY,)                              start-up (and initializer) done
    (STARTED, seq)                        only for jobs sent with ``announce``
    (SKIPPED, seq)                        a cancelled job that never ran
    (DONE, seq, ok, blob | error, secs)   ``ok``: blob is the pickled result

An error from the worker is one of::

    ("exc", blob, traceback_text)         the exception pickles and round-trips
    ("remote", type_name, message, traceback_text)
    ("serial", what, type_name, detail)   a function/argument/result did not (un)pickle
    ("init", error)                       the worker's initializer raised ``error``

The parent rebuilds ``"exc"`` as the exception itself with the worker's traceback
as its ``__cause__`` (as CPython's ``concurrent.futures.process._RemoteTraceback``).
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from ..._errors import RemoteError, SerializationError
from .child import (
    CANCEL,
    DONE,
    JOB,
    PROTOCOL,
    READY,
    SKIPPED,
    STARTED,
    dumps_value,
    encode_error,
    type_name,
)

__all__ = (
    "CANCEL", "DONE", "JOB", "READY", "SKIPPED", "STARTED",
    "RemoteTraceback", "decode_error", "describe", "dumps_args", "dumps_function",
    "dumps_value", "encode_error", "type_name",
)

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


def dumps_function(fn: object, name: str) -> bytes:
    """Cloudpickle a task's callable, or raise `SerializationError` saying why."""
    try:
        blob: bytes = cloudpickle.dumps(fn, PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"process backend could not pickle the function {name!r} ({describe(fn)}: {exc}) — "
            "make it a module-level function, or keep unpicklable objects (locks, sockets, "
            "open files) out of its closure and globals"
        ) from exc
    return blob


def dumps_args(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> bytes:
    """Pickle a call's arguments; on failure name the argument that cannot travel."""
    try:
        return dumps_value((args, kwargs))
    except Exception as exc:
        error: Exception = exc
    offenders = [(f"argument {i}", a) for i, a in enumerate(args)]
    offenders += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in offenders:
        try:
            dumps_value(value)
        except Exception as exc:
            raise SerializationError(
                f"process backend could not pickle {label} of {name!r} ({describe(value)}: {exc}) — "
                "pass plain data, or create the object inside the task"
            ) from exc
    raise SerializationError(
        f"process backend could not pickle the arguments of {name!r} ({error}) — pass plain data"
    ) from error


def decode_error(record: tuple[Any, ...], name: str) -> BaseException:
    """In the parent: rebuild the exception an error record describes."""
    kind = record[0]
    if kind == "exc":
        try:
            exc = pickle.loads(record[1])
        except Exception as why:
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
