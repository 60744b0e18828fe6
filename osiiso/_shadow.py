"""Option names that are also parameters of the task's function: caught at submit, with the fix.

``q.submit(greet, name="ada")`` where ``def greet(name)``: the keyword is the task option
``name`` (keyword arguments of ``submit`` are options only), so ``greet`` would fail later,
in a worker, with "missing argument 'name'". When a keyword option is a parameter of the
function that has no default and gets no positional value, the submit raises a ``TypeError``
that says how to pass it. A parameter with a default is not refused: ``timeout=5`` given to
``def fetch(url, timeout=10)`` is a valid program (the task's timeout, ``fetch``'s default).

The parameters are read once per function (`inspect.signature` is slow) and cached.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ._options import OPTION_NAMES

__all__ = ("refuse_shadowed", "required_options")

#: per function: its parameters without a default whose names are options, and their position
#: (``None`` for a keyword-only one); bounded like the queue's route cache
_CACHE: dict[Any, dict[str, int | None]] = {}
_CACHE_SIZE = 1024
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _read(fn: Any) -> dict[str, int | None]:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature, an awaitable: nothing to say
        return {}
    required: dict[str, int | None] = {}
    for position, parameter in enumerate(parameters):
        if parameter.name not in OPTION_NAMES or parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            required[parameter.name] = position
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            required[parameter.name] = None
    return required


def required_options(fn: Any) -> dict[str, int | None]:
    """The parameters of ``fn`` without a default that share an option's name (cached per function)."""
    try:
        return _CACHE[fn]
    except (KeyError, TypeError):  # a miss, or an unhashable callable
        pass
    required = _read(fn)  # outside the except: an error here carries no cache miss as its context
    try:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[fn] = required
    except TypeError:
        pass
    return required


def refuse_shadowed(fn: Any, args: tuple[Any, ...], options: Mapping[str, Any], where: str,
                    required: dict[str, int | None] | None = None) -> None:
    """Raise ``TypeError`` if a keyword option in ``options`` is a required parameter of ``fn``
    that ``args`` gives no value."""
    if required is None:
        required = required_options(fn)
    if not required:
        return
    for name in options:
        if name not in required:
            continue
        position = required[name]
        if position is not None and position < len(args):
            continue  # given positionally: the keyword is the option, as written
        fn_name = getattr(fn, "__name__", None) or type(fn).__name__
        positionally = ("" if position is None else
                        f"pass it positionally (`submit({fn_name}, ..., value)`, or `{fn_name}(..., value)` "
                        "called as a bound task), or ")
        raise TypeError(
            f"{where} took {name}= as the task option {name!r} (keyword arguments here are options only), "
            f"so {fn_name!r} would get no value for its parameter {name!r} — {positionally}bind it with "
            f"functools.partial({fn_name}, {name}=value) and submit that")
