"""Task options: one frozen, validated record, and the single place where options merge.

Options come from three layers, later ones winning field by field:
the queue's ``defaults`` → an ``opts=TaskOptions(...)`` → keyword overrides. A
`TaskOptions` remembers which fields were given explicitly, so merging an
``opts`` over the queue's defaults only overrides what the caller actually set
(``priority=3`` passed on purpose is not the same as "not passed").
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from typing import Any

from .backends import backend_names

__all__ = ("OPTION_NAMES", "TaskOptions", "check_number", "merge_options", "reject_unknown")

_DEFAULTS: dict[str, Any] = {
    "backend": "auto",
    "priority": 3,
    "timeout": None,
    "retries": 0,
    "retry_delay": 0.0,
    "backoff": 1.0,
    "retry_on": (Exception,),
    "delay": None,
    "run_at": None,
    "must_complete": False,
    "name": None,
    "group_id": None,
    "metadata": None,
    "detached": False,
}

#: every option name, in a stable order
OPTION_NAMES: frozenset[str] = frozenset(_DEFAULTS)
_UNSET: Any = object()


def reject_unknown(names: object, where: str) -> None:
    """Raise ``TypeError`` for option names that do not exist, suggesting close matches."""
    unknown = [n for n in names if n not in OPTION_NAMES]  # type: ignore[attr-defined]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=3)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
    raise TypeError(
        f"{where} got unknown option(s) {', '.join(hints)}; options are {', '.join(sorted(OPTION_NAMES))}. "
        "Keyword arguments for the task itself go through functools.partial or a bound task"
    )


def check_number(name: str, value: object, *, allow_none: bool, positive: bool = False,
                 minimum: float | None = None) -> float | None:
    """``value`` if it is a finite number in range (``None`` too, with ``allow_none``), else a
    ``ValueError`` naming ``name``. Ints too big for a float count as infinite."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must be a number, got None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # a Fraction is a Real, a Decimal only a Number (it is not a Complex either): both have a float
        if not isinstance(value, bool) and (isinstance(value, numbers.Real) or (
                isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex))):
            raise ValueError(f"{name} must be an int or a float, got {value!r} ({type(value).__name__}): "
                             f"pass float({name}) instead")
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    try:
        number = float(value)  # an int too big for a float is not a usable number of seconds
    except OverflowError:
        number = math.inf
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got {value!r} (NaN)")
    if math.isinf(number):
        digits = int(value.bit_length() * 0.30103) if isinstance(value, int) else 0
        shown = f"{value!r}" if isinstance(value, float) else f"an int of about {digits} digits"
        fix = " — use None for no limit or no delay" if allow_none else ""
        raise ValueError(f"{name} must be a finite number, got {shown}{fix}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0{' (or None for no limit)' if allow_none else ''}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _validate(values: dict[str, Any]) -> None:
    backend = values["backend"]
    allowed = ("auto", *backend_names())
    if backend not in allowed:
        raise ValueError(f"backend must be one of {', '.join(map(repr, allowed))}, got {backend!r}")
    priority = values["priority"]
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int (lower runs first), got {priority!r}")
    check_number("timeout", values["timeout"], allow_none=True, positive=True)
    retries = values["retries"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0 (extra attempts), got {retries!r}")
    check_number("retry_delay", values["retry_delay"], allow_none=False, minimum=0)
    check_number("backoff", values["backoff"], allow_none=False, positive=True)
    retry_on = values["retry_on"]
    if isinstance(retry_on, type):
        retry_on = values["retry_on"] = (retry_on,)
    if not isinstance(retry_on, tuple) and isinstance(retry_on, (list, frozenset, set)):
        retry_on = values["retry_on"] = tuple(retry_on)
    if not isinstance(retry_on, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
    ):
        raise ValueError(f"retry_on must be an exception class or a tuple of them, got {retry_on!r}")
    check_number("delay", values["delay"], allow_none=True, minimum=0)
    check_number("run_at", values["run_at"], allow_none=True)
    if values["delay"] is not None and values["run_at"] is not None:
        raise ValueError("delay and run_at cannot both be set: pass one start time or the other")
    for flag in ("must_complete", "detached"):
        if not isinstance(values[flag], bool):
            raise ValueError(f"{flag} must be True or False, got {values[flag]!r}")
    for text in ("name", "group_id"):
        if values[text] is not None and not isinstance(values[text], str):
            raise ValueError(f"{text} must be a string or None, got {values[text]!r}")
    metadata = values["metadata"]
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a mapping (dict) or None, got {metadata!r}")


class TaskOptions:
    """How one task runs: backend, priority, timeout, retries, start time, labels.

    Frozen and validated at construction; ``replace(**changes)`` returns a copy.
    See the options guide for each field. Invalid values raise ``ValueError`` naming
    the field; unknown names raise ``TypeError``.
    """

    __slots__ = (*_DEFAULTS, "_explicit")

    backend: str
    priority: int
    timeout: float | None
    retries: int
    retry_delay: float
    backoff: float
    retry_on: tuple[type[BaseException], ...]
    delay: float | None
    run_at: float | None
    must_complete: bool
    name: str | None
    group_id: str | None
    metadata: Mapping[str, Any] | None
    detached: bool
    _explicit: frozenset[str]

    def __init__(
        self,
        *,
        backend: str = _UNSET,
        priority: int = _UNSET,
        timeout: float | None = _UNSET,
        retries: int = _UNSET,
        retry_delay: float = _UNSET,
        backoff: float = _UNSET,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = _UNSET,
        delay: float | None = _UNSET,
        run_at: float | None = _UNSET,
        must_complete: bool = _UNSET,
        name: str | None = _UNSET,
        group_id: str | None = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        detached: bool = _UNSET,
    ) -> None:
        given = {k: v for k, v in locals().items() if k in _DEFAULTS and v is not _UNSET}
        self._build(given, frozenset(given))

    def _build(self, given: dict[str, Any], explicit: frozenset[str]) -> None:
        values = {**_DEFAULTS, **given}
        _validate(values)
        setter = object.__setattr__
        for key, value in values.items():
            setter(self, key, value)
        setter(self, "_explicit", explicit)

    @classmethod
    def _from(cls, given: dict[str, Any], explicit: frozenset[str]) -> TaskOptions:
        new = cls.__new__(cls)
        new._build(given, explicit)
        return new

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TaskOptions is frozen; use .replace({name}=...) for a changed copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("TaskOptions is frozen")

    def as_dict(self) -> dict[str, Any]:
        """Every field and its value."""
        return {k: getattr(self, k) for k in _DEFAULTS}

    @property
    def explicit(self) -> frozenset[str]:
        """The names of the fields given explicitly (the ones that override when merged)."""
        return self._explicit

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with ``changes`` applied (validated; unknown names raise ``TypeError``)."""
        reject_unknown(changes, "TaskOptions.replace()")
        given = {k: getattr(self, k) for k in self._explicit}
        return TaskOptions._from(given, _lay(given, self._explicit, changes))

    def merged(self, over: TaskOptions | None = None, changes: Mapping[str, Any] | None = None) -> TaskOptions:
        """These options with ``over``'s explicit fields, then ``changes``, on top."""
        if over is None and not changes:
            return self
        given = {k: getattr(self, k) for k in self._explicit}
        explicit = self._explicit
        if over is not None:
            explicit = _lay(given, explicit, {k: getattr(over, k) for k in over._explicit})
        if changes:
            explicit = _lay(given, explicit, changes)
        return TaskOptions._from(given, explicit)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskOptions):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple((k, v) for k, v in self.as_dict().items() if k != "metadata"))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in _DEFAULTS if k in self._explicit)
        return f"TaskOptions({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ({k: getattr(self, k) for k in self._explicit},))


def _lay(given: dict[str, Any], explicit: frozenset[str], layer: Mapping[str, Any]) -> frozenset[str]:
    """Lay ``layer``'s fields over ``given`` (in place); the explicit fields after. A start time the
    layer sets (``delay`` or ``run_at``) replaces the other one of a lower layer: there is one start time."""
    given.update(layer)
    if "delay" in layer or "run_at" in layer:
        for mine, other in (("delay", "run_at"), ("run_at", "delay")):
            if layer.get(mine) is not None and other not in layer and given.get(other) is not None:
                del given[other]
                explicit = explicit - {other}
    return explicit | frozenset(layer)


def _rebuild(given: dict[str, Any]) -> TaskOptions:
    return TaskOptions(**given)


def merge_options(base: TaskOptions, opts: TaskOptions | None, changes: Mapping[str, Any], where: str) -> TaskOptions:
    """The one merge point: ``base`` (queue defaults) → ``opts`` → keyword ``changes``."""
    if opts is not None and not isinstance(opts, TaskOptions):
        raise TypeError(f"{where}: opts must be a TaskOptions, got {opts!r}")
    if changes:
        reject_unknown(changes, where)
    return base.merged(opts, changes)
