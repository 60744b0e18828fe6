"""Options and markers of the chaos suite: ``--chaos-scale`` (short in CI, full on request).

pytest reads ``pytest_addoption`` only from the conftests it loads before parsing the
command line: this one is loaded when ``tests/chaos`` is named on the command line
(``pytest tests/chaos tests/test_load.py --chaos-scale=full``). ``OSIISO_CHAOS_SCALE=full``
selects the long run from any command line (``OSIISO_CHAOS_SCALE=full pytest -m chaos``).
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chaos`` marker."""
    config.addinivalue_line("markers", "chaos: seeded random mixes of misbehaving tasks (--chaos-scale)")


@pytest.fixture
def chaos_scale(request: pytest.FixtureRequest) -> str:
    """``"short"`` or ``"full"``."""
    return scale_of(request.config)


def scale_of(config: pytest.Config) -> str:
    """The chosen scale: the ``--chaos-scale`` option, else ``$OSIISO_CHAOS_SCALE``, else short."""
    try:
        scale = config.getoption("--chaos-scale")
    except ValueError:  # the option is not registered: this conftest was loaded late
        scale = None
    if scale in (None, "short"):
        scale = os.environ.get("OSIISO_CHAOS_SCALE", "short")
    if scale not in ("short", "full"):
        raise pytest.UsageError(f"OSIISO_CHAOS_SCALE must be 'short' or 'full', got {scale!r}")
    return str(scale)
