"""What a process pool's first task waits for: the worker's code, its becoming a subreaper, cloudpickle.

A worker makes itself a child subreaper before it reports ready, through ``_ctypes`` alone (the
``ctypes`` package would take longer to load than the rest of a forked worker's start). An
importable function travels by reference with plain pickle, in the very bytes cloudpickle writes
for it, until something loads cloudpickle; a function of ``__main__``, a lambda or a closure
still travels by value. A spawned or forkserver worker runs its code from the cached bytecode
when that is current, instead of compiling the source as it starts.
"""

from __future__ import annotations

import compileall
import importlib.util
import io
import json
import math
import os
import pickle
import py_compile
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import osiiso
import osiiso.backends.process.descendants as descendants
from osiiso.backends.process import pickling
from osiiso.backends.process.child import code_path

pytestmark = pytest.mark.timeout(60)

LINUX = sys.platform.startswith("linux")


def run_python(code: str, cwd: Path | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=50, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# A bare interpreter loads descendants.py by path, as a worker does, then reads the subreaper flag.
SUBREAPER = """
    import importlib.util, sys
    {prepare}
    spec = importlib.util.spec_from_file_location("descendants", {path!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = "ctypes" in sys.modules
    became = module.become_subreaper()
    package = "ctypes" in sys.modules
    import ctypes
    flag = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    print(before, became, package, flag.value)
"""


@pytest.mark.skipif(not LINUX, reason="child subreapers are a Linux feature")
def test_a_worker_becomes_a_subreaper_without_loading_the_ctypes_package() -> None:
    out = run_python(SUBREAPER.format(prepare="", path=descendants.__file__))
    assert out == "False True False 1", out


@pytest.mark.skipif(not LINUX, reason="child subreapers are a Linux feature")
def test_without_the_low_level_calls_it_becomes_one_through_the_ctypes_package() -> None:
    """A ``_ctypes`` that lacks ``dlsym`` (another build): the package's way still works."""
    prepare = "import _ctypes; del _ctypes.dlsym"
    out = run_python(SUBREAPER.format(prepare=prepare, path=descendants.__file__))
    assert out == "False True True 1", out


def via_cloudpickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    pickling._pickler_class()(buffer, protocol=pickling.PROTOCOL).dump(obj)
    return buffer.getvalue()


class Local:
    def method(self) -> int:
        return 1


@pytest.mark.parametrize("obj", [math.factorial, json.dumps, json.JSONEncoder, json.JSONEncoder.encode, Local,
                                 Local.method, via_cloudpickle], ids=lambda o: o.__qualname__)
def test_an_importable_function_or_class_travels_by_reference_as_cloudpickle_writes_it(obj: Any) -> None:
    assert pickling._by_reference(obj)
    assert pickle.dumps(obj, pickling.PROTOCOL) == via_cloudpickle(obj)
    assert pickle.loads(pickling.dumps_code(obj)) is obj


def test_code_that_is_not_importable_travels_by_value() -> None:
    def nested() -> int:
        return 1

    in_main = eval("lambda: 2", {"__name__": "__main__"})  # noqa: S307 - a function of __main__
    in_main.__qualname__ = "in_main"
    renamed = eval("lambda: 3", {"__name__": __name__})  # noqa: S307 - its qualified name finds another object
    renamed.__qualname__ = "Local"
    for obj in (nested, lambda: 1, in_main, renamed, Local().method, sys):
        assert not pickling._by_reference(obj), obj


MODULE = """
def square(x):
    return x * x
"""

SCRIPT = """
    import math, sys
    import osiiso
    import tasks_module

    with osiiso.Queue(processes=1) as q:
        by_reference = [q.submit(tasks_module.square, 7, backend="process"),
                        q.submit(math.factorial, 5, backend="process")]
        values = [h.value() for h in by_reference]
        loaded_then = "cloudpickle" in sys.modules
        by_value = q.submit(lambda x: x + 1, 1, backend="process").value()
    print(values, loaded_then, by_value, "cloudpickle" in sys.modules)
"""


def test_a_first_pool_of_importable_functions_never_loads_cloudpickle(tmp_path: Path) -> None:
    (tmp_path / "tasks_module.py").write_text(MODULE)
    out = run_python(SCRIPT, cwd=tmp_path)
    assert out == "[49, 120] False 2 True", out


def test_a_module_registered_by_value_travels_by_value() -> None:
    """Once cloudpickle is loaded, its registry decides: a module registered by value is sent by value."""
    spec = importlib.util.spec_from_loader("registered_by_value", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(MODULE, module.__dict__)  # noqa: S102 - a module made here, never importable in a worker
    sys.modules[module.__name__] = module
    try:
        reference = pickle.dumps(module.square, pickling.PROTOCOL)
        cloudpickle.register_pickle_by_value(module)
        try:
            blob = pickling.dumps_code(module.square)
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    finally:
        del sys.modules[module.__name__]
    assert blob != reference
    assert pickle.loads(blob)(6) == 36  # rebuilt from its code: the module is gone


# -- a worker loaded by path runs its cached bytecode when that is current ----------------------
def test_the_code_a_worker_runs_is_its_current_pyc_else_its_source(tmp_path: Path) -> None:
    source = tmp_path / "module_by_path.py"
    source.write_text("VALUE = 1\n")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert code_path(str(source)) == str(source)  # no cache yet
    py_compile.compile(str(source), cfile=str(cached), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert code_path(str(source)) == str(cached)
    source.write_text("VALUE = 22\n")  # edited since: the cache is stale
    assert code_path(str(source)) == str(source)
    py_compile.compile(str(source), cfile=str(cached),
                       invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert code_path(str(source)) == str(source)  # a hash-based cache: left to the source
    cached.write_bytes(b"junk")
    assert code_path(str(source)) == str(source)


WHERE = """
    import sys
    import osiiso

    def worker_file():
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") != "__osiiso_worker__":
            frame = frame.f_back
        return frame.f_globals["__file__"]

    if __name__ == "__main__":
        with osiiso.Queue(processes=1, mp_context="spawn") as q:
            print(q.submit(worker_file, backend="process").value())
"""


@pytest.mark.parametrize("cached", [True, False], ids=["pyc", "source"])
def test_a_spawned_worker_runs_the_cached_bytecode_of_its_code(tmp_path: Path, cached: bool) -> None:
    """A copy of the package: with its bytecode compiled, the worker runs the .pyc (nothing to compile
    as it starts); without, the source."""
    package = Path(osiiso.__file__).parent
    shutil.copytree(package, tmp_path / "osiiso", ignore=shutil.ignore_patterns("__pycache__"))
    if cached:
        assert compileall.compile_dir(tmp_path / "osiiso", quiet=1)
    (tmp_path / "where.py").write_text(textwrap.dedent(WHERE))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "where.py"], capture_output=True, text=True, timeout=50,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    child = tmp_path / "osiiso" / "backends" / "process" / "child.py"
    expected = importlib.util.cache_from_source(str(child)) if cached else str(child)
    assert done.stdout.strip() == expected
