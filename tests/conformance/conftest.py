"""The conformance suite runs on every available backend × every event loop."""

from __future__ import annotations

import pytest

from .kit import Kit, make_kit

BACKENDS = ["async", "thread", "process"]


@pytest.fixture(params=BACKENDS)
def kit(request: pytest.FixtureRequest) -> Kit:
    """Task functions for one backend."""
    return make_kit(request.param)
