"""The one pickling rule for what crosses to a worker (process or dask) and back.

*Data* (arguments, results, exceptions; `.child.dumps_value`) has plain-pickle semantics:
``pickle.dumps`` first, and when it refuses (a lambda inside a list, an instance of a class
defined in ``__main__``) `dumps_code`: cloudpickle by value, through a Pickler that refuses
what plain pickle refuses for a reason: an open file, a socket, a lock, a generator. Those
raise `RefusedObject` naming the object's kind and type, so that the caller can say where it
was and what to do; cloudpickle alone would turn an open text file into a ``StringIO``
snapshot of its content (a 1 GB file copied into the payload).

*Code* (functions, lambdas, closures, classes) travels by value through the same Pickler,
with one change to cloudpickle: a code object keeps its real ``co_filename`` (cloudpickle
>= 3.1 writes ``"<dynamic-code>"``), so a traceback from a worker names the user's script and
line, and shows the source line where the worker can read the file.

An importable function or class (found under its module and qualified name, outside
``__main__``) travels by reference, as cloudpickle sends it too; until something imports
cloudpickle (and so could have registered a module to travel by value) plain pickle writes
that reference, so a program's first pool does not wait for cloudpickle to load.

Stdlib only at import (cloudpickle is imported on the first fallback): a process worker loads
this file by path, as it loads `.child`, without importing the ``osiiso`` package.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import Any, ClassVar

__all__ = ("PROTOCOL", "RefusedObject", "dumps_code", "refusal")

#: the pickle protocol of everything that crosses
PROTOCOL = 5

#: kind -> (what it is, the fix when it is an argument, the fix when it is a result)
_KINDS = {
    "file": ("an open file", "pass its path and open it inside the task",
             "return its path, or read what you need inside the task and return that"),
    "socket": ("a socket", "pass the address and connect inside the task", "return plain data"),
    "lock": ("a lock or other synchronisation object",
             "create it inside the task (to share one between processes, use multiprocessing.Manager())",
             "return plain data"),
    "generator": ("a generator (or coroutine)", "pass a list: list(...) of it", "return a list"),
}
_IN_MEMORY = (io.BytesIO, io.StringIO)  # plain pickle copies these: they are data
_ITERATORS = (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)


def _type_name(obj: object) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def refusal(obj: object) -> str | None:
    """The kind of ``obj`` if it must not travel by value (a key of ``_KINDS``), else None."""
    if isinstance(obj, io.IOBase):
        return None if isinstance(obj, _IN_MEMORY) else "file"
    if isinstance(obj, _ITERATORS):
        return "generator"
    module = type(obj).__module__
    if module in ("socket", "ssl") and hasattr(obj, "fileno"):
        return "socket"
    if module in ("_thread", "threading", "multiprocessing.synchronize"):
        return "lock"
    return None


class RefusedObject(pickle.PicklingError):
    """An object that must not be pickled by value; `explain` says what to do instead."""

    def __init__(self, kind: str, obj: object) -> None:
        self.kind, self.type_name = kind, _type_name(obj)
        super().__init__(f"{_KINDS[kind][0]} ({self.type_name!r}) cannot be sent to another process")

    def explain(self, direction: str = "argument") -> str:
        """``"it is/contains an open file ('_io.TextIOWrapper') — pass its path ..."``."""
        what, arg_fix, result_fix = _KINDS[self.kind]
        fix = result_fix if direction == "result" else arg_fix
        return f"it is or contains {what} ({self.type_name!r}), which cannot be sent to another process — {fix}"


_pickler: Any = None


def _pickler_class() -> Any:
    """cloudpickle's Pickler, refusing `refusal` objects and keeping code's file names (built once)."""
    global _pickler
    if _pickler is None:
        from collections import ChainMap

        import cloudpickle

        base = cloudpickle.Pickler
        code_reduce = base.dispatch_table[types.CodeType]

        def reduce_code(code: types.CodeType) -> Any:
            rebuild, args = code_reduce(code)
            return rebuild, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)

        class Pickler(base):  # type: ignore[misc, valid-type]
            dispatch_table: ClassVar[Any] = ChainMap({types.CodeType: reduce_code}, base.dispatch_table)

            def reducer_override(self, obj: Any) -> Any:
                kind = refusal(obj)
                if kind is not None:
                    raise RefusedObject(kind, obj)
                return super().reducer_override(obj)

        _pickler = Pickler
    return _pickler


def _by_reference(obj: object) -> bool:
    """Whether ``obj`` is a function or class that pickles by reference: its module is loaded, is not
    ``__main__`` (whose code a worker does not run) and holds it under its qualified name."""
    if not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
        return False
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name in ("__main__", "__mp_main__"):
        return False
    found: Any = sys.modules.get(module_name)
    for part in obj.__qualname__.split("."):  # a nested function's "<locals>" is never found
        found = getattr(found, part, None)
    return found is obj


def dumps_code(obj: object) -> bytes:
    """Pickle a callable (and whatever travels with it) by value, cloudpickle's way; an importable
    one by reference (with plain pickle while cloudpickle is not loaded)."""
    if "cloudpickle" not in sys.modules and _by_reference(obj):
        return pickle.dumps(obj, PROTOCOL)
    buffer = io.BytesIO()
    _pickler_class()(buffer, protocol=PROTOCOL).dump(obj)
    return buffer.getvalue()

