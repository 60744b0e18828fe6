"""The dask ``Client`` class the link connects with, and how its clients end.

`client_class` is dask's own ``Client`` with a ``__del__`` that cannot fail: a client
collected after its event loop ended (a queue dropped while its run was ending) cannot be
closed any more (its connections went with the loop), and dask's own ``__del__`` would raise
"IOLoop is closed" into whatever code the collection ran in. `close_half_open` closes a
client whose connection failed or was cancelled half-way; `mark_closed` tells dask a client
needs no closing any more; `close_in_a_thread` closes an embedded cluster off the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .cluster import close_local_cluster

__all__ = ("CLOSE_TIMEOUT", "client_class", "close_half_open", "close_in_a_thread", "mark_closed", "open_clients")

#: seconds the client and the embedded cluster get to close
CLOSE_TIMEOUT = 20.0

#: every client a link opened and has not closed: held, so that a queue dropped without
#: shutdown reaches its finalizer (`Link.close_soon`) before dask's ``Client.__del__`` runs
open_clients: set[Any] = set()

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


def mark_closed(client: Any) -> None:
    """``client`` is closed, or can no longer be: dask's ``Client.__del__`` must not try again later."""
    open_clients.discard(client)
    client.status = "closed"


def close_half_open(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Close a client whose connection failed or was cancelled, without waiting (on ``loop``)."""
    async def close() -> None:
        try:
            await asyncio.wait_for(client.close(timeout=None), CLOSE_TIMEOUT)
        except Exception:  # half-open: what it had may be gone already
            pass

    try:
        task = loop.create_task(close())
    except RuntimeError:  # the loop is closing: its connections go with it
        mark_closed(client)
        return
    # also when the task is cancelled before it ran (its loop ended first)
    task.add_done_callback(lambda _: mark_closed(client))


def close_in_a_thread(cluster: Any) -> None:
    """Close an embedded cluster from a thread of its own (its loop is gone or busy ending)."""
    threading.Thread(target=close_local_cluster, args=(cluster, CLOSE_TIMEOUT), name="osiiso-dask-close",
                     daemon=True).start()
