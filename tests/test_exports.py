"""The public surface: __all__ matches what the package exports."""

from __future__ import annotations

import types

import osiiso


def test_all_matches_public_names() -> None:
    """Every public, non-module name of osiiso is in __all__ and every __all__ entry exists."""
    public = {name for name, value in vars(osiiso).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(osiiso.__all__) == public
    assert len(osiiso.__all__) == len(set(osiiso.__all__))


def test_exceptions_share_one_root() -> None:
    """Every osiiso exception derives from OsiisoError; TaskTimeoutError is also a TimeoutError."""
    for name in osiiso.__all__:
        value = getattr(osiiso, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, osiiso.OsiisoError), name
    assert issubclass(osiiso.TaskTimeoutError, TimeoutError)


def test_status_compares_and_formats_as_plain_strings() -> None:
    """TaskStatus members equal and format as their plain string values."""
    status = osiiso.TaskStatus.SUCCEEDED
    assert status == "succeeded" and f"{status}" == "succeeded" and str(status) == "succeeded"
