"""Chains of dask tasks: a dependent gets its upstream's dask future, so the value stays on the cluster.

The engine decides when a dependent runs (only after every dependency succeeded; a failed
or cancelled one fails it with ``DependencyError``, as on every backend) and replaces each
handle among its arguments by that task's value. The value reaches the client anyway (for
``handle.value()``); what `Chains` saves is the way back: when a dask attempt succeeds with a
result of at least `MIN_BYTES` and dask tasks of the same queue wait on it
(`.base.Attempt.dependents`), its future is kept (`keep`). When one of those dependents runs,
each argument that *is* the upstream's value (the very object the engine put there) is sent
as a `.remote.FromUpstream` marker, and the future rides along (`substitute`): dask hands
the worker the upstream's result where it lies, and `.remote.run_payload` unpickles it
there.

A kept future is released when the last dependent that uses it has ended (its done
callback, whatever its outcome: retries of the dependent reuse the future), so a long run
does not pile values up on the cluster. A dependent submitted after its upstream ended, a
small value, and a handle of another backend all travel as values, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .remote import FromUpstream

__all__ = ("MIN_BYTES", "Chains")

#: results smaller than this travel inline in the dependent's message: fetching a future from
#: another worker costs a round trip between workers, more than sending a few kilobytes again
MIN_BYTES = 64 * 1024


class _Held:
    """The future of one succeeded upstream, its value here, and the dependents that may use it."""

    __slots__ = ("future", "users", "value")

    def __init__(self, future: Any, value: Any, users: set[int]) -> None:
        self.future = future
        self.value = value
        self.users = users


class Chains:
    """The futures kept for dependents (`keep`), given to them (`substitute`), released after them."""

    def __init__(self, backend: str, release: Callable[[Any], None]) -> None:
        self._backend = backend
        self._release = release
        self._uses: dict[int, list[_Held]] = {}  # id(dependent handle) -> what it may take as futures
        self.passed = 0  # arguments sent as futures
        self.kept = 0  # futures kept now

    def __len__(self) -> int:
        """How many dependents have futures waiting for them."""
        return len(self._uses)

    def keep(self, future: Any, value: Any, size: int, dependents: list[Any]) -> bool:
        """Keep ``future`` (whose result is ``value``, ``size`` bytes pickled) for the dask tasks among
        ``dependents``; ``False`` when none will use it (then the caller drops it)."""
        if future is None or size < MIN_BYTES:
            return False
        users = [d for d in dependents if d.backend == self._backend and not d.done()]
        if not users:
            return False
        held = _Held(future, value, {id(d) for d in users})
        self.kept += 1
        for dependent in users:
            self._uses.setdefault(id(dependent), []).append(held)
            dependent.add_done_callback(self._ended)
        return True

    def substitute(self, handle: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[tuple[Any, ...], dict[str, Any], list[Any]]:
        """``handle``'s arguments with every upstream value replaced by a marker, and the futures."""
        helds = self._uses.get(id(handle))
        if not helds:
            return args, kwargs, []
        futures: list[Any] = []
        index: dict[int, int] = {}  # id(held) -> its position in futures

        def swap(value: Any) -> Any:
            for held in helds:
                if value is held.value and held.future is not None:
                    at = index.get(id(held))
                    if at is None:
                        at = index[id(held)] = len(futures)
                        futures.append(held.future)
                    self.passed += 1
                    return FromUpstream(at)
            return value

        new_args = tuple(swap(a) for a in args)
        new_kwargs = {k: swap(v) for k, v in kwargs.items()}
        if not futures:
            return args, kwargs, []
        return new_args, new_kwargs, futures

    def _ended(self, handle: Any) -> None:
        """A dependent ended (loop thread): release each future no other dependent still needs."""
        for held in self._uses.pop(id(handle), ()):
            held.users.discard(id(handle))
            if not held.users and held.future is not None:
                future, held.future, held.value = held.future, None, None
                self.kept -= 1
                self._release(future)

    def clear(self) -> None:
        """Release every kept future (the backend closes)."""
        uses, self._uses = self._uses, {}
        for helds in uses.values():
            for held in helds:
                if held.future is not None:
                    future, held.future, held.value = held.future, None, None
                    self.kept -= 1
                    self._release(future)
