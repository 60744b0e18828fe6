"""Conformance: fan-in — handles inside a list, tuple or dict argument are dependencies, on every backend."""

from __future__ import annotations

import pytest

import osiiso
from osiiso import AsyncQueue

from .kit import Boom, Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def _six() -> int:
    return 6


def _seven() -> int:
    return 7


async def test_a_list_tuple_or_dict_of_handles_waits_for_all_and_gets_their_values(kit: Kit) -> None:
    """A task given containers of handles (of any backend) runs after all of them, with their values
    in a container of the same type; plain items stay as they are."""
    q = AsyncQueue()
    parts = [q.submit(kit.square, i, **kit.opts) for i in range(4)]
    other = [q.submit(_six), q.submit(_seven, backend="thread")]
    as_list = q.submit(kit.echo, [*parts, "plain"], **kit.opts)
    as_tuple = q.submit(kit.echo, tuple(other), **kit.opts)
    as_dict = q.submit(kit.echo, {"a": parts[3], "b": 1}, **kit.opts)
    as_keyword = q.task(kit.echo, **kit.opts)(x=[other[0], parts[1]])
    summary = await q.run(strict=True)
    assert as_list.value() == [0, 1, 4, 9, "plain"]
    assert as_tuple.value() == (6, 7)
    assert as_dict.value() == {"a": 9, "b": 1}
    assert as_keyword.value() == [6, 1]
    assert summary.succeeded == 10
    await q.shutdown()


async def test_a_failed_handle_in_a_container_fails_the_task_with_dependency_error(kit: Kit) -> None:
    """One failed handle in a list fails the task, unrun, with DependencyError caused by the failure;
    handles that ended before the submit count too."""
    q = AsyncQueue()
    ok = q.submit(kit.echo, 1, **kit.opts)
    await q.run(strict=True)  # ``ok`` ended before the dependent is submitted
    failed = q.submit(kit.fail, "one part", **kit.opts)
    dependent = q.submit(kit.echo, [ok, failed], **kit.opts)
    after = q.submit(kit.echo, (ok, ok), **kit.opts)
    await q.run()
    error = dependent.exception()
    assert isinstance(error, osiiso.DependencyError) and isinstance(error.__cause__, Boom)
    assert dependent.attempts == 0 and "one part" in dependent.result().message
    assert after.value() == (1, 1)
    await q.shutdown()
