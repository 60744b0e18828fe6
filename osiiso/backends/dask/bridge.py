"""The dask thread: an asyncio loop of its own that owns the dask ``Client`` (and the embedded cluster).

dask's async client needs asyncio, and its comms, heartbeats and (embedded) scheduler must
not run on the queue's loop, which may be trio, uvloop or plain asyncio. So for every loop
the client lives in one thread, `DaskThread`, and the two loops only exchange records:

* the queue's loop hands over jobs and cancels with `DaskThread.send` (a deque and one
  ``call_soon_threadsafe`` per batch, however many jobs it holds);
* the dask thread hands back finished jobs and start announcements with
  ``LoopCaller.call`` (again one call per batch), and the backend wakes the attempt.

A job (`DaskJob`) is one attempt. In the dask thread it becomes one dask future
(``client.submit(run_payload, ...)`` with ``pure=False``, ``retries=0`` and osiiso's order
as dask's priority, see `DaskJob`), watched by one asyncio task until the
future ends; the future is then dropped, so dask forgets its result. Only this module
touches the client, and only from the dask thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..._loops import LoopCaller
from .cluster import release_cluster_slot, start_local_cluster
from .options import DaskOptions, scheduler_address
from .remote import run_payload

__all__ = ("DaskJob", "DaskThread")

logger = logging.getLogger("osiiso")

#: seconds the client and the embedded cluster get to close
CLOSE_TIMEOUT = 20.0


class DaskJob:
    """One attempt on the cluster: what is sent, what came back, and where it ran.

    ``raw`` is what `run_payload` returned, ``error`` what awaiting the future raised
    instead (``KilledWorker``, a cancellation, a lost connection). ``abandoned``: the
    attempt was cancelled or timed out; whatever comes back is dropped. ``where`` is the
    worker that announced the start (only for announced jobs).
    """

    __slots__ = (
        "abandoned",
        "args_blob",
        "attempt",
        "done",
        "error",
        "fn_blob",
        "future",
        "key",
        "name",
        "priority",
        "raw",
        "topic",
        "waiter",
        "where",
    )

    def __init__(self, attempt: Any, fn_blob: bytes, args_blob: bytes, topic: str | None) -> None:
        self.attempt = attempt
        self.name: str = attempt.name
        self.key = f"{attempt.name}-{uuid.uuid4().hex}"
        self.fn_blob, self.args_blob = fn_blob, args_blob
        # dask runs higher priorities first, and breaks ties last-in first-out: osiiso's order
        # (lower priority first, then submission) is -(priority + seq / 2**32), exact for any
        # priority below 2**20 in size and the first 2**32 tasks
        self.priority: float = -(attempt.priority + attempt.seq / 2**32)
        self.topic = topic
        self.done = self.abandoned = False
        self.raw: Any = None
        self.error: BaseException | None = None
        self.future: Any = None
        self.waiter: Any = None
        self.where: str | None = None


class DaskThread:
    """The thread, its loop and the client; `open` connects, `close` stops all three.

    ``finished(jobs)`` and ``started(jobs)`` are called on the queue's loop (through
    ``caller``) with the jobs that ended, and those whose start was announced.
    """

    def __init__(self, options: DaskOptions, processes: int, caller: LoopCaller,
                 finished: Callable[[list[DaskJob]], None], started: Callable[[list[DaskJob]], None]) -> None:
        self.options = options
        self.processes = processes
        self.caller = caller
        self._finished, self._started = finished, started
        self.loop = asyncio.new_event_loop()
        self.client: Any = None
        self.cluster: Any = None  # the embedded cluster, if this thread started one
        self.address: str | None = None
        self.topic = f"osiiso-start-{uuid.uuid4().hex}"
        self.restarts = 0
        self.closing = False
        self._jobs: dict[str, DaskJob] = {}
        self._inbox: deque[tuple[bool, DaskJob]] = deque()
        self._inbox_armed = False
        self._outbox: deque[tuple[bool, DaskJob]] = deque()
        self._outbox_armed = False
        self._restarting: set[str] = set()
        self.thread = threading.Thread(target=self._main, name="osiiso-dask", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for task in pending:
                    task.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def call(self, coro: Callable[[], Coroutine[Any, Any, Any]]) -> concurrent.futures.Future[Any]:
        """Run ``coro()`` on the dask loop (from any thread); its outcome as a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro(), self.loop)

    # -- connecting ---------------------------------------------------------------------------
    async def open(self) -> int:
        """Connect (starting the embedded cluster first if needed); return the cluster's worker threads."""
        from distributed import Client

        options = self.options
        address, security = scheduler_address(options.cluster)
        if address is None:
            self.cluster = await asyncio.wait_for(start_local_cluster(options, self.processes),
                                                  options.connect_timeout)
            address = self.cluster.scheduler_address
        self.address = address
        try:
            self.client = await Client(address, asynchronous=True, set_as_default=False,
                                       timeout=options.connect_timeout, security=security)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionError(
                f"the dask backend could not reach the scheduler at {address!r} within "
                f"{options.connect_timeout:g}s ({exc}) — start it (dask scheduler) or fix the address") from exc
        self.client.subscribe_topic(self.topic, self._on_start_event)
        threads: dict[str, int] = await self.client.nthreads()
        return sum(threads.values())

    # -- jobs in ------------------------------------------------------------------------------
    def send(self, job: DaskJob, cancel: bool = False) -> None:
        """From the queue's loop: submit ``job``, or (``cancel``) stop it. Batched per loop turn."""
        self._inbox.append((cancel, job))
        if not self._inbox_armed:
            self._inbox_armed = True
            try:
                self.loop.call_soon_threadsafe(self._drain_inbox)
            except RuntimeError:  # the dask loop is closed: nothing runs there any more
                self._inbox_armed = False
                if not cancel:
                    job.error = ConnectionError("the dask backend's client is closed")
                    self._report(True, job)

    def _drain_inbox(self) -> None:
        self._inbox_armed = False  # before popping: a job appended after this schedules a new drain
        inbox = self._inbox
        while inbox:
            cancel, job = inbox.popleft()
            if cancel:
                self._cancel(job)
            elif not job.abandoned:
                self._submit(job)

    def _submit(self, job: DaskJob) -> None:
        try:
            if self.client is None or self.closing:
                raise ConnectionError("the dask backend's client is closed")
            future = self.client.submit(run_payload, job.fn_blob, job.args_blob, job.topic, key=job.key,
                                        pure=False, priority=job.priority, retries=0)
        except Exception as exc:
            job.error = exc
            self._report(True, job)
            return
        job.future = future
        job.fn_blob = job.args_blob = b""
        self._jobs[job.key] = job
        self.loop.create_task(self._watch(job, future))

    async def _watch(self, job: DaskJob, future: Any) -> None:
        try:
            job.raw = await future
        except BaseException as exc:  # KilledWorker, a cancel, a lost scheduler, loop shutdown
            job.error = exc
        finally:
            self._jobs.pop(job.key, None)
            job.future = None
            del future
            self._report(True, job)

    def _cancel(self, job: DaskJob) -> None:
        future = job.future
        if future is None or future.done():
            return
        self.loop.create_task(self._stop(job, future))

    async def _stop(self, job: DaskJob, future: Any) -> None:
        """Cancel ``job``'s future; with ``hard_stop``, restart the worker it runs on."""
        where = job.where if self.options.hard_stop else None
        try:
            await self.client.cancel([future], reason="osiiso: the attempt timed out or was cancelled")
            if where is not None and where not in self._restarting:
                self._restarting.add(where)
                try:
                    await self.client.restart_workers([where], timeout=self.options.connect_timeout,
                                                      raise_for_error=False)
                    self.restarts += 1
                finally:
                    self._restarting.discard(where)
        except Exception:  # a closing client: the future goes with it
            logger.debug("osiiso: cancelling dask future %s failed", job.key, exc_info=True)

    # -- jobs out -----------------------------------------------------------------------------
    def _on_start_event(self, event: tuple[float, Any]) -> None:
        key, where = event[1][0], event[1][1]
        job = self._jobs.get(key)
        if job is not None:
            job.where = where
            self._report(False, job)

    def _report(self, done: bool, job: DaskJob) -> None:
        self._outbox.append((done, job))
        if not self._outbox_armed:
            self._outbox_armed = True
            if not self.caller.call(self._drain_outbox):
                self._outbox_armed = False  # the queue's loop is gone: nobody waits for these
                self._outbox.clear()

    def _drain_outbox(self) -> None:
        """On the queue's loop: hand over what the dask thread reported since the last drain."""
        self._outbox_armed = False
        outbox = self._outbox
        done: list[DaskJob] = []
        started: list[DaskJob] = []
        while outbox:
            is_done, job = outbox.popleft()
            (done if is_done else started).append(job)
        if started:
            self._started(started)
        if done:
            self._finished(done)

    # -- closing ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """On the dask loop: close the client, then the embedded cluster (each within a bound)."""
        self.closing = True
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                try:
                    await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)
                except Exception:
                    logger.warning("osiiso: the dask client did not close cleanly", exc_info=True)
            if cluster is not None:
                try:
                    await asyncio.wait_for(cluster.close(), CLOSE_TIMEOUT)
                except Exception:
                    logger.warning("osiiso: the embedded dask cluster did not close cleanly", exc_info=True)
                finally:
                    release_cluster_slot()
        finally:
            self.loop.call_soon(self.loop.stop)

    def close_soon(self) -> None:
        """From any thread, without waiting: close everything and let the thread end."""
        try:
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self.aclose()))
        except RuntimeError:  # already closed
            pass
