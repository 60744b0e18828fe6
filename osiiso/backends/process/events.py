"""What the supervisor thread tells the pool: the events of the workers' lives, in batches.

The supervisor (`.supervisor`) hands the loop thread lists of these named tuples, in the order
things happened to each worker, through ``LoopCaller.call``; the pool (`.pool`) applies them.
A worker is named by its ``slot`` and its ``gen`` (which of the slot's successive workers it is), so
events of a worker that is gone are told from those of its successor.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .pipes import TaskPipe

__all__ = ("Dead", "Event", "Garbled", "Reports", "SpawnFailed", "Stopped", "Up")


class Up(NamedTuple):
    """A worker started in ``slot`` (its ``gen``-th); ``pipe`` sends it commands."""

    slot: int
    gen: int
    pid: int
    pipe: TaskPipe


class Reports(NamedTuple):
    """The reports read from a worker's result pipe, in the order it wrote them."""

    slot: int
    gen: int
    reports: list[tuple[Any, ...]]


class Garbled(NamedTuple):
    """The worker wrote something that is not a report (``why``): it was killed, `Dead` follows."""

    slot: int
    gen: int
    why: str


class Dead(NamedTuple):
    """The worker exited and was reaped; every report it wrote came before this event.

    ``replaced``: the supervisor launched its successor (an `Up` or `SpawnFailed` follows);
    ``lingered``: it was killed for not exiting within `EXIT_GRACE` of being told to.
    """

    slot: int
    gen: int
    pid: int
    exitcode: int | None
    replaced: bool
    lingered: bool


class SpawnFailed(NamedTuple):
    """A worker could not be started in ``slot``."""

    slot: int
    error: BaseException


class Stopped(NamedTuple):
    """The pool is closing and every worker is gone: the supervisor thread has ended."""


#: what the supervisor hands to the loop, in batches
Event = Up | Reports | Garbled | Dead | SpawnFailed | Stopped
