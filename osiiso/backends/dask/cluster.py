"""The embedded cluster: a ``LocalCluster`` osiiso starts on the first dask task and closes at shutdown.

`start_local_cluster` runs in a thread of an executor (it blocks while the cluster starts): the
cluster is dask's synchronous kind, so its scheduler lives in dask's own loop thread, never on
the queue's loop, and its workers are processes (one nanny each, so a worker that dies is replaced and
``hard_stop`` can restart one), on loopback, without a dashboard unless asked. Two choices
differ from dask's defaults, both so that the embedded cluster behaves like osiiso's process
pool:

* the scheduler's ``allowed_failures`` is 0: a worker that dies mid-task fails that task at
  once (``KilledWorker``, which the backend turns into ``WorkerCrashedError``), and the
  task's own ``retries`` decide what happens next, instead of dask re-running it silently.
  dask fails every task the dead worker held so, begun or not: the backend sends those no
  worker had announced it began again, in the same attempt (`.codec.never_began`);
* worker processes never re-run the user's ``__main__``: multiprocessing's spawn start method
  re-imports the parent's main script in each child, which fails (or repeats the script's
  work) in a script without an ``if __name__ == "__main__":`` guard. osiiso ships functions
  by value, so while an embedded cluster is open the preparation data of dask's nanny worker
  processes leaves the main module out (`_preparation_data`, the same device the process
  pool uses for its own workers).
"""

from __future__ import annotations

import threading
from multiprocessing import spawn
from typing import Any

from ..._events import osiiso_logger
from .options import DaskOptions

__all__ = ("close_local_cluster", "start_local_cluster")

logger = osiiso_logger

#: the name dask's nanny gives the worker processes it starts
_NANNY_CHILD = "Dask Worker process (from Nanny)"

_open_clusters = 0
_lock = threading.Lock()
_wrapped = spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """``spawn.get_preparation_data``, minus the user's main module for an embedded cluster's workers."""
    data: dict[str, Any] = _wrapped(name)
    if _open_clusters and name == _NANNY_CHILD:
        for key in ("init_main_from_path", "init_main_from_name", "main_path"):
            data.pop(key, None)
    return data


spawn.get_preparation_data = _preparation_data


def _scheduler_kwargs(dashboard: bool | str) -> dict[str, Any]:
    """The scheduler's settings: no re-runs after a crash, and its HTTP server on loopback.

    The scheduler always serves HTTP (health, metrics); without a dashboard it gets a free
    loopback port rather than dask's default 8787 (which warns when taken, and listens on
    every interface).
    """
    kwargs: dict[str, Any] = {"allowed_failures": 0}
    if dashboard is False or dashboard == "":
        kwargs.update(dashboard=False, dashboard_address="127.0.0.1:0")
    else:
        kwargs.update(dashboard=True, dashboard_address="127.0.0.1:8787" if dashboard is True else dashboard)
    return kwargs


def start_local_cluster(options: DaskOptions, processes: int) -> Any:
    """Start the embedded ``LocalCluster`` (blocking, within ``options.connect_timeout``) and return it."""
    global _open_clusters
    from distributed import LocalCluster

    with _lock:
        _open_clusters += 1
    try:
        cluster = LocalCluster(
            n_workers=options.n_workers or max(1, processes),
            threads_per_worker=options.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            scheduler_kwargs=_scheduler_kwargs(options.dashboard),
            timeout=options.connect_timeout,
        )
    except BaseException:
        _release()
        raise
    return cluster


def close_local_cluster(cluster: Any, timeout: float) -> None:
    """Close an embedded cluster and its workers (blocking, bounded); the main-module rule ends with it."""
    try:
        cluster.close(timeout=timeout)
    except Exception:
        logger.warning("osiiso: the embedded dask cluster did not close cleanly", exc_info=True)
    finally:
        _release()


def _release() -> None:
    global _open_clusters
    with _lock:
        _open_clusters = max(0, _open_clusters - 1)
