"""Shared fixtures: every async test runs on asyncio, asyncio + uvloop and trio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shared helpers: support, procutil

from support import SCALES, loop_params, scale_of  # noqa: E402  (needs the sys.path entry above)


@pytest.fixture(params=loop_params())
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """The event loop a test runs on."""
    return request.param


@pytest.fixture
def chaos_scale(request: pytest.FixtureRequest) -> str:
    """How big the chaos and load runs are: ``"short"`` (CI) or ``"full"``."""
    return scale_of(request.config)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--chaos-scale``: ``short`` (the default, CI) or ``full`` (the long chaos and load runs)."""
    parser.addoption("--chaos-scale", action="store", default="short", choices=SCALES,
                     help="how big the chaos and load runs are: short (CI) or full")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chaos`` marker."""
    config.addinivalue_line("markers", "chaos: seeded random mixes of misbehaving tasks (--chaos-scale)")
