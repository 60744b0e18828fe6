"""osiiso: one queue for coroutines, thread tasks and process tasks.

``AsyncQueue`` runs each task on the backend its options choose (``async``, ``thread``,
``process``), with the same timeouts, retries, priorities, rate limits and summaries
everywhere.
"""


from ._bound import BoundTask as BoundTask
from ._cancel import cancelled as cancelled
from ._cancel import check_cancelled as check_cancelled
from ._checkpoint import Checkpoint as Checkpoint
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
from ._queue import AsyncQueue as AsyncQueue
from ._results import RunSummary as RunSummary
from ._results import TaskResult as TaskResult
from ._results import TaskStatus as TaskStatus
from .backends import register_backend as register_backend

__version__ = "0.1.0"

__all__ = (
    "AsyncQueue",
    "BoundTask",
    "Checkpoint",
    "CheckpointError",
    "ClosedError",
    "DependencyError",
    "ExecutionError",
    "OsiisoError",
    "QueueFullError",
    "RemoteError",
    "RunSummary",
    "SerializationError",
    "TaskCancelledError",
    "TaskGroup",
    "TaskHandle",
    "TaskOptions",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "amap",
    "as_completed",
    "cancelled",
    "check_cancelled",
    "pmap",
    "register_backend",
    "run",
    "tmap",
)
