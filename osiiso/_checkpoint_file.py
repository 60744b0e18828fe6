"""The checkpoint's SQLite file: opening it, its one table, and the thread that writes rows.

``Checkpoint`` (``_checkpoint.py``) reads through a connection of its own and hands every
row to a `Writer`, whose thread commits all the rows waiting when it wakes in one
``BEGIN IMMEDIATE`` transaction. A write that fails for the file (locked, full, read-only)
keeps its rows and is tried again; one SQLite refuses for a row's own content (too big, a
constraint) is split in halves until the refused rows are alone: the others are committed,
and the refused ones are kept aside for the checkpoint to report.
"""

from __future__ import annotations

import reprlib
import sqlite3
import threading
import time

from ._errors import CheckpointError
from ._events import osiiso_logger

__all__ = ("INSERT", "SCHEMA", "TABLE", "Key", "Row", "Writer", "close_at_exit", "connect", "refuses_row", "short")

logger = osiiso_logger

Key = str | bytes
#: (namespace, key, value, serializer, recorded_at): one row of the table
Row = tuple[str, Key, str | bytes, str, float]

TABLE = "osiiso_checkpoint"
COLUMNS = ("namespace", "key", "value", "serializer", "recorded_at")
SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    namespace   TEXT NOT NULL,
    key         BLOB NOT NULL,
    value       BLOB NOT NULL,
    serializer  TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID"""
INSERT = f"INSERT OR REPLACE INTO {TABLE} (namespace, key, value, serializer, recorded_at) VALUES (?, ?, ?, ?, ?)"


def connect(path: str, timeout: float) -> sqlite3.Connection:
    """A connection to ``path`` in WAL mode with the table in place, or `CheckpointError`."""
    conn: sqlite3.Connection | None = None
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
            prepare(conn)
            return conn
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
                conn = None
            # another process making the same new file WAL: SQLite says "locked" without waiting
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc) and time.monotonic() < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                fix = (f"another connection held the file's lock for longer than timeout={timeout:g}s — let it "
                       "finish, or give Checkpoint() a longer timeout")
            else:
                fix = ("give the path of a new file or of a checkpoint's, in a directory that exists and that you "
                       "can write to")
            raise CheckpointError(f"cannot open checkpoint {path!r}: {exc} — {fix}") from exc


def prepare(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (once per file) and make the table if it is not there."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"the file stays in journal mode {mode!r}, not WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
    if columns != list(COLUMNS):
        raise sqlite3.DatabaseError(f"its table {TABLE} has the columns {columns}, not a checkpoint's {list(COLUMNS)} "
                                    "(a file some other program made?)")


def refuses_row(exc: Exception) -> bool:
    """Whether SQLite refused a write for the content of a row (too big, a constraint) rather than
    for the file, so that the other rows can still be written. Anything else is kept and retried."""
    return isinstance(exc, (sqlite3.DataError, sqlite3.IntegrityError))


class _Unwritten(Exception):
    """A write failed for the file: ``rows`` (the batch's rows not committed, in order) wait for the next try."""

    def __init__(self, rows: list[Row], error: Exception) -> None:
        super().__init__(rows, error)
        self.rows, self.error = rows, error


class Writer:
    """The one thread that writes rows: every row waiting when it wakes goes in one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.cond = threading.Condition(threading.Lock())
        self.idle = False  # the thread waits for rows: a new one must wake it
        self.pending: list[Row] = []
        self.inflight: list[Row] = []
        self.error: Exception | None = None  # the last write's failure, until one succeeds
        self.refused: list[tuple[Row, Exception]] = []  # rows SQLite would not take, not reported yet
        self.tries = 0  # writes tried so far, successful or not
        self.kick = False  # try again now, without waiting out the pause after a failure
        self.closing = False
        self.thread: threading.Thread | None = None

    def put(self, row: Row) -> None:
        with self.cond:
            self.pending.append(row)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="osiiso-checkpoint", daemon=True)
                self.thread.start()
            elif self.idle:
                self.cond.notify()

    def unwritten(self, namespace: str) -> list[Row]:
        """The rows of ``namespace`` not committed yet, oldest first."""
        with self.cond:
            return [row for row in (*self.inflight, *self.pending) if row[0] == namespace]

    def _run(self) -> None:
        delay = 0.05
        while True:
            with self.cond:
                while not self.pending and not self.closing:
                    self.idle = True
                    self.cond.wait()
                    self.idle = False
                if not self.pending:
                    return
                batch = self.inflight = self.pending
                self.pending = []
                self.kick = False
            try:
                self._store(batch)
            except _Unwritten as unwritten:  # the file failed: kept and reported, never lost silently
                batch, exc = unwritten.rows, unwritten.error
                with self.cond:
                    first = self.error is None
                    self.error = exc
                    self.tries += 1
                    self.pending[:0] = batch  # kept, in order, for the next try
                    self.inflight = []
                    self.cond.notify_all()
                    if first:
                        logger.warning("osiiso: checkpoint could not write %d values (%s); retrying", len(batch), exc)
                    if self.closing:
                        return
                    self.cond.wait_for(lambda: self.closing or self.kick, timeout=delay)
                delay = min(delay * 2, 2.0)
                continue
            with self.cond:
                self.inflight = []
                self.error = None
                self.tries += 1
                self.cond.notify_all()
            delay = 0.05

    def _store(self, rows: list[Row]) -> None:
        """Commit ``rows``, setting aside those SQLite refuses for their content (`refused`);
        `_Unwritten` with the rows left when the file fails."""
        try:
            self._write(rows)
            return
        except Exception as exc:
            if not refuses_row(exc):
                raise _Unwritten(rows, exc) from exc
            if len(rows) == 1:
                with self.cond:
                    self.refused.append((rows[0], exc))
                logger.error("osiiso: checkpoint could not store the value for input %s of namespace %r: "
                             "%s: %s", short(rows[0][1]), rows[0][0], type(exc).__name__, exc)
                return
        half = len(rows) // 2  # a row of the batch is refused: each half goes in on its own
        try:
            self._store(rows[:half])
        except _Unwritten as unwritten:
            raise _Unwritten([*unwritten.rows, *rows[half:]], unwritten.error) from unwritten.error
        self._store(rows[half:])

    def take_refused(self) -> list[tuple[Row, Exception]]:
        """The rows refused since the last call, oldest first."""
        with self.cond:
            refused, self.refused = self.refused, []
        return refused

    def _write(self, batch: list[Row]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT, batch)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def wait_written(self) -> bool:
        """Wait until every row put so far is committed (True), or a write tried since has failed (False)."""
        with self.cond:
            if self.error is not None:  # pausing after a failure: try again now
                self.kick = True
                self.cond.notify_all()
            start = self.tries
            while self.pending or self.inflight:
                if self.error is not None and self.tries > start and not self.inflight:
                    return False
                if self.thread is None or not self.thread.is_alive():
                    return False
                self.cond.wait()
            return True

    def close(self) -> list[Row]:
        """Write what is pending (one more try after a failure), stop the thread; the rows lost."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self.cond:
            lost, self.pending = [*self.inflight, *self.pending], []
        self.conn.close()
        return lost


def close_at_exit(writer: Writer, reader: sqlite3.Connection) -> None:
    """A checkpoint never closed: commit its rows at interpreter exit (or garbage collection)."""
    lost = writer.close()
    reader.close()
    if lost:
        logger.error("osiiso: checkpoint lost %d values it could not write: %s", len(lost), writer.error)


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def short(value: object) -> str:
    """``repr(value)``, cut to a readable length for messages."""
    return _short.repr(value)
