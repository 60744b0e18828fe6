"""What ``AsyncQueue(dask=...)`` may be, checked at construction, and where the cluster comes from.

`DaskOptions` is the full form; ``None``, an address string, a ``distributed.Client`` or a
cluster object (anything with a ``scheduler_address``, such as a ``LocalCluster``) are
shorthands for ``DaskOptions(cluster=...)``. `coerce_options` turns any of them into a
`DaskOptions` (or raises ``ValueError`` naming the bad value) without importing
``distributed``: a queue that never runs a dask task never needs the extra.
`require_distributed` is the one check for the extra, made when a dask task is submitted and
when the backend starts. `scheduler_address` says which scheduler an existing cluster has.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

__all__ = ("DaskOptions", "coerce_options", "require_distributed", "scheduler_address")

#: the environment variable dask itself reads for the scheduler of a default client
ENV_ADDRESS = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class DaskOptions:
    """How the dask backend reaches its cluster, and how it stops attempts there.

    ``cluster``: a scheduler address (``"tcp://127.0.0.1:8786"``), a ``distributed.Client``
    or a cluster object; osiiso connects its own client to that scheduler and leaves the
    cluster running at shutdown. ``None`` (the default) uses ``$DASK_SCHEDULER_ADDRESS`` (or
    dask's ``scheduler-address`` setting) when set, else starts an embedded ``LocalCluster``
    on the first dask task and closes it at shutdown.

    For the embedded cluster only: ``n_workers`` worker processes (``None``: the queue's
    ``processes``, which defaults to the number of CPUs) of ``threads_per_worker`` threads,
    and ``dashboard``: ``False`` (none), ``True`` (``127.0.0.1:8787``) or an address.

    ``capacity``: how many attempts osiiso keeps on the cluster at once (``None``: twice the
    cluster's worker threads when the backend starts, and at least 64, so that no thread waits
    for a round trip between two tasks; the queue's ``workers`` caps it too).
    ``hard_stop``: a timed-out or cancelled attempt that is already running
    restarts the worker process that runs it (it must have a nanny), instead of leaving the
    thread to finish the call; see the cluster guide for what that costs.
    ``connect_timeout``: seconds to reach the scheduler, or to start the embedded cluster; also how long
    the client tries to reconnect after it lost the scheduler, before it gives up.
    """

    cluster: Any = None
    n_workers: int | None = None
    threads_per_worker: int = 1
    dashboard: bool | str = False
    capacity: int | None = None
    hard_stop: bool = False
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        _check_cluster(self.cluster)
        for name in ("n_workers", "capacity"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"DaskOptions {name} must be an int >= 1 or None, got {value!r}")
        threads = self.threads_per_worker
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"DaskOptions threads_per_worker must be an int >= 1, got {threads!r}")
        if not isinstance(self.dashboard, (bool, str)):
            raise ValueError(f"DaskOptions dashboard must be True, False or an address such as "
                             f"'127.0.0.1:8787', got {self.dashboard!r}")
        timeout = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"DaskOptions connect_timeout must be a number of seconds > 0, got {timeout!r}")
        if not isinstance(self.hard_stop, bool):
            raise ValueError(f"DaskOptions hard_stop must be True or False, got {self.hard_stop!r}")


def _is_distributed_object(value: object) -> bool:
    return type(value).__module__.split(".")[0] == "distributed"


def _check_cluster(value: object) -> None:
    if value is None or (isinstance(value, str) and value.strip()):
        return
    if hasattr(value, "scheduler_address") or (_is_distributed_object(value) and hasattr(value, "scheduler")):
        return
    raise ValueError(
        f"dask must be None, a scheduler address such as 'tcp://127.0.0.1:8786', a distributed.Client, "
        f"a dask cluster object or a DaskOptions, got {value!r}")


def coerce_options(value: object) -> DaskOptions:
    """The `DaskOptions` for ``AsyncQueue(dask=value)``; ``ValueError`` for anything else."""
    if isinstance(value, DaskOptions):
        return value
    _check_cluster(value)
    return DaskOptions(cluster=value)


def require_distributed() -> None:
    """Raise ``ModuleNotFoundError`` naming the extra when ``distributed`` is not installed."""
    if importlib.util.find_spec("distributed") is None:
        raise ModuleNotFoundError(
            "backend='dask' needs dask.distributed, which is not installed — "
            'pip install "osiiso[dask]" (and install osiiso and cloudpickle on every worker)',
            name="distributed")


def scheduler_address(cluster: object) -> tuple[str | None, Any]:
    """The scheduler address of an existing cluster, and the security settings to reach it.

    ``(None, None)`` means "no existing cluster": start an embedded one. Called in the dask
    thread when the backend starts (a client given to the queue may connect only after).
    """
    if cluster is None:
        address = os.environ.get(ENV_ADDRESS) or _configured_address()
        return (address or None), None
    if isinstance(cluster, str):
        return cluster.strip(), None
    security = getattr(cluster, "security", None)
    address = getattr(cluster, "scheduler_address", None)
    if address is None:  # a Client: its scheduler's address
        scheduler = getattr(cluster, "scheduler", None)
        address = getattr(scheduler, "address", None)
    if not address:
        raise ValueError(f"the dask client or cluster {cluster!r} has no scheduler address yet — "
                         "connect it first (await Client(..., asynchronous=True)) or pass the address")
    return str(address), security


def _configured_address() -> str | None:
    import dask.config

    value = dask.config.get("scheduler-address", None)
    return str(value) if value else None
