"""The dask ``Client`` class the link connects with: dask's own, with a ``__del__`` that cannot fail.

A client collected after its event loop ended (a queue dropped while its run was ending)
cannot be closed any more (its connections went with the loop), and dask's own
``__del__`` would raise "IOLoop is closed" into whatever code the collection ran in.
"""

from __future__ import annotations

from typing import Any

__all__ = ("client_class",)

_CLIENT: Any = None


def client_class() -> Any:
    """``distributed.Client``, subclassed once (imported on first use: dask is an extra)."""
    global _CLIENT
    if _CLIENT is None:
        from distributed import Client

        class OsiisoClient(Client):  # type: ignore[misc]
            def __del__(self) -> None:
                try:
                    super().__del__()
                except RuntimeError:  # its loop is closed: nothing is left to close
                    pass

        _CLIENT = OsiisoClient
    return _CLIENT
