"""TaskGroup: handles submitted together, awaited together."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Generic, TypeVar

from ._errors import ExecutionError, describe_failures
from ._handle import TaskHandle, as_completed
from ._results import RunSummary, TaskResult, TaskStatus

__all__ = ("GroupIds", "TaskGroup")

T = TypeVar("T")


class TaskGroup(Generic[T]):
    """Tasks submitted by one ``group()`` call; handed out by the queue."""

    __slots__ = ("group_id", "handles")

    def __init__(self, handles: Sequence[TaskHandle[T]], group_id: str | None) -> None:
        self.handles: tuple[TaskHandle[T], ...] = tuple(handles)
        self.group_id = group_id

    def __len__(self) -> int:
        return len(self.handles)

    def __iter__(self) -> Iterator[TaskHandle[T]]:
        return iter(self.handles)

    def __getitem__(self, index: int) -> TaskHandle[T]:
        return self.handles[index]

    async def wait(self) -> RunSummary:
        """Wait for every task; their results in submission order."""
        return summarize([await handle for handle in self.handles])

    async def values(self) -> tuple[T, ...]:
        """The values in input order; ``ExecutionError`` if any task did not succeed."""
        return values_of(await self.wait(), self.group_id)

    def as_completed(self) -> AsyncIterator[TaskHandle[T]]:
        """Yield the group's handles as they finish."""
        return as_completed(self.handles)

    def cancel(self) -> int:
        """Cancel every task of the group that has not ended; return how many."""
        return sum(1 for handle in self.handles if handle.cancel(f"cancelled: group {self.group_id!r} cancelled"))

    def done(self) -> bool:
        """Whether every task has ended."""
        return all(handle.done() for handle in self.handles)

    def __repr__(self) -> str:
        finished = sum(1 for h in self.handles if h.done())
        return f"<TaskGroup {self.group_id!r} {finished}/{len(self.handles)} done>"


def summarize(results: Sequence[TaskResult]) -> RunSummary:
    """The summary of a group's results: in submission order, over the time they spanned."""
    if not results:
        return RunSummary((), 0.0)
    start = min((r.started_at or r.created_at) for r in results)
    return RunSummary(tuple(results), max(r.finished_at for r in results) - start)


def values_of(summary: RunSummary, group_id: str | None) -> tuple[Any, ...]:
    """A group's values in input order, or ``ExecutionError`` if any of its tasks did not succeed."""
    bad = [r for r in summary.results if r.status is not TaskStatus.SUCCEEDED]
    if bad:
        raise ExecutionError(bad, describe_failures(tuple(bad), len(summary.results),
                                                    f" in group {group_id!r}")) from bad[0].exception
    return tuple(r.value for r in summary.results)


class GroupIds:
    """A queue's generated group ids, ``group-1``, ``group-2``…: one a ``group()`` call that fails
    took is given back if no other call took one since, so the numbers run on without a gap."""

    __slots__ = ("_last", "_lock")

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self, group_id: str | None, opts: Any) -> Iterator[tuple[str, str | None]]:
        """The id for a ``group()`` call and the id it was given (``None`` when generated):
        ``group_id``, else ``opts``' own (a bound task's preset), else a new one, given back if
        the body raises."""
        if group_id is None and opts is not None:
            group_id = opts.group_id
        if group_id is not None:
            yield group_id, group_id
            return
        with self._lock:
            self._last = number = self._last + 1
        try:
            yield f"group-{number}", None
        except BaseException:
            with self._lock:
                if self._last == number:
                    self._last -= 1
            raise
