"""Words about user objects that cannot fail: an exception's text, a hook's repr.

The engine writes a result's ``message`` from the task's exception, and logs hooks by their
repr. User code decides what ``__str__`` and ``__repr__`` do, and either may raise (anything,
``BaseException`` included). A message must still be written, and the engine must go on, so
these helpers never raise: what cannot be shown is named by its type, with what went wrong.
"""

from __future__ import annotations

__all__ = ("describe", "safe_repr", "text_of")


def _type_name(obj: object) -> str:
    try:
        return type(obj).__name__
    except BaseException:  # pragma: no cover - a type whose name raises
        return "object"


def text_of(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it could not be shown when its ``__str__`` raises."""
    try:
        text = str(exc)
        if type(text) is str:
            return text
        raise TypeError(f"__str__ returned {_type_name(text)}")  # pragma: no cover - CPython checks
    except BaseException as failure:  # a hostile __str__ may raise anything
        return f"<its message could not be shown: {_type_name(exc)}.__str__ raised {_type_name(failure)}>"


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` (just the type name when the message is empty); never raises."""
    text = text_of(exc)
    name = _type_name(exc)
    return f"{name}: {text}" if text else name


def safe_repr(obj: object) -> str:
    """``repr(obj)``, or ``<TypeName (its repr raised ...)>`` when that raises."""
    try:
        text = repr(obj)
        if type(text) is str:
            return text
        raise TypeError("__repr__ did not return a str")  # pragma: no cover - CPython checks
    except BaseException as failure:
        return f"<{_type_name(obj)} (its repr raised {_type_name(failure)})>"
