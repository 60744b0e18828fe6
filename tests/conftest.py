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


@pytest.fixture
def chaos_seeds(request: pytest.FixtureRequest) -> set[int] | None:
    """The chaos rounds ``--chaos-seeds`` picks (``"3,17,25-30"``), or None for all of them."""
    text = str(request.config.getoption("--chaos-seeds")).strip()
    if not text:
        return None
    seeds: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise pytest.UsageError(f"--chaos-seeds takes seeds and ranges such as 3,17,25-30, got {part!r}")
        seeds.update(range(int(low), int(high or low) + 1))
    return seeds


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--chaos-scale``: ``short`` (the default, CI) or ``full`` (the long chaos and load runs)."""
    parser.addoption("--chaos-scale", action="store", default="short", choices=SCALES,
                     help="how big the chaos and load runs are: short (CI) or full")
    parser.addoption("--chaos-seeds", action="store", default="",
                     help="run only these chaos rounds, by seed: 3,17,25-30")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chaos`` marker."""
    config.addinivalue_line("markers", "chaos: seeded random mixes of misbehaving tasks (--chaos-scale)")
