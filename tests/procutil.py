"""Helpers the tests share for looking at processes through /proc."""

from __future__ import annotations


def proc_state(pid: int) -> str:
    """'R', 'S', … for a live process, 'Z' for a zombie, '' once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""
