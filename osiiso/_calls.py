"""How type checkers see a call of a bound task (`BoundTask`, `SyncBoundTask`): typing only.

A bound task is ``BoundTask[P, R]``: a call takes the function's parameters ``P`` and gives
a handle of ``R``. Two documented patterns need more than ``P``, and no ParamSpec can say
"each parameter, or a handle of it" or "``P`` plus these keyword-only options", so
`BoundCalls` spells them as overloads, tried in order:

1. ``fetch(url)``: exactly the function's parameters (fully checked);
2. ``parse(fetch(url))``: a handle in the first, second or third positional place stands
   for the value of that parameter (the places before it may be handles too); the rest is
   checked against the function's parameters;
3. ``call_api("/posts", priority=0)``: a call with a task option as a keyword (each option
   an overload of its own, so the option is required there and its type checked); the
   function's arguments are not checked in that form — ``call_api.options(priority=0)("/posts")``
   checks both.

At run time `BoundCalls` is an empty base class: the subclasses define ``__call__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

__all__ = ("BoundCalls", "HandleLike")

P = ParamSpec("P")
Q = ParamSpec("Q")
H = TypeVar("H", covariant=True)
T_co = TypeVar("T_co", covariant=True)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
Errors = type[BaseException] | tuple[type[BaseException], ...]


class HandleLike(Protocol[T_co]):
    """A task handle (`osiiso.TaskHandle` or `osiiso.SyncTaskHandle`) of a ``T_co`` value."""

    def value(self) -> T_co: ...


class BoundCalls(Generic[P, H]):
    """The call signatures of a bound task of parameters ``P`` handing out ``H`` (see the module)."""

    if TYPE_CHECKING:
        @overload
        def __call__(self, *args: P.args, **kwargs: P.kwargs) -> H: ...
        @overload
        def __call__(self: BoundCalls[Concatenate[A, Q], H], a: HandleLike[A], /,
                     *args: Q.args, **kwargs: Q.kwargs) -> H: ...
        @overload
        def __call__(self: BoundCalls[Concatenate[A, B, Q], H], a: A | HandleLike[A], b: HandleLike[B], /,
                     *args: Q.args, **kwargs: Q.kwargs) -> H: ...
        @overload
        def __call__(self: BoundCalls[Concatenate[A, B, C, Q], H], a: A | HandleLike[A], b: B | HandleLike[B],
                     c: HandleLike[C], /, *args: Q.args, **kwargs: Q.kwargs) -> H: ...
        @overload
        def __call__(self, *args: Any, backend: str, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, priority: int, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, timeout: float | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, retries: int, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, retry_delay: float, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, backoff: float, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, retry_on: Errors, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, delay: float | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, run_at: float | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, must_complete: bool, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, name: str | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, group_id: str | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, metadata: Mapping[str, Any] | None, **kwargs: Any) -> H: ...
        @overload
        def __call__(self, *args: Any, detached: bool, **kwargs: Any) -> H: ...
        # the subclass's __call__ is the implementation; this line only closes the overloads
        def __call__(self: Any, *args: Any, **kwargs: Any) -> Any: ...  # type: ignore[misc]
