"""The processes a worker's tasks start: keeping them under the worker, finding them, killing them.

On Linux a worker makes itself a child subreaper (`become_subreaper`): an orphan among its
descendants — a grandchild whose parent exited, a daemon that did setsid and a double fork,
a child started with ``start_new_session=True`` whose starter died — is re-parented to the
worker instead of to init, so it stays in the worker's tree whatever process group or
session it moved to. `kill_descendants` walks that tree through ``/proc`` and SIGKILLs it,
pass after pass, while the worker lives. The parent kills a worker with `kill_tree` (its
descendants, then its process group); the worker calls `kill_descendants` on itself at EOF
and when its parent dies.

The limits: where ``/proc`` does not list children (not Linux) nothing is found and only the
worker's process group is killed; and a worker that dies by itself (a segfault,
``os._exit``) cannot hand its orphans on — they go to init, and only those still in its
process group are killed after it.

Standard library only: worker processes load this file by path, as they load `.child`.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ("become_subreaper", "kill_descendants", "kill_group", "kill_tree")

_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def become_subreaper() -> bool:
    """Linux: adopt the orphans of this process's descendants; whether it could.

    It calls libc's ``prctl`` through ``_ctypes``, the C half of ctypes: a worker waits for this
    before it reports ready, and loading the whole ``ctypes`` package would about double a forked
    worker's start (3 ms against 1 ms here). The package is the fallback.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import _ctypes

        prctl = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]  # None: the program itself
        return int(_ctypes.call_function(prctl, (_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))) == 0
    except Exception:  # a build whose _ctypes lacks these: the package's way
        pass
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except Exception:  # no libc prctl (a static or sandboxed build): the process group still works
        return False


def _children(pid: int) -> list[int]:
    """The children of ``pid`` as ``/proc`` lists them (none where it does not)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(child) for child in f.read().split())
        except OSError:
            pass
    return found


def kill_descendants(pid: int, passes: int = 50) -> int:
    """SIGKILL every process under ``pid``, pass after pass, until a walk finds none left unsignalled.

    Call it while ``pid`` lives: as a subreaper it adopts the orphans of the processes killed,
    so the next walk finds them; a process with SIGKILL pending cannot fork any more, so the
    passes end. Returns how many processes were signalled.
    """
    killed: set[int] = set()
    for _ in range(passes):
        todo, fresh = [pid], []
        while todo:
            for child in _children(todo.pop()):
                todo.append(child)
                if child not in killed:
                    fresh.append(child)
        if not fresh:
            break
        for child in fresh:
            killed.add(child)
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
    return len(killed)


def kill_group(pid: int) -> None:
    """SIGKILL a worker's process group (the worker and the processes it started in its group)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # no group yet (still booting) or already gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except PermissionError:
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL a live worker and every process under it, its descendants first (any thread)."""
    kill_descendants(pid)
    kill_group(pid)
