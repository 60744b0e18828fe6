"""Task functions for the chaos suite, one flavour for coroutines and one for sync callables.

This module is shipped to worker processes by value (cloudpickle), so workers never import
the test package. Sync tasks that hang poll ``osiiso.cancelled()`` so that an abandoned
thread attempt ends by itself soon after it is given up.
"""

from __future__ import annotations

import ctypes
import os
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
