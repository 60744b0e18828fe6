"""Checkpoint: resumable fan-outs keyed by input, stored in SQLite.

The store on its own, then ``map``/``group``/bound tasks/``amap`` on every event loop
(``tmap``/``pmap`` from sync code), bad input, and two processes sharing a file. The
kill-and-resume runs in subprocesses are in ``test_checkpoint_resume.py``.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import osiiso
from osiiso import AsyncQueue, Checkpoint, CheckpointError

pytestmark = [pytest.mark.timeout(60)]

runs: list[Any] = []  # inputs the task functions ran with, in this process
_RUNS_LOCK = threading.Lock()


def record(x: Any) -> None:
    with _RUNS_LOCK:
        runs.append(x)


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    runs.clear()


def square(x: int) -> dict[str, int]:
    record(x)
    if x == 13:
        raise ValueError("thirteen")
    return {"x": x, "sq": x * x}


async def asquare(x: int) -> dict[str, int]:
    return square(x)


def add(a: int, b: int = 0) -> int:
    record((a, b))
    return a + b


def stamp(x: int) -> Any:
    record(x)
    return datetime.date(2020, 1, 1) if x == 2 else x


def pair(x: int) -> tuple[int, int]:
    record(x)
    return (x, -x)


def rows(path: Path, namespace: str | None = None) -> int:
    """Committed rows, seen through a connection of the test's own."""
    with closing(sqlite3.connect(path)) as conn, conn:
        if namespace is None:
            return int(conn.execute("SELECT COUNT(*) FROM osiiso_checkpoint").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM osiiso_checkpoint WHERE namespace = ?",
                                (namespace,)).fetchone()[0])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ck.sqlite"


BACKENDS = [pytest.param((asquare, "async"), id="async"), pytest.param((square, "thread"), id="thread")]


@pytest.fixture(params=BACKENDS)
def task(request: pytest.FixtureRequest) -> tuple[Any, str]:
    """The squaring task and the backend it runs on."""
    return request.param  # type: ignore[no-any-return]


# -- the store -------------------------------------------------------------------------------
def test_values_survive_reopening(path: Path) -> None:
    """Values stored by one Checkpoint are there, under the function's name, for the next one."""
    with Checkpoint(path) as ck:
        assert osiiso.tmap(square, range(5), checkpoint=ck) == tuple([{"x": i, "sq": i * i} for i in range(5)])
    assert rows(path) == 5
    with Checkpoint(path) as ck:
        assert ck.count() == 5 and ck.count("square") == 5 and ck.count("other") == 0
        assert ck.namespaces() == ("square",)
        assert ck.path == str(path) and ck.serializer == "json" and not ck.closed
        assert "ck.sqlite" in repr(ck)
    assert ck.closed and "closed" in repr(ck)


def test_clear_forgets_values(path: Path) -> None:
    """clear(namespace) forgets one namespace's values, clear() every value."""
    with Checkpoint(path) as ck:
        osiiso.tmap(square, range(3), checkpoint=ck)
        osiiso.tmap(square, range(2), checkpoint=ck, namespace="other")
        assert ck.clear("other") == 2
        assert ck.namespaces() == ("square",)
        assert ck.clear() == 3 and ck.count() == 0
        runs.clear()
        osiiso.tmap(square, range(3), checkpoint=ck)
        assert sorted(runs) == [0, 1, 2]


def test_file_is_wal_and_keyed_by_namespace_and_key(path: Path) -> None:
    """The file is in WAL mode, with one table whose primary key is (namespace, key)."""
    with Checkpoint(path) as ck:
        osiiso.tmap(add, [(1, 2), {"a": 3, "b": 4}, 5], checkpoint=ck)
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = dict(conn.execute("SELECT key, value FROM osiiso_checkpoint WHERE namespace = 'add'"))
        pk = [r[1] for r in conn.execute("PRAGMA table_info(osiiso_checkpoint)") if r[5]]
    assert pk == ["namespace", "key"]
    assert stored == {"[1,2]": "3", '{"a":3,"b":4}': "7", "[5]": "5"}


def test_flush_commits_what_is_pending(path: Path) -> None:
    """After flush() every value recorded so far is committed, as another connection sees."""
    async def main() -> None:
        with Checkpoint(path) as ck:
            async with AsyncQueue() as q:
                handles = q.map(asquare, range(12), checkpoint=ck)
                for handle in handles:
                    await handle
            ck.flush()
            assert rows(path) == 12

    osiiso.run(main)


# -- restored results ------------------------------------------------------------------------
@pytest.mark.anyio
async def test_restored_results_come_back_in_place(path: Path, task: tuple[Any, str]) -> None:
    """Stored inputs are not run again: their values come back in place, marked restored."""
    fn, backend = task
    with Checkpoint(path) as ck:
        async with AsyncQueue() as q:
            first = await q.group(fn, [0, 2, 4], checkpoint=ck, backend=backend).values()
        runs.clear()
        completed: list[osiiso.TaskResult] = []
        async with AsyncQueue(on_complete=completed.append) as q:
            group = q.group(fn, range(6), checkpoint=ck, backend=backend)
            summary = await group.wait()
            values = await group.values()
            queue_results = q.results
    assert first == ({"x": 0, "sq": 0}, {"x": 2, "sq": 4}, {"x": 4, "sq": 16})
    assert values == tuple({"x": i, "sq": i * i} for i in range(6))
    assert sorted(runs) == [1, 3, 5]
    restored = [r for r in summary.results if r.restored]
    assert [r.value["x"] for r in restored] == [0, 2, 4]
    for r in restored:
        assert r.ok and r.attempts == 0 and r.message == "restored from checkpoint" and r.started_at is None
        assert r.backend == backend and r.name == fn.__name__ and r.duration == 0.0
    assert [h.task_id for h in group] == sorted((h.task_id for h in group), key=lambda t: int(t[5:]))
    # counts are of work done: restored results count in `restored` only
    assert (summary.total_submitted, summary.succeeded, summary.restored) == (3, 3, 3)
    assert len(summary.values) == 6 and summary.ok
    assert "restored=3" in repr(summary)
    assert len(queue_results) == 3 and not any(r.restored for r in queue_results)
    assert len(completed) == 3  # on_complete is for tasks that ran


@pytest.mark.anyio
async def test_failures_are_not_stored(path: Path, task: tuple[Any, str]) -> None:
    """A failed input is not stored, so it runs again next time; the others are restored."""
    fn, backend = task
    with Checkpoint(path) as ck:
        for _ in range(2):
            async with AsyncQueue() as q:
                group = q.group(fn, [12, 13, 14], checkpoint=ck, backend=backend)
                summary = await group.wait()
            with pytest.raises(osiiso.ExecutionError, match="thirteen"):
                await group.values()
        assert ck.count() == 2
    assert sorted(runs) == [12, 13, 13, 14]
    assert (summary.failed, summary.restored, summary.total_submitted) == (1, 2, 1)


@pytest.mark.anyio
async def test_map_bound_tasks_and_amap(path: Path) -> None:
    """map, a bound task's map and group, and amap all resume from one checkpoint."""
    with Checkpoint(path) as ck:
        async with AsyncQueue() as q:
            handles = q.map(asquare, [1, 2], checkpoint=ck)
            await q.run()
            bound = q.task(asquare)
            mapped = bound.map([1, 2, 3], checkpoint=ck)
            await q.run()  # an input submitted again before its first run ends would run twice
            group = bound.options(priority=1).group([3, 4], checkpoint=ck, group_id="g")
            await q.run()
        assert [h.value()["x"] for h in handles] == [1, 2]
        assert [h.result().restored for h in mapped] == [True, True, False]
        assert [h.result().restored for h in group] == [True, False]
        assert group.group_id == "g" and all(h.group_id == "g" and h.result().priority == 1 for h in group)
        assert await osiiso.amap(asquare, range(6), checkpoint=ck) == tuple([{"x": i, "sq": i * i} for i in range(6)])
        assert rows(path) == 6  # amap returns once its values are committed
    assert sorted(runs) == [0, 1, 2, 3, 4, 5]


@pytest.mark.anyio
async def test_restored_handle_feeds_a_dependent(path: Path) -> None:
    """A restored handle passed to another task is a dependency that has already succeeded."""
    with Checkpoint(path) as ck:
        await osiiso.amap(asquare, [7], checkpoint=ck)
        async with AsyncQueue() as q:
            [handle] = q.map(asquare, [7], checkpoint=ck)

            async def sq_of(d: dict[str, int]) -> int:
                return d["sq"]

            dependent = q.submit(sq_of, handle)
            assert (await dependent).value == 49
    assert runs == [7]


@pytest.mark.anyio
async def test_restored_inputs_take_no_room(path: Path) -> None:
    """Under a size limit only the inputs that run need room; restored ones take none."""
    with Checkpoint(path) as ck:
        await osiiso.amap(asquare, range(3), checkpoint=ck)
        q = AsyncQueue(size=2)
        handles = q.map(asquare, range(5), checkpoint=ck)
        with pytest.raises(osiiso.QueueFullError):
            q.map(asquare, range(10, 13), checkpoint=ck)
        await q.run()
        await q.shutdown()
        assert [h.value()["x"] for h in handles] == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_namespaces_keep_fanouts_apart(path: Path) -> None:
    """The same inputs under two namespaces are two fan-outs; partials are named by their arguments."""
    with Checkpoint(path) as ck:
        await osiiso.amap(asquare, [1], checkpoint=ck, namespace="a")
        await osiiso.amap(asquare, [1], checkpoint=ck, namespace="b")
        await osiiso.amap(asquare, [1], checkpoint=ck, namespace="a")
        await osiiso.amap(functools.partial(add, b=1), [1], checkpoint=ck, backend="thread")
        await osiiso.amap(functools.partial(add, b=2), [1], checkpoint=ck, backend="thread")
        await osiiso.amap(functools.partial(add, b=2), [1], checkpoint=ck, backend="thread")
        assert ck.namespaces() == ("a", "add[[],{\"b\":1}]", "add[[],{\"b\":2}]", "b")
    assert runs == [1, 1, (1, 1), (1, 2)]


@pytest.mark.anyio
async def test_key_derives_the_key_from_the_input(path: Path) -> None:
    """key= makes the key from each input as written; str and bytes keys both work."""
    with Checkpoint(path) as ck:
        await osiiso.amap(asquare, [1, 2], checkpoint=ck, key=lambda x: f"item-{x}")
        await osiiso.amap(asquare, [1, 2, 3], checkpoint=ck, key=lambda x: f"item-{x}")
        await osiiso.amap(asquare, [4], checkpoint=ck, key=lambda x: bytes([x]), namespace="bytes")
        await osiiso.amap(asquare, [4], checkpoint=ck, key=lambda x: bytes([x]), namespace="bytes")
    assert sorted(runs) == [1, 2, 3, 4]
    with closing(sqlite3.connect(path)) as conn, conn:
        assert sorted(r[0] for r in conn.execute("SELECT key FROM osiiso_checkpoint WHERE namespace = 'asquare'")) \
            == ["item-1", "item-2", "item-3"]


@pytest.mark.anyio
async def test_heterogeneous_group_is_keyed_by_call(path: Path) -> None:
    """group([(fn, *args), ...]) is keyed by function name and arguments, under an explicit name."""
    with Checkpoint(path) as ck:
        async with AsyncQueue() as q:
            first = q.group([(add, 1, 2), (square, 3)], checkpoint=ck, group_id="mixed")
            await first.values()
            again = q.group([(add, 1, 2), (square, 3), (square, 4)], checkpoint=ck, namespace="mixed")
            assert await again.values() == (3, {"x": 3, "sq": 9}, {"x": 4, "sq": 16})
            with pytest.raises(ValueError, match="namespace="):
                q.group([(add, 1, 2)], checkpoint=ck)
    assert sorted(map(str, runs)) == sorted(map(str, [(1, 2), 3, 4]))


# -- serializers -----------------------------------------------------------------------------
def test_json_gives_values_back_as_json_does(path: Path) -> None:
    """With JSON (the default) a restored tuple comes back as a list, as JSON gives it."""
    with Checkpoint(path) as ck:
        assert osiiso.tmap(pair, [1], checkpoint=ck) == ((1, -1),)
        assert osiiso.tmap(pair, [1], checkpoint=ck) == ([1, -1],)


def test_pickle_keeps_values_exactly(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """serializer='pickle' restores values exactly; a JSON checkpoint never unpickles them."""
    with Checkpoint(path, serializer="pickle") as ck:
        assert osiiso.tmap(pair, [1, 2], checkpoint=ck) == ((1, -1), (2, -2))
        assert osiiso.tmap(stamp, [2], checkpoint=ck) == (datetime.date(2020, 1, 1),)
        assert osiiso.tmap(pair, [1, 2], checkpoint=ck) == ((1, -1), (2, -2))
        assert osiiso.tmap(stamp, [2], checkpoint=ck) == (datetime.date(2020, 1, 1),)
    assert sorted(runs) == [1, 2, 2]
    runs.clear()
    with caplog.at_level(logging.WARNING, logger="osiiso"), Checkpoint(path) as ck:
        assert osiiso.tmap(pair, [1, 2], checkpoint=ck) == ((1, -1), (2, -2))
    assert sorted(runs) == [1, 2]
    assert "2 are pickled and this checkpoint reads JSON only" in caplog.text


def test_unreadable_values_run_again(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stored value that cannot be decoded is logged, and its input runs again and is stored anew."""
    with Checkpoint(path) as ck:
        osiiso.tmap(square, [1, 2], checkpoint=ck)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE osiiso_checkpoint SET value = '{broken' WHERE key = '[1]'")
    runs.clear()
    with caplog.at_level(logging.WARNING, logger="osiiso"), Checkpoint(path) as ck:
        assert osiiso.tmap(square, [1, 2], checkpoint=ck) == ({'x': 1, 'sq': 1}, {'x': 2, 'sq': 4})
        assert osiiso.tmap(square, [1, 2], checkpoint=ck) == ({'x': 1, 'sq': 1}, {'x': 2, 'sq': 4})
    assert runs == [1]
    assert "1 could not be decoded" in caplog.text


def test_unstorable_value_is_an_error_naming_the_input(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A value JSON cannot hold keeps its task's result, is logged, and close() raises naming the input."""
    ck = Checkpoint(path)
    with caplog.at_level(logging.ERROR, logger="osiiso"):
        assert osiiso.tmap(stamp, [1, 2, 3], checkpoint=ck) == (1, datetime.date(2020, 1, 1), 3)
    assert "for input '[2]' of namespace 'stamp'" in caplog.text and "serializer='pickle'" in caplog.text
    with pytest.raises(CheckpointError, match=r"1 value was not stored; first: .*'\[2\]'.*date") as info:
        ck.flush()
    assert info.value.unstored == (("stamp", "[2]"),)
    ck.flush()  # reported once
    runs.clear()
    assert osiiso.tmap(stamp, [1, 2, 3], checkpoint=ck) == (1, datetime.date(2020, 1, 1), 3)
    assert runs == [2]
    with pytest.raises(CheckpointError, match="not stored"):
        ck.close()
    assert ck.closed


BAD_TEXT = os.fsdecode(b"bad\xff")  # a lone surrogate: what os.fsdecode gives for a file name that is not UTF-8


def named(x: int) -> str:
    record(x)
    return BAD_TEXT if x == 2 else f"ok{x}"


def test_a_value_sqlite_cannot_store_is_reported_and_the_rest_stored(path: Path) -> None:
    """A str value with a lone surrogate is not stored (flush() names it); every other value is, and
    only that input runs again."""
    with Checkpoint(path) as ck:
        assert osiiso.tmap(named, range(5), checkpoint=ck) == ("ok0", "ok1", BAD_TEXT, "ok3", "ok4")
        with pytest.raises(CheckpointError, match=r"1 value was not stored; first: .*'\[2\]'.*surrogate") as info:
            ck.flush()
        assert info.value.unstored == (("named", "[2]"),)
        assert ck.count() == 4
        runs.clear()
        assert osiiso.tmap(named, range(5), checkpoint=ck) == ("ok0", "ok1", BAD_TEXT, "ok3", "ok4")
        assert runs == [2]
        with pytest.raises(CheckpointError, match="not stored"):
            ck.flush()


def test_an_input_with_a_lone_surrogate_has_a_key_of_its_own(path: Path) -> None:
    """An input holding a lone surrogate gets an ASCII key, apart from every other input's; key= may
    not return such text."""
    items = [BAD_TEXT, "bad\\udcff", "bad\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
             (BAD_TEXT, 1), {"name": BAD_TEXT}]
    def size(*args: Any, **kwargs: Any) -> int:  # a tuple input is the arguments, a dict the keyword ones
        record((args, kwargs))
        return len(args[0]) if args else len(kwargs["name"])

    with Checkpoint(path) as ck:
        lengths = (4, 9, 6, 4, 4)
        assert osiiso.tmap(size, items, checkpoint=ck) == lengths
        assert ck.count() == len(items)
        runs.clear()
        assert osiiso.tmap(size, items, checkpoint=ck) == lengths
        assert runs == []
        with pytest.raises(TypeError, match="lone surrogate .*os.fsencode"):
            osiiso.tmap(size, ["a"], checkpoint=ck, key=lambda _: BAD_TEXT)
        with pytest.raises(ValueError, match="namespace .*lone surrogate"):
            osiiso.tmap(size, ["a"], checkpoint=ck, namespace=BAD_TEXT)
    assert runs == []


def test_a_write_that_fails_unexpectedly_is_kept_and_reported(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write failing with an error that is not SQLite's keeps its rows for the next try; flush() says so."""
    from osiiso._checkpoint_file import Writer

    real, failing = Writer._write, threading.Event()
    failing.set()

    def flaky(self: Writer, batch: list[Any]) -> None:
        if failing.is_set():
            raise ValueError("not a row SQLite takes")
        real(self, batch)

    monkeypatch.setattr(Writer, "_write", flaky)
    with Checkpoint(path) as ck:
        osiiso.tmap(square, [1], checkpoint=ck)
        with pytest.raises(CheckpointError, match="could not write some values.*not a row SQLite takes"):
            ck.flush()
        assert rows(path) == 0
        failing.clear()
        ck.flush()  # the retry went through
        assert rows(path) == 1


def _refuse_keys(path: Path, *keys: str) -> None:
    """Make the file's table refuse rows with these keys, as a trigger another program added would."""
    with Checkpoint(path):
        pass
    with closing(sqlite3.connect(path)) as conn, conn:
        held = ", ".join(f"'{key}'" for key in keys)
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON osiiso_checkpoint WHEN NEW.key IN ({held}) "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")


def test_rows_sqlite_refuses_are_set_aside_and_the_rest_committed(path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Rows SQLite refuses for their content, in one batch with 198 others, do not hold the others
    back: those are committed, flush() names the refused ones, and only they run again."""
    _refuse_keys(path, "[7]", "[150]")
    items = [x for x in range(200) if x != 13]
    expected = tuple({"x": x, "sq": x * x} for x in items)
    with caplog.at_level(logging.ERROR, logger="osiiso"), Checkpoint(path, timeout=0.2) as ck:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the values wait, so that they are written in one batch
        try:
            assert osiiso.tmap(square, items, checkpoint=ck) == expected
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        with pytest.raises(CheckpointError, match=r"2 values were not stored; first: .*'\[(7|150)\]'.*IntegrityError: "
                           "refused by the test.*trigger or constraint") as info:
            ck.flush()
        assert sorted(info.value.unstored) == [("square", "[150]"), ("square", "[7]")]
        assert rows(path) == len(items) - 2
        ck.flush()  # reported once
        runs.clear()
        assert osiiso.tmap(square, items, checkpoint=ck) == expected
        assert sorted(runs) == [7, 150]
        with pytest.raises(CheckpointError, match="2 values were not stored"):
            ck.flush()
    assert "could not store the value for input '[7]'" in caplog.text


def sized(x: int) -> str:
    return "x" * (5000 if x == 3 else 10)


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="Connection.setlimit is Python 3.11+")
def test_a_value_over_sqlites_length_limit_is_set_aside(path: Path) -> None:
    """A value longer than SQLite takes (the limit lowered here from 1 GB) is named by flush();
    the values beside it are committed."""
    with Checkpoint(path) as ck:
        ck._writer.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
        assert osiiso.tmap(sized, range(6), checkpoint=ck)[3] == "x" * 5000
        with pytest.raises(CheckpointError, match=r"1 value was not stored; first: .*'\[3\]'.*DataError.*length "
                           "limit") as info:
            ck.flush()
        assert info.value.unstored == (("sized", "[3]"),)
        assert rows(path) == 5


def test_exit_with_an_exception_does_not_hide_it(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Leaving `with Checkpoint` by an exception raises that exception; the checkpoint's error is logged."""
    with pytest.raises(KeyError), caplog.at_level(logging.ERROR, logger="osiiso"), Checkpoint(path) as ck:
        osiiso.tmap(stamp, [2], checkpoint=ck)
        raise KeyError("mine")
    assert ck.closed and "not stored" in caplog.text


# -- writes under contention -----------------------------------------------------------------
def test_lookup_sees_values_not_yet_committed(path: Path) -> None:
    """While another connection holds the write lock, this process still restores what it computed."""
    async def main() -> list[Any]:
        async with AsyncQueue() as q:
            for handle in q.map(asquare, [1, 2], checkpoint=ck):
                await handle
            again = q.map(asquare, [1, 2, 3], checkpoint=ck)
            await q.run()
        return [h.result().restored for h in again]

    with Checkpoint(path) as ck:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            assert osiiso.run(main) == [True, True, False]
            assert rows(path) == 0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        ck.flush()
        assert rows(path) == 3
    assert sorted(runs) == [1, 2, 3]


def test_a_failed_write_is_reported_and_retried(path: Path) -> None:
    """A write that times out on another's lock makes flush() raise; the values are written later."""
    with Checkpoint(path, timeout=0.2) as ck:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            osiiso.tmap(square, [1], checkpoint=ck)
            with pytest.raises(CheckpointError, match="could not write some values.*locked"):
                ck.flush()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        ck.flush()  # the retry went through
        assert rows(path) == 1


# -- bad input -------------------------------------------------------------------------------
def test_bad_paths_and_arguments_are_clear_errors(tmp_path: Path) -> None:
    """A path that cannot be opened, or a bad serializer or timeout, is an error naming it."""
    with pytest.raises(CheckpointError, match="cannot open checkpoint .*directory that exists"):
        Checkpoint(tmp_path / "missing" / "ck.sqlite")
    with pytest.raises(CheckpointError, match="cannot open checkpoint"):
        Checkpoint(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(CheckpointError, match="not a database"):
        Checkpoint(junk)
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE osiiso_checkpoint (a TEXT)")
    with pytest.raises(CheckpointError, match=r"columns \['a'\], not a checkpoint's"):
        Checkpoint(other)
    locked = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(locked, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE t (a)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(CheckpointError, match=r"locked — another connection held the file's lock for "
                                                  r"longer than timeout=0.2s — let it finish, or give Checkpoint"):
            Checkpoint(locked, timeout=0.2)
    finally:
        holder.close()
    with pytest.raises(ValueError, match="file path"):
        Checkpoint(":memory:")
    with pytest.raises(TypeError, match="file path"):
        Checkpoint(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="serializer must be one of 'json', 'pickle', got 'yaml'"):
        Checkpoint(tmp_path / "a.sqlite", serializer="yaml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        Checkpoint(tmp_path / "a.sqlite", timeout=0)


def test_bad_fanout_arguments_submit_nothing(path: Path) -> None:
    """Bad checkpoint=, key= or namespace= arguments, or unkeyable or duplicate inputs, submit nothing."""
    q = AsyncQueue()
    with Checkpoint(path) as ck:
        with pytest.raises(TypeError, match="checkpoint= takes an osiiso.Checkpoint, got 'ck.sqlite'"):
            q.map(square, [1], checkpoint="ck.sqlite")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="go with checkpoint="):
            q.map(square, [1], key=str)
        with pytest.raises(TypeError, match="key= must return str or bytes, got 1 for input 0"):
            q.map(square, [1], checkpoint=ck, key=lambda x: x)
        with pytest.raises(TypeError, match="key= takes a function"):
            q.map(square, [1], checkpoint=ck, key="x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="namespace= takes a non-empty str"):
            q.map(square, [1], checkpoint=ck, namespace="")
        with pytest.raises(TypeError, match=r"cannot make a checkpoint key from input 1 \(<object.*pass key="):
            q.map(square, [1, object()], checkpoint=ck)
        with pytest.raises(ValueError, match="inputs 0 and 2 have the same checkpoint key '\\[1\\]'"):
            q.group(square, [1, 2, 1], checkpoint=ck)
        with pytest.raises(ValueError, match="lambda"):
            q.map(lambda x: x, [1], checkpoint=ck)
        with pytest.raises(TypeError, match="unknown option"):
            q.map(square, [1], checkpoint=ck, retrys=1)
        assert q.pending_count == 0 and ck.count() == 0
        assert q.map(lambda x: x, [1], checkpoint=ck, namespace="ident")[0].name == "<lambda>"
    with pytest.raises(CheckpointError, match="is closed"):
        q.map(square, [1], checkpoint=ck)
    q.cancel()


def test_closed_queue_refuses_even_restored_inputs(path: Path) -> None:
    """A shut-down queue refuses a checkpointed map whether or not its inputs are stored."""
    async def main() -> None:
        with Checkpoint(path) as ck:
            await osiiso.amap(asquare, [1], checkpoint=ck)
            q = AsyncQueue()
            await q.shutdown()
            with pytest.raises(osiiso.ClosedError):
                q.map(asquare, [1], checkpoint=ck)

    osiiso.run(main)


def test_pmap_resumes(path: Path) -> None:
    """pmap with a checkpoint runs only the inputs not stored, in worker processes."""
    with Checkpoint(path) as ck:
        assert osiiso.pmap(add, [(1, 1), (2, 2)], checkpoint=ck, processes=1) == (2, 4)
        assert osiiso.pmap(add, [(1, 1), (2, 2), (3, 3)], checkpoint=ck, processes=1) == (2, 4, 6)
        assert ck.count("add") == 3
    assert runs == []  # they ran in the workers, not here


@pytest.mark.anyio
async def test_async_with_and_aclose(path: Path) -> None:
    """`async with Checkpoint(...)` and aclose() close without blocking the loop."""
    async with Checkpoint(path) as ck:
        await osiiso.amap(asquare, [1], checkpoint=ck)
    assert ck.closed and rows(path) == 1
    other = Checkpoint(path)
    await other.aclose()
    await other.aclose()
    assert other.closed


def test_summary_report_shows_restored(path: Path) -> None:
    """The printed summary counts work done and says how many results were restored."""
    async def main() -> osiiso.RunSummary:
        with Checkpoint(path) as ck:
            await osiiso.amap(asquare, [1], checkpoint=ck)
            async with AsyncQueue() as q:
                return await q.group(asquare, [1, 2], checkpoint=ck).wait()

    from osiiso._display import summary_lines

    lines = summary_lines(osiiso.run(main))
    assert lines[0].startswith("osiiso run: 1 tasks")
    assert "restored 1 (from a checkpoint, not run)" in lines[1]
    assert "  by backend: async 1" in lines


# -- two processes, one file -----------------------------------------------------------------
def test_two_threads_share_a_checkpoint(path: Path) -> None:
    """Two threads, each with its own event loop and queue, write into one Checkpoint."""
    with Checkpoint(path) as ck:
        results: dict[int, list[Any]] = {}

        def fan_out(part: int) -> None:
            results[part] = osiiso.tmap(add, [(part, i) for i in range(50)], checkpoint=ck)

        threads = [threading.Thread(target=fan_out, args=(part,)) for part in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {part: tuple(part + i for i in range(50)) for part in (0, 1)}
        assert ck.count() == 100


def test_module_exports() -> None:
    """Checkpoint and CheckpointError are public, and CheckpointError is an OsiisoError."""
    assert "Checkpoint" in osiiso.__all__ and "CheckpointError" in osiiso.__all__
    assert issubclass(CheckpointError, osiiso.OsiisoError)


def test_guide_examples_run(tmp_path: Path) -> None:
    """Every complete example of the checkpoint guide runs as a script and prints what the guide shows."""
    import re
    import subprocess
    import sys

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "checkpoint.md").read_text()
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", guide, re.S)
    assert len(pairs) >= 2
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for index, (code, shown) in enumerate(pairs):
        script = tmp_path / f"guide_{index}.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, env=env, check=False)
        assert done.returncode == 0, done.stderr
        printed = re.sub(r"duration=[0-9.]+s", "duration=…", done.stdout.strip())
        assert printed == re.sub(r"duration=[0-9.]+s", "duration=…", shown.strip())
