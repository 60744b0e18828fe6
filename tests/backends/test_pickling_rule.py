"""What crosses to a worker: plain-pickle semantics for data, by value for code, real file names in tracebacks."""

from __future__ import annotations

import importlib.util
import io
import multiprocessing
import os
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from osiiso import Queue, SerializationError, TaskStatus
from osiiso.backends.dask import codec as dask_codec
from osiiso.backends.dask.remote import run_payload
from osiiso.backends.process import codec as process_codec

pytestmark = pytest.mark.timeout(60)

ENCODERS: list[tuple[str, Callable[..., bytes]]] = [
    ("process", process_codec.dumps_args), ("dask", dask_codec.dumps_args)]


@pytest.fixture
def text_file(tmp_path: Path) -> Iterator[io.TextIOWrapper]:
    path = tmp_path / "data.txt"
    path.write_text("content\n")
    with path.open() as f:
        yield f


def kind_of(value: object) -> str:
    return type(value).__name__


def numbers(n: int) -> Iterator[int]:
    return (i for i in range(n))


def open_file(path: str) -> list[object]:
    return [open(path)]  # noqa: SIM115 - the open file is the point


def _refused_cases(text_file: io.TextIOWrapper) -> list[tuple[tuple[Any, ...], dict[str, Any], str, str]]:
    binary = open(text_file.name, "rb")  # noqa: SIM115 - closed by the interpreter at exit of the test
    return [
        ((text_file,), {}, "argument 0", "pass its path and open it inside the task"),
        ((1, [0, {"f": text_file}]), {}, "argument 1", "'_io.TextIOWrapper'"),
        ((), {"src": binary}, "keyword argument 'src'", "an open file ('_io.BufferedReader')"),
        ((threading.Lock(),), {}, "argument 0", "'_thread.lock'"),
        (({"lock": multiprocessing.get_context("spawn").Lock()},), {}, "argument 0",
         "'multiprocessing.synchronize.Lock'"),
        ((threading.Event(),), {}, "argument 0", "a lock or other synchronisation object"),
        ((socket.socket(),), {}, "argument 0", "pass the address and connect inside the task"),
        (((i for i in range(3)),), {}, "argument 0", "pass a list"),
        (([lambda: 1, text_file],), {}, "argument 0", "an open file"),  # cloudpickle's fallback refuses it too
    ]


@pytest.mark.parametrize(("backend", "encode"), ENCODERS)
def test_files_sockets_locks_and_generators_are_refused_naming_where_and_the_fix(
        backend: str, encode: Callable[..., bytes], text_file: io.TextIOWrapper) -> None:
    """Each refused object is a SerializationError naming the backend, the argument, the object's type and the fix."""
    for args, kwargs, where, needle in _refused_cases(text_file):
        with pytest.raises(SerializationError) as caught:
            encode(args, kwargs, "task")
        message = str(caught.value)
        assert message.startswith(f"{backend} backend cannot send {where} of 'task': it is or contains "), message
        assert needle in message, message
        for arg in [*args, *kwargs.values()]:
            if hasattr(arg, "close"):
                arg.close()


@pytest.mark.parametrize(("backend", "encode"), ENCODERS)
def test_plain_data_and_code_by_value_still_travel(backend: str, encode: Callable[..., bytes]) -> None:
    """In-memory buffers pickle as data, lambdas and local classes by value, beside each other."""
    class Local:
        pass

    blob = encode(([lambda x: x + 1, io.BytesIO(b"b")], Local()), {"s": io.StringIO("s")}, "task")
    (pair, local), kwargs = pickle.loads(blob)
    assert pair[0](1) == 2 and pair[1].getvalue() == b"b"
    assert type(local).__name__ == "Local" and kwargs["s"].getvalue() == "s"


def test_a_closure_over_an_open_file_is_refused(text_file: io.TextIOWrapper) -> None:
    """A function whose closure holds an open file fails to ship, saying so, instead of copying the file."""
    def read() -> str:
        return text_file.read()

    with pytest.raises(SerializationError, match=r"could not pickle the function 'read' .*an open file"):
        process_codec.dumps_function(read, "read")


def test_process_tasks_refuse_file_arguments_and_results(text_file: io.TextIOWrapper) -> None:
    """Through the queue: an open file as argument or result fails that task with the fix; the pool goes on."""
    with Queue() as q:
        sent = q.submit(kind_of, [text_file], backend="process").result()
        returned = q.submit(open_file, text_file.name, backend="process").result()
        fine = q.submit(kind_of, io.BytesIO(b"x"), backend="process").result()
        generated = q.submit(numbers, 3, backend="process").result()
    assert isinstance(sent.exception, SerializationError)
    assert "argument 0 of 'kind_of'" in str(sent.exception) and "open it inside the task" in str(sent.exception)
    assert isinstance(returned.exception, SerializationError)
    assert str(returned.exception).startswith("process backend cannot send the result of 'open_file' back: ")
    assert "return its path" in str(returned.exception)
    assert fine.value == "BytesIO"
    assert isinstance(generated.exception, SerializationError) and "return a list" in str(generated.exception)


def stdout_in_a_list() -> list[object]:
    return [sys.stdout]


def test_a_dask_result_that_is_a_file_is_refused_with_the_fix() -> None:
    """The dask trampoline refuses an open-file result by the same rule, and the client words it."""
    ok, record = run_payload(process_codec.dumps_function(stdout_in_a_list, "f"), pickle.dumps(((), {})), None)
    assert not ok and record[:2] == ("serial", "refused")
    error = dask_codec._decode_error(record, "f")
    assert isinstance(error, SerializationError)
    assert str(error).startswith("dask backend cannot send the result of 'f' back: it is or contains an open file")


SCRIPT = """\
import traceback
import osiiso


def fails(x):
    y = x + 1
    raise ValueError(f"bad {y}")  # the raise


if __name__ == "__main__":
    with osiiso.Queue() as q:
        result = q.submit(fails, 1, backend=BACKEND).result()
    traceback.print_exception(result.exception)
"""


NO_DASK = importlib.util.find_spec("distributed") is None and not os.environ.get("CI")


@pytest.mark.parametrize("backend", [
    "process", pytest.param("dask", marks=pytest.mark.skipif(NO_DASK, reason="distributed is not installed"))])
def test_a_main_function_traceback_names_the_script_line_and_source(tmp_path: Path, backend: str) -> None:
    """A function from a script's __main__ that raises in a worker: the traceback names the script, line and source."""
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT.replace("BACKEND", repr(backend)))
    line = SCRIPT.splitlines().index('    raise ValueError(f"bad {y}")  # the raise') + 1
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f'File "{script}", line {line}, in fails' in done.stderr, done.stderr
    assert 'raise ValueError(f"bad {y}")  # the raise' in done.stderr
    assert "<dynamic-code>" not in done.stderr
    assert textwrap.dedent(done.stderr).rstrip().endswith("ValueError: bad 2")


def init_taking(arg: object) -> None:
    del arg


@pytest.mark.parametrize("part", ["initializer", "initargs"])
def test_an_initializer_that_cannot_travel_is_named_in_each_process_task_error(part: str) -> None:
    """The initializer or one of its initargs that cannot be pickled: each process task fails with an
    error naming which (not a 'tuple' called 'initializer'); thread tasks still run it and succeed."""
    lock = threading.Lock()

    def init_with_a_lock() -> None:  # a local function travels by value: its closure holds the lock
        with lock:
            pass

    if part == "initializer":
        initializer, initargs = init_with_a_lock, ()
        needle = r"could not pickle the initializer '.*init_with_a_lock' .*a lock"
    else:
        initializer, initargs = init_taking, (lock,)
        needle = r"cannot send argument 0 of 'the initializer init_taking': .*a lock"
    with Queue(initializer=initializer, initargs=initargs) as q:
        failed = q.submit(kind_of, 1, backend="process").result()
        fine = q.submit(kind_of, 1, backend="thread").result()
    assert isinstance(failed.exception, SerializationError)
    assert re.search(needle, str(failed.exception)), str(failed.exception)
    assert fine.status is TaskStatus.SUCCEEDED
