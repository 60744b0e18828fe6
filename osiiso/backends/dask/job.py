"""`DaskJob`: one attempt on the cluster, as the backend (`DaskBackend.run`) and the link (`.link`) share it."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ("DaskJob",)


class DaskJob:
    """One attempt on the cluster: what is sent, what came back, and where it ran.

    ``raw`` is what `run_payload` returned, ``error`` what awaiting the future raised
    instead (``KilledWorker``, a cancellation, a lost connection). ``abandoned``: the
    attempt was cancelled or timed out; whatever comes back is dropped. ``where`` is the
    worker that announced the start (``None`` until then).
    """

    __slots__ = (
        "abandoned",
        "args_blob",
        "attempt",
        "done",
        "error",
        "fn_blob",
        "future",
        "key",
        "name",
        "priority",
        "raw",
        "topic",
        "upstream",
        "waiter",
        "where",
    )

    def __init__(self, attempt: Any, fn_blob: bytes, args_blob: bytes, topic: str | None,
                 upstream: list[Any] | None = None) -> None:
        self.attempt = attempt
        self.name: str = attempt.name
        self.key = f"{attempt.name}-{uuid.uuid4().hex}"
        self.fn_blob, self.args_blob = fn_blob, args_blob
        self.priority: int = attempt.priority
        self.topic = topic
        self.upstream: list[Any] = upstream or []  # futures of upstream tasks (`.chains`)
        self.done = self.abandoned = False
        self.raw: Any = None
        self.error: BaseException | None = None
        self.future: Any = None
        self.waiter: Any = None
        self.where: str | None = None
