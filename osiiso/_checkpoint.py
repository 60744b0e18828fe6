"""Checkpoint: the values of a fan-out's finished inputs, kept in one SQLite file.

How a value travels (``_resume.py`` does the submitting)::

    map() / group()                     loop thread                      writer thread
    ───────────────                     ───────────                      ─────────────
    keys ──▶ lookup (reader connection)
      found   ──▶ restored handle
      missing ──▶ submitted ──▶ succeeded: encode ──row──▶ pending ──▶ BEGIN IMMEDIATE
                                                                      INSERT OR REPLACE all
                                                                      COMMIT

One table, keyed by ``(namespace, key)``; the file is in WAL mode with
``synchronous=NORMAL``, so a committed row survives a crash or SIGKILL of the process
(not necessarily a power cut). Values are encoded on the loop thread as each task
succeeds, and the one writer thread commits every row waiting at that moment in one
transaction, so the event loop never waits for the file, and a SIGKILL loses only the
rows not yet committed: those of tasks that ended while the last commit was being made.
Several processes may share one file: each write takes SQLite's write lock
(``BEGIN IMMEDIATE``) and waits up to ``timeout`` seconds for it.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._checkpoint_file import TABLE, Key, Row, Writer, close_at_exit, connect, short
from ._errors import CheckpointError
from ._events import osiiso_logger
from ._result import TaskStatus

if TYPE_CHECKING:
    from ._handle import TaskHandle

__all__ = ("Checkpoint", "Key")

logger = osiiso_logger

_CHUNK = 900  # keys per SELECT, under SQLite's oldest limit of 999 parameters
_SERIALIZERS = ("json", "pickle")
_VALUE_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _value_encoder() -> Callable[[Any], str]:
    """``_VALUE_JSON.encode``, made once (the stdlib makes its C encoder anew on every call).

    Without its check for cycles: a value that contains itself fails with RecursionError.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython and PyPy have it
        return _VALUE_JSON.encode
    encoder = make(None, _VALUE_JSON.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):  # the C encoder takes containers and numbers; a str is quoted here
            return json.encoder.encode_basestring(value)
        return "".join(encoder(value, 0))

    return encode


_encode_value = _value_encoder()
def _refusal_fix(exc: Exception) -> str:
    """What to do about a row SQLite refused with ``exc``."""
    if isinstance(exc, sqlite3.DataError):
        return "keep values under SQLite's length limit (1 GB by default)"
    return f"the file's {TABLE} table has a trigger or constraint that refuses it: use a checkpoint file of its own"


class Checkpoint:
    """A resumable fan-out's memory: the value of every input that succeeded, in one SQLite file.

    Pass it as ``checkpoint=`` to ``map``, ``group``, a bound task's ``map``/``group``, or
    ``amap``/``tmap``/``pmap``. Inputs stored under the fan-out's namespace do not run again:
    their handles come back already finished, in place, with the stored value and
    ``TaskResult.restored`` set. The others run, and each value is stored as its task
    succeeds; failures are not stored, so they run again next time.

    ``serializer="json"`` (the default) stores JSON: values come back as JSON gives them
    (tuples as lists, dict keys as strings). ``serializer="pickle"`` stores any picklable
    value exactly, but loading pickle runs code: use it only with files you trust.
    ``timeout`` is how long a read or write waits for another process holding the file's lock.

    Use it as a context manager (``with`` or ``async with``), or call `close` when done:
    closing commits what is pending and reports values that could not be stored.
    """

    def __init__(self, path: str | os.PathLike[str], *, serializer: Literal["json", "pickle"] = "json",
                 timeout: float = 30.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"Checkpoint() takes a file path, got {path!r}")
        where = os.fspath(path)
        if not isinstance(where, str):
            raise TypeError(f"Checkpoint() takes a str or os.PathLike[str] path, got {path!r}")
        if where in ("", ":memory:") or where.startswith("file:"):
            raise ValueError(f"Checkpoint() needs a file path, got {where!r} — a checkpoint exists to outlive "
                             "the process: use a file (a temporary one in tests)")
        if serializer not in _SERIALIZERS:
            raise ValueError(f"serializer must be one of 'json', 'pickle', got {serializer!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self._path = where
        self._serializer = serializer
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the reader connection, and the unstored list
        self._unstored: list[tuple[str, Key, str]] = []
        self._closed = False
        reader = connect(where, float(timeout))
        try:
            writer = connect(where, float(timeout))
            try:
                writer.execute("BEGIN IMMEDIATE")  # fail now, not at the first value, on a read-only file
                writer.execute("ROLLBACK")
            except sqlite3.Error as exc:
                writer.close()
                raise CheckpointError(f"cannot write to checkpoint {where!r}: {exc} — give a file (and a "
                                      "directory) you can write to") from exc
        except BaseException:
            reader.close()
            raise
        self._reader = reader
        self._writer = Writer(writer)
        self._finalizer = weakref.finalize(self, close_at_exit, self._writer, reader)

    # -- what users call ---------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The SQLite file."""
        return self._path

    @property
    def serializer(self) -> str:
        """``"json"`` or ``"pickle"``: how values are stored."""
        return self._serializer

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def count(self, namespace: str | None = None) -> int:
        """How many values are stored, in ``namespace`` or in all of them (after a `flush`)."""
        self._writer.wait_written()
        if namespace is None:
            return int(self._query(f"SELECT COUNT(*) FROM {TABLE}", ())[0][0])
        return int(self._query(f"SELECT COUNT(*) FROM {TABLE} WHERE namespace = ?", (namespace,))[0][0])

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace with a stored value, sorted."""
        self._writer.wait_written()
        return tuple(r[0] for r in self._query(f"SELECT DISTINCT namespace FROM {TABLE} ORDER BY namespace", ()))

    def clear(self, namespace: str | None = None) -> int:
        """Forget the stored values of ``namespace`` (or all), so those inputs run again; how many."""
        self._writer.wait_written()
        if namespace is None:
            return self._delete(f"DELETE FROM {TABLE}", ())
        return self._delete(f"DELETE FROM {TABLE} WHERE namespace = ?", (namespace,))

    def flush(self) -> None:
        """Wait until every value recorded so far is committed to the file.

        Raises `CheckpointError` if a write failed (its values are kept and tried again),
        or if some values could not be stored since the last report (named in
        ``unstored``; their tasks' results are unaffected, and they run again next time).
        """
        self._check_open()
        written = self._writer.wait_written()
        error = self._writer.error
        if not written and error is None:  # pragma: no cover - the writer catches every failure of a write
            error = RuntimeError("its writer thread stopped")
        self._report(None if written else error, [])

    def close(self) -> None:
        """Commit what is pending and close the file (a second call does nothing).

        Raises `CheckpointError` as `flush` does, after closing.
        """
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        lost = self._writer.close()
        with self._lock:
            self._reader.close()
        self._report(self._writer.error if lost else None, lost)

    async def aclose(self) -> None:
        """`close` without blocking the event loop while pending values are committed."""
        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close_after(exc)

    async def __aenter__(self) -> Checkpoint:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_after, exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Checkpoint {self._path!r} {self._serializer} {state}>"

    # -- for the fan-outs (``_resume.py``) -------------------------------------------------------
    def _lookup(self, namespace: str, keys: Sequence[Key]) -> dict[Key, Any]:
        """The stored values among ``keys`` of ``namespace`` (rows this process has not committed yet too)."""
        rows: list[tuple[Key, Any, str]] = []
        self._check_open()
        # first what waits to be written, then the table: a row committed in between is in the table
        unwritten = self._writer.unwritten(namespace)
        with self._lock:
            try:
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start:start + _CHUNK]
                    sql = (f"SELECT key, value, serializer FROM {TABLE} WHERE namespace = ? AND key IN "
                           f"({','.join('?' * len(chunk))})")
                    rows += self._reader.execute(sql, (namespace, *chunk)).fetchall()
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot read checkpoint {self._path!r}: {exc}") from exc
        if unwritten:
            wanted = set(keys)
            rows += [(key, value, ser) for _, key, value, ser, _ in unwritten if key in wanted]
        return self._decode(namespace, rows, not unwritten)

    def _decode(self, namespace: str, rows: list[tuple[Key, Any, str]], fresh: bool) -> dict[Key, Any]:
        """Decode the values of ``rows`` (``fresh``: straight from the table, one per key)."""
        if fresh and rows:  # the usual case, all JSON: one parse for every value
            keys, texts, sers = zip(*rows, strict=True)
            if len(set(sers)) == 1 and sers[0] == "json":
                try:
                    parsed = json.loads(f"[{','.join(texts)}]")
                except (TypeError, ValueError):
                    parsed = None
                if isinstance(parsed, list) and len(parsed) == len(keys):
                    return dict(zip(keys, parsed, strict=True))
        latest = {key: (value, ser) for key, value, ser in rows}  # a later row of a key wins
        found: dict[Key, Any] = {}
        json_keys: list[Key] = []
        json_texts: list[str] = []
        unreadable = 0
        refused = 0
        for key, (value, ser) in latest.items():
            if ser == "json" and isinstance(value, str):
                json_keys.append(key)
                json_texts.append(value)
            elif ser == "pickle" and self._serializer == "pickle" and isinstance(value, bytes):
                try:
                    found[key] = pickle.loads(value)
                except Exception:
                    unreadable += 1
            elif ser == "pickle":
                refused += 1  # a JSON checkpoint never unpickles
            else:
                unreadable += 1
        if json_texts:
            try:  # one parse for all the values: far faster than one per value
                values = json.loads(f"[{','.join(json_texts)}]")
            except ValueError:
                values = None
            if isinstance(values, list) and len(values) == len(json_keys):
                found.update(zip(json_keys, values, strict=True))
            else:
                for key, text in zip(json_keys, json_texts, strict=True):
                    try:
                        found[key] = json.loads(text)
                    except ValueError:
                        unreadable += 1
        if unreadable or refused:
            why = []
            if unreadable:
                why.append(f"{unreadable} could not be decoded")
            if refused:
                why.append(f"{refused} are pickled and this checkpoint reads JSON only "
                           "(open it with serializer='pickle' if you trust the file)")
            logger.warning("osiiso: checkpoint %r, namespace %r: %s; those inputs run again",
                           self._path, namespace, ", ".join(why))
        return found

    def _watch(self, handle: TaskHandle[Any], namespace: str, key: Key) -> None:
        """Store ``handle``'s value under ``(namespace, key)`` when it succeeds."""

        def on_done(done: TaskHandle[Any]) -> None:
            result = done.result()
            if result.status is TaskStatus.SUCCEEDED and not result.restored:
                self._store(namespace, key, result.value, done)

        handle.add_done_callback(on_done)

    def _store(self, namespace: str, key: Key, value: Any, handle: TaskHandle[Any]) -> None:
        if self._closed:
            logger.error("osiiso: task %r (%s) succeeded after checkpoint %r was closed; its value was not stored "
                         "— close the checkpoint after the queue", handle.name, handle.task_id, self._path)
            return
        try:
            if self._serializer == "json":
                text = _encode_value(value)
                if not text.isascii():
                    text.encode()  # SQLite stores text as UTF-8: a lone surrogate cannot be stored
                blob: str | bytes = text
            else:
                blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            fix = ("return JSON data (dict, list, str, int, float, bool, None), or open the checkpoint with "
                   "serializer='pickle'" if self._serializer == "json" else "return a picklable value")
            reason = (f"checkpoint {self._path!r} could not store the value of {handle.name!r} ({handle.task_id}) "
                      f"for input {short(key)} of namespace {namespace!r}: {type(exc).__name__}: {exc} — {fix}; "
                      "the task's result keeps its value, and the input runs again next time")
            logger.error("osiiso: %s", reason)
            with self._lock:
                self._unstored.append((namespace, key, reason))
            return
        self._writer.put((namespace, key, blob, self._serializer, time.time()))

    # -- internals ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise CheckpointError(f"checkpoint {self._path!r} is closed — close it after the queue has finished")
        if os.getpid() != self._pid:
            raise CheckpointError(f"checkpoint {self._path!r} was opened in another process (this is a fork of "
                                  "it) — open a new Checkpoint here")

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        self._check_open()
        with self._lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot read checkpoint {self._path!r}: {exc}") from exc

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        self._check_open()
        with self._lock:
            try:
                return self._reader.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise CheckpointError(f"cannot write to checkpoint {self._path!r}: {exc}") from exc

    def _wait_written(self) -> None:
        """For the one-shot maps: wait until their values are committed; problems are left to `close`."""
        if not self._closed:
            self._writer.wait_written()

    def _report(self, error: Exception | None, lost: list[Row]) -> None:
        """Raise what went wrong, once: a failed write first; values not stored (reported once) next."""
        if error is not None:
            what = (f"lost {len(lost)} values it could not write before closing; those inputs run again next time"
                    if lost else "could not write some values; they are kept and tried again")
            raise CheckpointError(f"checkpoint {self._path!r} {what}: {error}",
                                  [(row[0], row[1]) for row in lost]) from error
        refused = [(row[0], row[1], f"checkpoint {self._path!r} could not store the value for input {short(row[1])} "
                    f"of namespace {row[0]!r}: SQLite refused it ({type(exc).__name__}: {exc}) — {_refusal_fix(exc)}; "
                    "the task's result keeps its value, and the input runs again next time")
                   for row, exc in self._writer.take_refused()]
        with self._lock:
            unstored, self._unstored = [*self._unstored, *refused], []
        if unstored:
            more = f" (and {len(unstored) - 1} more)" if len(unstored) > 1 else ""
            count = f"{len(unstored)} values were" if len(unstored) > 1 else "1 value was"
            raise CheckpointError(f"{count} not stored; first: {unstored[0][2]}{more}",
                                  [(ns, key) for ns, key, _ in unstored])

    def _close_after(self, exc: BaseException | None) -> None:
        if exc is None:
            self.close()
            return
        try:  # an exception is on its way out: report ours in the log, never in its place
            self.close()
        except CheckpointError as error:
            logger.error("osiiso: %s", error)
