"""Helpers the tests share for starting scripts and looking at processes through /proc."""

from __future__ import annotations

import signal


def with_ctrl_c() -> None:
    """Give a script SIGINT's default action (a ``preexec_fn``), so Python installs its Ctrl-C handler.

    A job a shell starts in the background (as CI may run this suite) has SIGINT ignored,
    and Python keeps an ignored SIGINT ignored; a terminal's Ctrl-C reaches a script that
    does not ignore it, which is the case the tests that send SIGINT are about.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def proc_state(pid: int) -> str:
    """'R', 'S', … for a live process, 'Z' for a zombie, '' once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""
