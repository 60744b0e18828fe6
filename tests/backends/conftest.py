"""Fixtures shared by the backend tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["direct", "hooks"])
def path(request: pytest.FixtureRequest) -> str:
    """How the engine runs the tasks: direct attempts (no hook), or a coroutine per task (a hook);
    `support.queue_on` makes a queue that takes it."""
    return str(request.param)
