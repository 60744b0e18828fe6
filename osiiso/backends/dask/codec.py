"""Pickling on the client's side of the dask backend, and what an ended future means.

`dumps_function` and `dumps_args` make the payload (naming what cannot travel);
`decode_outcome` turns a finished `.job.DaskJob` into the attempt's value or exception:

* ``(True, blob)`` from `.remote.run_payload`: the value;
* ``(False, record)``: the task's own exception with the worker's traceback as its
  ``__cause__`` (the process backend's `RemoteTraceback`), a `RemoteError`, or a
  `SerializationError`, from the same error records the process backend uses;
* ``KilledWorker`` (its worker died while running it) or a lost connection (the link turns a
  future cancelled for that into a ``ConnectionError``, `connection_lost`): `WorkerCrashedError`;
  a job refused at submission because the client gave up reconnecting:
  `scheduler_gone`'s ``ConnectionError`` naming the scheduler, as it is; a future the cluster cancelled:
  `CancelledElsewhere`, so that the task ends ``cancelled`` (not failed)
  (`forced_close_error` while the backend closes); a worker without osiiso:
  ``ModuleNotFoundError`` saying what to install.

`never_began` tells a job whose worker died before it began (``KilledWorker`` without a start
announcement): the backend sends it again instead of decoding it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
from typing import Any

from ..._errors import RemoteError, SerializationError, WorkerCrashedError
from ..base import CancelledElsewhere, forced_close_error
from ..process import codec as process_codec
from ..process.codec import RemoteTraceback

__all__ = ("connection_lost", "decode_outcome", "dumps_args", "dumps_function", "never_began", "scheduler_gone")


def dumps_function(fn: object, name: str) -> bytes:
    """Pickle a task's callable by the process backend's rule, or raise `SerializationError`."""
    return process_codec.dumps_function(fn, name, "dask")


def dumps_args(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> bytes:
    """Pickle a call's arguments by the process backend's rule; name the one that cannot travel."""
    return process_codec.dumps_args(args, kwargs, name, "dask")


def connection_lost(error: BaseException, status: str, address: str | None) -> BaseException:
    """``error``, or a ``ConnectionError`` if it is a cancel that means the client lost the scheduler.

    dask cancels every future of a client that loses its scheduler (reason
    ``scheduler-connection-lost``), and those submitted while it tries to reconnect when it
    gives up (reason unknown; its ``status`` is no longer ``running``): nobody cancelled them,
    the attempts are lost (`WorkerCrashedError`, retried as their ``retry_on`` says). Called by
    the link (which knows the client) for a client that osiiso is not closing.
    """
    if not isinstance(error, concurrent.futures.CancelledError):
        return error
    if getattr(error, "reason", None) != "scheduler-connection-lost" and status == "running":
        return error  # an operator's cancel, a restart: the task ends cancelled
    lost = ConnectionError(f"the client lost its connection to the scheduler at {address!r}")
    lost.__cause__ = error
    return lost


def scheduler_gone(address: str | None, timeout: float) -> ConnectionError:
    """The error of a job submitted once the client has given up reconnecting to the scheduler."""
    return ConnectionError(
        f"the dask backend lost the scheduler at {address!r} and could not reconnect within {timeout:g}s — "
        "start the scheduler again (or fix the network), then submit to a new queue")


def never_began(job: Any) -> bool:
    """Whether ``job``'s worker died (``KilledWorker``) before any worker announced that it began the job.

    Every job asks for the announcement (`.remote.run_payload` sends it before any code of the
    task's runs), and the client reads it before the future's error (both come on the
    scheduler's one stream to the client, in order): such a job never ran, and may go again.
    """
    from distributed import KilledWorker

    return job.where is None and isinstance(job.error, KilledWorker)


def decode_outcome(job: Any, backend: str, *, closing: bool, sent: bool = True) -> Any:
    """The value of a finished job, or raise its error (see the module docstring).

    ``sent``: the job reached the cluster (it had a future); one refused at submission keeps
    the link's ``ConnectionError``, which names the scheduler and the fix.
    """
    error, job.error = job.error, None
    if error is not None:
        translated = error if not sent and not closing else _translate(error, job, backend, closing)
        try:
            if translated is error:
                raise error
            raise translated from error
        finally:
            del error, translated
    ok, payload = job.raw
    job.raw = None
    if ok:
        try:
            return pickle.loads(payload)
        except Exception as exc:
            raise SerializationError(
                f"dask backend could not unpickle the result of {job.name!r} here ({exc!r}) — return plain "
                "data, or types importable in this process") from exc
    raise _decode_error(payload, job.name)


def _translate(error: BaseException, job: Any, backend: str, closing: bool) -> BaseException:
    """What an exception from awaiting the future means for the attempt."""
    from distributed import KilledWorker

    name = job.name
    if isinstance(error, KilledWorker):
        where = getattr(error.last_worker, "address", None) or job.where or "?"
        if job.where is None:  # sent again already, as often as the backend does (`never_began`)
            return WorkerCrashedError(
                f"the dask workers given {name!r} ({job.key}) kept dying before they began it, the last "
                f"{where} — see the workers' logs (a dependency too big for a worker's memory?)")
        return WorkerCrashedError(
            f"the dask worker {where} running {name!r} ({job.key}) died — see that worker's log; "
            "retries= runs the task again")
    cancelled = isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError))
    if cancelled or (closing and isinstance(error, ConnectionError)):
        if closing:
            return forced_close_error(backend)
        return CancelledElsewhere(f"cancelled: the dask cluster cancelled {name!r} ({job.key}){_why(error)} — "
                                  "someone restarted the cluster or cancelled its futures")
    if isinstance(error, ImportError) and (error.name or "").split(".")[0] in ("osiiso", "cloudpickle"):
        return ModuleNotFoundError(
            f"a dask worker could not import {error.name!r}, which runs osiiso tasks there — install osiiso "
            "(and cloudpickle) on every worker, the same version as here", name=error.name)
    if isinstance(error, (OSError, TimeoutError)):
        return WorkerCrashedError(f"the dask backend lost {name!r} ({job.key}): {type(error).__name__}: {error} — "
                                  "retries= runs the task again")
    return error


def _why(error: BaseException) -> str:
    text = str(error)
    return f" ({text})" if text else ""


def _decode_error(record: tuple[Any, ...], name: str) -> BaseException:
    """Rebuild the exception a worker's error record (`.remote.run_payload`) describes."""
    kind = record[0]
    if kind == "exc":
        try:
            exc: BaseException = pickle.loads(record[1])
        except Exception as why:
            return RemoteError(f"{why!r} (raised while unpickling the error of {name!r})",
                               type_name="?", remote_traceback=record[2])
        exc.__cause__ = RemoteTraceback(f'\n"""\n{record[2]}"""')
        return exc
    if kind == "remote":
        _, qualname, message, tb = record
        return RemoteError(f"{qualname}: {message}", type_name=qualname, remote_traceback=tb)
    _, what, qualname, detail = record
    if what == "refused":
        return SerializationError(f"dask backend cannot send the result of {name!r} back: {detail}")
    if what == "result":
        fix = "return plain data (numbers, strings, lists, dicts, dataclasses…)"
    elif what == "function":
        fix = "make sure the modules it uses are installed on the workers"
    else:
        fix = "pass plain data, or make its class importable on the workers"
    return SerializationError(
        f"dask backend could not {'pickle' if what == 'result' else 'unpickle'} the {what} of {name!r} "
        f"on the worker (a {qualname!r} object: {detail}) — {fix}")
