"""Where the process pool places a job: the depth a worker may hold, and when jobs travel in batches.

A job goes to a ready idle worker at once. A job of a function measured to be short
(``PRESEND_BELOW``) may also wait in a worker behind other short jobs, so that the worker
never waits for the parent between two of them: up to ``DEPTH`` jobs, or, for a function
short enough to batch (``BATCH_BELOW``), two batches of `batch_size` jobs, each about
``BATCH_SECONDS`` of work (one running, the next queued). A worker is topped up only once
it has less than a quarter batch left, so a batch goes in one message; a worker still
starting holds ``DEPTH`` jobs at most, so a restart holds up no batch. A long task, or one never
measured, waits in the parent for an idle worker and is never batched. `choose` runs on the
loop thread, for `.pool.Pool._dispatch`, which takes the waiting jobs in priority order and
stops at the first one that has no worker: a batch never holds a job that a more urgent
waiting one should precede.
"""

from __future__ import annotations

from collections.abc import Container

from .jobs import ProcessJob, Slot

__all__ = ("BATCH_BELOW", "BATCH_MAX", "BATCH_SECONDS", "COOL_CALLS", "DEPTH", "PRESEND_BELOW", "batch_capacity",
           "batch_size", "choose", "died_running", "reports_due")

#: most jobs a worker holds at once (1 running + 3 queued) when its tasks are short
DEPTH = 4
#: queue jobs behind a running one only for functions whose recent runs took less
PRESEND_BELOW = 0.005
#: batch the jobs of functions whose recent runs took less (seconds)
BATCH_BELOW = 0.001
#: a batch holds about this much work (seconds): a worker holds two batches, one running
BATCH_SECONDS = 0.001
#: most jobs in one batch
BATCH_MAX = 256
#: calls of a function that must end after one died running (a timeout kill, a crash) before it is batched again
COOL_CALLS = 256


def batch_capacity(processes: int, batching: bool) -> int:
    """Most jobs that may wait in batches at once: two full batches per worker (none without batching)."""
    return processes * 2 * BATCH_MAX if batching else 0


def batch_size(ewma: float | None) -> int:
    """How many jobs of a function that recently took ``ewma`` seconds make one batch (1: not batched).

    About `BATCH_SECONDS` of work, between `DEPTH` and `BATCH_MAX`; a function slower than
    `BATCH_BELOW`, or not measured yet, is never batched.
    """
    if ewma is None or ewma >= BATCH_BELOW:
        return 1
    if ewma <= BATCH_SECONDS / BATCH_MAX:
        return BATCH_MAX
    return max(DEPTH, int(BATCH_SECONDS / ewma))


def choose(slots: list[Slot], job: ProcessJob, max_tasks: int | None, batching: bool,
           filling: Container[Slot]) -> Slot | None:
    """The worker to send ``job`` to now, or None: then it waits in ``_pending``.

    A ready idle worker wins at once. Otherwise a job is queued behind others only if its
    function is known to be short (``PRESEND_BELOW``) and so is the job running there,
    the worker holds fewer than ``DEPTH`` jobs (two batches, `batch_size`, when the function
    is short enough to batch, to a ready worker: then a worker is topped up only once less than
    a quarter batch is left to it, so each batch goes in one message), and the bytes still unread in its pipe
    leave room for this one (``budget``, half the pipe): a long or unknown task is never
    stuck behind another. The least loaded of those wins; failing that, a worker still
    starting with nothing to do. Dying workers and those at ``max_tasks_per_child`` get none.
    ``filling`` are the workers this dispatch is writing to already (a batch grows to its end).
    """
    best: Slot | None = None
    best_ahead = 0
    starting: Slot | None = None
    ewma = job.fn.ewma
    short = ewma is not None and ewma < PRESEND_BELOW
    depth = refill = DEPTH
    if batching and short:
        batch = batch_size(ewma)
        if batch > 1:  # top a worker up only once it has little left to do: one message per batch
            depth, refill = 2 * batch, max(DEPTH, batch // 4)
    for slot in slots:
        if slot.pipe is None or slot.dying:
            continue
        if max_tasks is not None and slot.sent >= max_tasks:
            continue
        n = len(slot.inflight) - slot.skipping  # `.jobs.Slot.ahead`, inline: this runs per job and slot
        if n == 0:
            if slot.ready:
                return slot
            starting = starting or slot
            continue
        # queue a short job only behind jobs known to be short: never behind a task of
        # unknown or long duration, which could hold it while another worker frees up
        running = slot.inflight[0].fn.ewma
        deep = depth if slot.ready else DEPTH  # a worker still starting gets no batch to hold up
        if short and running is not None and running < PRESEND_BELOW and n < deep \
                and (n < refill or slot in filling) \
                and slot.unread + len(job.args) < slot.budget and (best is None or n < best_ahead):
            best, best_ahead = slot, n
    return best or starting


def reports_due(slots: list[Slot]) -> bool:
    """Whether every live worker has jobs in flight: its next report dispatches, so the jobs
    submitted meanwhile gather and go in one message (`.pool.Pool.submit` then asks for no dispatch)."""
    live = [s for s in slots if s.pipe is not None and not s.dying]
    return bool(live) and all(s.ready and s.ahead for s in live)


def died_running(slot: Slot) -> None:
    """The slot's worker died while it ran a job (a timeout kill, a crash): that job's function
    counts as slow (twice `BATCH_BELOW`) until a call ends fast, so the rest of its batch spreads
    over the workers instead of going back as one batch, and it is not batched again until
    `COOL_CALLS` of its calls have ended (`.pool.Pool._on_reports`): a function that hangs now
    and then would otherwise hold a batch of others behind each hang, which the other workers
    cannot take over."""
    for job in slot.inflight:
        if job.started and job.fn.ewma is not None:
            job.fn.ewma = max(job.fn.ewma, 2 * BATCH_BELOW)
            job.fn.unbatched = COOL_CALLS
