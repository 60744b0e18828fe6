"""Task functions for the chaos suite, one flavour for coroutines and one for sync callables.

This module is shipped to worker processes by value (cloudpickle), so workers never import
the test package. Sync tasks that hang poll ``osiiso.cancelled()`` so that an abandoned
thread attempt ends by itself soon after it is given up. The hostile process tasks write junk
on their worker's result pipe, fork, leave a non-daemon thread behind, or start processes in
a new session; the initializers at the end kill, hang or sometimes kill their worker.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anyio

import osiiso

#: the longest any chaos task hangs when nothing interrupts it (a bound, never reached in a good run)
HANG = 30.0


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, tag: str) -> None:
        super().__init__(f"locked {tag}")
        self.lock = threading.Lock()


class Unprintable(Exception):
    """An exception whose ``__str__`` and ``__repr__`` raise: its task must still get a message."""

    def __str__(self) -> str:
        raise RuntimeError("this exception refuses to be shown")

    def __repr__(self) -> str:
        raise RuntimeError("this exception refuses to be shown")


# -- sync flavour (thread and process backends) ---------------------------------------
def s_unprintable(tag: str) -> None:
    raise Unprintable(tag)


def s_ok(value: Any) -> Any:
    return value


def s_raise(tag: str) -> None:
    raise ValueError(f"boom {tag}")


def s_hang(seconds: float = HANG) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if osiiso.cancelled():
            return "abandoned"
        time.sleep(0.005)
    return "hung to the end"


def s_exit() -> None:
    os._exit(7)


def s_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def s_segfault() -> None:
    ctypes.string_at(0)


def s_unpicklable_value() -> Any:
    return threading.Lock()


def s_unpicklable_error(tag: str) -> None:
    raise LockedError(tag)


def s_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def s_system_exit() -> None:
    raise SystemExit(3)


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def s_memory() -> int:
    """Lower this worker's address-space limit, then allocate past it (MemoryError)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + 64 * 2**20, hard))
    try:
        block = bytearray(2**31)
        return len(block)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def start_time(pid: int) -> int:
    """A process's start time in clock ticks since boot (-1 once it is gone): pid plus this is unique."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return -1


def s_orphan(path: str) -> None:
    """Start a child process, record its pid, then hang (a timeout must kill both)."""
    child = subprocess.Popen(["sleep", str(HANG)])
    Path(path + ".tmp").write_text(f"{child.pid} {start_time(child.pid)}")
    os.replace(path + ".tmp", path)
    time.sleep(HANG)


class BaseUnpicklable:
    """A value whose pickling raises SystemExit, which is no Exception."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> Any:
        raise SystemExit(f"no pickling {self.tag}")


class BaseUnpicklableError(Exception):
    """An exception whose pickling raises KeyboardInterrupt."""

    def __reduce__(self) -> Any:
        raise KeyboardInterrupt


def s_base_unpicklable_value(tag: str) -> BaseUnpicklable:
    return BaseUnpicklable(tag)


def s_base_unpicklable_error(tag: str) -> None:
    raise BaseUnpicklableError(f"base {tag}")


def s_junk(tag: str, variant: int) -> str:
    """Write junk on this worker's own result pipe (found through the garbage collector), then return."""
    from multiprocessing.connection import Connection

    pipe = next(o for o in gc.get_objects() if isinstance(o, Connection) and o.writable and not o.closed)
    if variant == 0:
        os.write(pipe.fileno(), f"junk from {tag}\n".encode())
    elif variant == 1:
        pipe.send_bytes(b"not a pickle " + tag.encode())
    else:  # a well-formed report for a job this worker never had
        pipe.send_bytes(pickle.dumps([(13, 10**9 + variant, True, pickle.dumps(tag), 0.0)], 5))
    return tag


def s_fork(tag: str, variant: int) -> str:
    """Fork; the child falls out of the task (returning, or raising SystemExit); the parent reaps it."""
    pid = os.fork()
    if pid == 0:
        if variant:
            raise SystemExit(0)
        return f"child of {tag}"
    os.waitpid(pid, 0)
    return tag


def s_thread_left(tag: str) -> str:
    """Leave a non-daemon thread behind that never ends: the worker can only be killed after that."""
    threading.Thread(target=threading.Event().wait, name="left-behind", daemon=False).start()
    return tag


def s_session_orphan(path: str) -> None:
    """Start a child in a new session and a setsid + double-fork daemon, record both, then hang."""
    child = subprocess.Popen(["sleep", str(HANG)], start_new_session=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            Path(path + ".daemon").write_text(f"{os.getpid()} {start_time(os.getpid())}")
            time.sleep(HANG)
        os._exit(0)
    os.waitpid(pid, 0)
    while not os.path.exists(path + ".daemon"):
        time.sleep(0.001)
    both = f"{child.pid} {start_time(child.pid)} " + Path(path + ".daemon").read_text()
    Path(path + ".tmp").write_text(both)
    os.replace(path + ".tmp", path)
    time.sleep(HANG)


# -- initializers of the hostile side queues --------------------------------------------
def init_crash(how: str) -> None:
    """Kill the worker before it is ready."""
    if how == "exit":
        os._exit(5)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    ctypes.string_at(0)


def init_hang() -> None:
    """Never return: the worker never gets ready."""
    time.sleep(HANG * 10)


def init_flaky() -> None:
    """Kill about half the workers before they are ready."""
    if os.getpid() % 2:
        os._exit(5)


# -- async flavour -------------------------------------------------------------------
async def a_unprintable(tag: str) -> None:
    await anyio.sleep(0)
    raise Unprintable(tag)


async def a_ok(value: Any) -> Any:
    await anyio.sleep(0)
    return value


async def a_raise(tag: str) -> None:
    await anyio.sleep(0)
    raise ValueError(f"boom {tag}")


async def a_hang(seconds: float = HANG) -> str:
    await anyio.sleep(seconds)
    return "hung to the end"


async def a_unpicklable_value() -> Any:
    return threading.Lock()


async def a_unpicklable_error(tag: str) -> None:
    raise LockedError(tag)


async def a_keyboard_interrupt() -> None:
    await anyio.sleep(0)
    raise KeyboardInterrupt


async def a_system_exit() -> None:
    raise SystemExit(3)


async def a_base_unpicklable_value(tag: str) -> BaseUnpicklable:
    return BaseUnpicklable(tag)


async def a_base_unpicklable_error(tag: str) -> None:
    raise BaseUnpicklableError(f"base {tag}")
