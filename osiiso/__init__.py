"""osiiso: one queue for coroutines, thread tasks and process tasks.

``AsyncQueue`` runs each task on the backend its options choose (``async``, ``thread``,
``process``), with the same timeouts, retries, priorities, rate limits and summaries
everywhere. ``Queue`` is its blocking front end for scripts without async (the same engine on
a background event loop); ``ThreadQueue`` and ``ProcessQueue`` are Queues for scripts written
for the original osiiso.
"""

import typing as _typing

from ._blocking import Queue as Queue
from ._bound import BoundTask as BoundTask
from ._cancel import cancelled as cancelled
from ._cancel import check_cancelled as check_cancelled
from ._checkpoint import Checkpoint as Checkpoint
from ._compat import ProcessQueue as ProcessQueue
from ._compat import ThreadQueue as ThreadQueue
from ._errors import CheckpointError as CheckpointError
from ._errors import ClosedError as ClosedError
from ._errors import DependencyError as DependencyError
from ._errors import ExecutionError as ExecutionError
from ._errors import OsiisoError as OsiisoError
from ._errors import QueueFullError as QueueFullError
from ._errors import RemoteError as RemoteError
from ._errors import SerializationError as SerializationError
from ._errors import TaskCancelledError as TaskCancelledError
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import WorkerCrashedError as WorkerCrashedError
from ._group import TaskGroup as TaskGroup
from ._handle import TaskHandle as TaskHandle
from ._handle import as_completed as as_completed
from ._helpers import amap as amap
from ._helpers import pmap as pmap
from ._helpers import run as run
from ._helpers import tmap as tmap
from ._options import TaskOptions as TaskOptions
from ._progress import BackendProgress as BackendProgress
from ._progress import ProgressSnapshot as ProgressSnapshot
from ._queue import AsyncQueue as AsyncQueue
from ._results import AttemptTiming as AttemptTiming
from ._results import RunSummary as RunSummary
from ._results import TaskResult as TaskResult
from ._results import TaskStatus as TaskStatus
from ._sync_bound import SyncBoundTask as SyncBoundTask
from ._sync_handle import SyncTaskGroup as SyncTaskGroup
from ._sync_handle import SyncTaskHandle as SyncTaskHandle
from ._sync_handle import iter_completed as iter_completed
from .backends import register_backend as register_backend

__version__ = "0.1.0"

__all__ = (
    "AsyncQueue",
    "AttemptTiming",
    "BackendProgress",
    "BoundTask",
    "Checkpoint",
    "CheckpointError",
    "ClosedError",
    "DependencyError",
    "ExecutionError",
    "OsiisoError",
    "ProcessQueue",
    "ProgressSnapshot",
    "Queue",
    "QueueFullError",
    "RemoteError",
    "RunSummary",
    "SerializationError",
    "SyncBoundTask",
    "SyncTaskGroup",
    "SyncTaskHandle",
    "TaskCancelledError",
    "TaskGroup",
    "TaskHandle",
    "TaskOptions",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "ThreadQueue",
    "WorkerCrashedError",
    "amap",
    "as_completed",
    "cancelled",
    "check_cancelled",
    "iter_completed",
    "pmap",
    "register_backend",
    "run",
    "tmap",
)



if not _typing.TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any osiiso.<name>

    def __getattr__(name: str) -> object:
        if name == "SharedQueue":  # the original osiiso's; an ImportError, so `from osiiso import` says why
            raise ImportError("osiiso.SharedQueue is gone: AsyncQueue.submit() is already safe from any thread "
                              "once the queue has started — use osiiso.AsyncQueue (or the blocking osiiso.Queue); "
                              "see docs/guides/migrating.md")
        raise AttributeError(f"module 'osiiso' has no attribute {name!r}")
