"""Backends: one module per way of running an attempt, behind `osiiso.backends.base.Backend`.

Backends are imported lazily, by name, the first time a queue needs them: a queue
that only runs coroutines never imports the process machinery.
"""

from __future__ import annotations

import importlib

from .base import Attempt, Backend, BackendConfig

__all__ = ("Attempt", "Backend", "BackendConfig", "backend_class", "backend_names", "register_backend")

_REGISTRY: dict[str, str | type[Backend]] = {
    "async": "osiiso.backends.coroutine:AsyncBackend",
    "thread": "osiiso.backends.thread:ThreadBackend",
    "process": "osiiso.backends.process:ProcessBackend",
    "dask": "osiiso.backends.dask:DaskBackend",  # the dask extra; distributed is imported when it starts
}


def register_backend(name: str, backend: str | type[Backend]) -> None:
    """Make ``backend`` (a class or ``"module:Class"``) available as ``TaskOptions(backend=name)``."""
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"backend name must be a non-empty string other than 'auto', got {name!r}")
    _REGISTRY[name] = backend


def backend_names() -> tuple[str, ...]:
    """The registered backend names, ``"auto"`` excluded."""
    return tuple(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``, imported on first use."""
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attr)
        assert isinstance(entry, type) and issubclass(entry, Backend)
        _REGISTRY[name] = entry
    return entry
