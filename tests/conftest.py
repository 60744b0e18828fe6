"""Shared fixtures: every async test runs on asyncio, asyncio + uvloop and trio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shared helpers such as procutil

LOOPS = [
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop",
                 marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """The event loop a test runs on."""
    return request.param


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--chaos-scale``: ``short`` (the default, CI) or ``full`` (the long chaos and load runs)."""
    parser.addoption("--chaos-scale", action="store", default="short", choices=("short", "full"),
                     help="how big the chaos and load runs are: short (CI) or full")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chaos`` marker."""
    config.addinivalue_line("markers", "chaos: seeded random mixes of misbehaving tasks (--chaos-scale)")
