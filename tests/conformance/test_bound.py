"""Conformance: a bound task read through an instance (a method) passes the instance first, on every backend."""

from __future__ import annotations

import pytest

from osiiso import AsyncQueue

from .kit import Kit

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class Ten(int):
    """A class whose instances are the ``self`` of a bound task set on it (``kit.add``'s ``a``)."""


async def test_a_bound_task_read_through_an_instance_takes_it_first(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """``obj.task(x)``, ``obj.task.map(...)`` and ``obj.task.group(...)`` call the function with ``obj``
    first, as a method; read through the class, it is the task itself."""
    q = AsyncQueue()
    bound = q.task(kit.add, **kit.opts)
    monkeypatch.setattr(Ten, "plus", bound, raising=False)
    ten = Ten(10)
    call = ten.plus(1)
    with_option = ten.plus(2, priority=1)
    mapped = ten.plus.map([3, (4,)])
    group = ten.plus.group([5])
    unbound = Ten.plus(ten, 6)
    with pytest.raises(TypeError, match="positional arguments after the instance"):
        ten.plus.map([{"b": 1}])
    summary = await q.run(strict=True)
    assert Ten.plus is bound and ten.plus.default_options == bound.default_options
    assert (call.value(), with_option.value(), unbound.value()) == (11, 12, 16)
    assert [h.value() for h in mapped] == [13, 14] and await group.values() == (15,)
    assert summary.succeeded == 6
    await q.shutdown()
