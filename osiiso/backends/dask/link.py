"""The link to the cluster: the dask ``Client``, the loop it runs on, and the jobs it carries.

dask's async client needs an asyncio loop. On asyncio and uvloop that is the queue's own
loop: `Link` runs there, and a job costs no thread hop (a hop through a thread measured 2 to
10 ms more per round trip on the benchmarks' 2-core machine, where a round trip takes about
12 ms). On trio the link runs an asyncio loop in a thread of its own (``osiiso-dask``), and
the two loops only exchange records:

* the queue's loop hands over jobs and cancels with `Link.send` (a deque and one
  ``call_soon_threadsafe`` per batch, however many jobs it holds); a batch is sent with one
  ``client.map`` per priority, and the values of the futures that finish together are
  fetched with one ``client.gather`` (at most `GATHERS` in flight: what finishes meanwhile
  goes in the next one);
* the link hands back finished jobs and start announcements with ``LoopCaller.call``
  (again one call per batch), and the backend wakes the attempt.

On asyncio the same deques are used, drained by plain ``call_soon`` callbacks. The embedded
cluster (`.cluster`) always runs its scheduler in a thread of its own, never on the queue's loop.

A job (`DaskJob`) is one attempt. In the dask thread it becomes one dask future
(``client.map(run_payload, ...)`` with ``pure=False``, ``retries=0`` and the priority
turned around: dask runs higher numbers first), watched by one asyncio task until the
future ends; the backend then drops the future (or keeps it for dependents, `.chains`), so
dask forgets its result. A value of at most `.remote.INLINE_BYTES` pickled also comes as an
event on the topic named by the client's id (with the start announcements): the job is done
when the first of the two arrives, and the other is ignored, so a small value costs no
``gather`` (a request through the scheduler to the worker) — the scheduler drops the topic's
events itself once the client has gone. Only this module touches the client, and only from
the link's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..._events import osiiso_logger
from ..._loops import LoopCaller
from .client import CLOSE_TIMEOUT, close_half_open, close_in_a_thread, mark_closed, open_clients
from .cluster import close_local_cluster, start_local_cluster
from .codec import connection_lost, scheduler_gone
from .job import DaskJob
from .options import DaskOptions, scheduler_address
from .remote import run_payload

__all__ = ("Link",)

logger = osiiso_logger

#: most ``gather`` requests in flight at once: values that finish meanwhile wait and go together
#: in the next one (many small requests cost the scheduler more than a few big ones), and two
#: let small values pass one big transfer
GATHERS = 2

#: what `Link.call` returns: an asyncio future on the queue's loop, or a concurrent one (trio)
Outcome = concurrent.futures.Future[Any] | asyncio.Future[Any]


class Link:
    """The client and the loop it runs on (the queue's, or a thread's); `open` connects, `aclose` closes.

    ``loop`` is the queue's asyncio loop, or ``None`` (trio) for a loop in a thread of
    its own. ``finished(jobs)`` and ``started(jobs)`` are called on the queue's loop
    (through ``caller``) with the jobs that ended, and those whose start was announced.
    """

    def __init__(self, options: DaskOptions, processes: int, caller: LoopCaller,
                 finished: Callable[[list[DaskJob]], None], started: Callable[[list[DaskJob]], None],
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self.options = options
        self.processes = processes
        self.caller = caller
        self._finished, self._started = finished, started
        self.loop = loop or asyncio.new_event_loop()
        self._soon = self.loop.call_soon if loop is not None else self.loop.call_soon_threadsafe
        self._report_soon = caller.call_local if loop is not None else caller.call
        self.client: Any = None
        self.cluster: Any = None  # the embedded cluster, if this thread started one
        self.address: str | None = None
        self.topic = ""  # the client's id, once connected (`open`)
        self.restarts = 0
        self.closing = False
        self._jobs: dict[str, DaskJob] = {}
        self._inbox: deque[tuple[bool, DaskJob]] = deque()
        self._inbox_armed = False
        self._outbox: deque[tuple[bool, DaskJob]] = deque()
        self._outbox_armed = False
        self._restarting: set[str] = set()
        self._gathering: list[tuple[DaskJob, Any]] = []
        self._gathers = 0  # gather requests in flight (at most GATHERS)
        self.thread: threading.Thread | None = None
        if loop is None:
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

    def call(self, coro: Callable[[], Coroutine[Any, Any, Any]]) -> Outcome:
        """Run ``coro()`` on the link's loop (from the queue's loop); a future of its outcome."""
        if self.thread is None:
            return asyncio.ensure_future(coro())
        return asyncio.run_coroutine_threadsafe(coro(), self.loop)

    # -- connecting ---------------------------------------------------------------------------
    async def open(self) -> int:
        """Connect (starting the embedded cluster first if needed); return the cluster's worker threads."""
        from .client import client_class

        options = self.options
        address, security = scheduler_address(options.cluster)
        if address is None:
            self.cluster = await self.loop.run_in_executor(None, start_local_cluster, options, self.processes)
            address = self.cluster.scheduler_address
        self.address = address
        # made first and awaited next: a connection that fails or is cancelled half-way still
        # has a client object, which must be closed here (nobody else knows of it)
        client = client_class()(address, asynchronous=True, set_as_default=False,
                                timeout=options.connect_timeout, security=security)
        try:
            await client
        except BaseException as exc:
            close_half_open(self.loop, client)
            if isinstance(exc, (OSError, asyncio.TimeoutError)):
                raise ConnectionError(
                    f"the dask backend could not reach the scheduler at {address!r} within "
                    f"{options.connect_timeout:g}s ({exc}) — start it (dask scheduler) or fix the "
                    "address") from exc
            raise
        self.client = client
        open_clients.add(client)
        # workers report starts and small values on the topic named by the client's id: the
        # scheduler drops that topic's events itself once the client has gone
        self.topic = str(self.client.id)
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
                self._soon(self._drain_inbox)
            except RuntimeError:  # the link's loop is closed: nothing runs there any more
                self._inbox_armed = False
                if not cancel:
                    job.error = ConnectionError("the dask backend's client is closed")
                    self._report(True, job)

    def _drain_inbox(self) -> None:
        self._inbox_armed = False  # before popping: a job appended after this schedules a new drain
        inbox = self._inbox
        batch: dict[int, list[DaskJob]] = {}  # by priority, in order of arrival
        while inbox:
            cancel, job = inbox.popleft()
            if cancel:
                self._submit(batch)
                batch = {}
                self._cancel(job)
            elif not job.abandoned:
                batch.setdefault(job.priority, []).append(job)
        self._submit(batch)

    def _submit(self, batch: dict[int, list[DaskJob]]) -> None:
        """One ``client.map`` per priority: one graph message and one scheduler update for many jobs.

        ``fifo_timeout=0`` gives every call a new generation, so dask orders equal priorities
        by submission (its own ties go last-in first-out), and jobs within a call by position.
        """
        for priority, jobs in batch.items():
            try:
                if self.client is None or self.closing:
                    raise ConnectionError("the dask backend's client is closed")
                if self.client.status in ("closing", "closed"):  # it gave up reconnecting
                    raise scheduler_gone(self.address, self.options.connect_timeout)
                futures = self.client.map(
                    run_payload, [j.fn_blob for j in jobs], [j.args_blob for j in jobs], [j.topic for j in jobs],
                    [j.upstream for j in jobs], [self.topic] * len(jobs), key=[j.key for j in jobs], pure=False,
                    priority=-priority, retries=0, fifo_timeout=0)
            except Exception as exc:
                for job in jobs:
                    job.error = exc
                    self._report(True, job)
                continue
            for job, future in zip(jobs, futures, strict=True):
                job.future = future
                job.fn_blob = job.args_blob = b""
                job.upstream = []  # the dependent's task on the scheduler holds them now
                self._jobs[job.key] = job
                self.loop.create_task(self._watch(job, future))

    async def _watch(self, job: DaskJob, future: Any) -> None:
        """Wait for ``job``'s future; a value joins the next batched gather, anything else is reported."""
        try:
            await future._state.wait()  # what dask's own wait() and as_completed() await
            if job.key not in self._jobs:
                return  # its value came as an event (and the backend may have let the future go)
            if future.status == "finished":
                self._gathering.append((job, future))
                if len(self._gathering) == 1 and self._gathers < GATHERS:
                    self.loop.call_soon(self._start_gather)
                return
            job.raw = await future  # raises: the error, KilledWorker or the cancel
        except BaseException as exc:  # a cancel, a lost scheduler, loop shutdown
            job.error = self._lost(exc)
        self._done(job)

    def _start_gather(self) -> None:
        if self._gathers >= GATHERS:
            return  # the next gather to end takes what waits
        waiting, self._gathering = self._gathering, []
        batch = [(job, future) for job, future in waiting if job.key in self._jobs]  # not reported by an event
        if batch:
            self._gathers += 1
            self.loop.create_task(self._gather(batch))

    async def _gather(self, batch: list[tuple[DaskJob, Any]]) -> None:
        """Fetch the values of every future that finished since the last gather began, in one request."""
        try:
            values = await self.client.gather([future for _, future in batch])
            for (job, _), value in zip(batch, values, strict=True):
                if job.key in self._jobs:  # not reported by an event meanwhile
                    job.raw = value
        except BaseException:  # one failed (its data lost, say): each on its own, to name the failure
            for job, future in batch:
                if job.key not in self._jobs:
                    continue
                try:
                    job.raw = await future
                except BaseException as exc:
                    job.error = self._lost(exc)
        finally:
            self._gathers -= 1
            for job, _ in batch:
                self._done(job)
            del batch
            if self._gathering and not self.closing:
                self._start_gather()
            elif self._gathering:  # the client is going: no new request, the futures go with it
                waiting, self._gathering = self._gathering, []
                for job, _ in waiting:
                    job.error = ConnectionError("the dask backend's client is closed")
                    self._done(job)

    def _done(self, job: DaskJob) -> None:
        """``job``'s future ended: report it. The backend takes the future of a job it waits for
        (to keep it for dependents, `.chains`, or drop it); an abandoned job's goes now.
        Only the first report counts: a small value comes both as an event and with the future."""
        if self._jobs.pop(job.key, None) is None:
            return
        if job.abandoned:
            job.future = None
        self._report(True, job)

    def _lost(self, error: BaseException) -> BaseException:
        """``error``, or a ``ConnectionError`` if it is a cancel because the client lost the scheduler."""
        if self.closing or self.client is None:
            return error
        return connection_lost(error, self.client.status, self.address)

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
        """A worker began a job (``[key, worker, pid]``) or sent its small value (``[key, blob]``)."""
        message = event[1]
        if not isinstance(message, (list, tuple)) or len(message) not in (2, 3):
            return  # dask's own news about this client (a dict)
        job = self._jobs.get(message[0])
        if job is None:  # reported already (its value came the other way), or not ours
            return
        if len(message) == 2:
            job.raw = (True, message[1])
            self._done(job)
            return
        job.where = message[1]
        self._report(False, job)

    def _report(self, done: bool, job: DaskJob) -> None:
        self._outbox.append((done, job))
        if not self._outbox_armed:
            self._outbox_armed = True
            if self._report_soon(self._drain_outbox) is False:
                self._outbox_armed = False  # the queue's loop is gone: nobody waits for these
                self._outbox.clear()

    def _drain_outbox(self) -> None:
        """On the queue's loop: hand over what the link reported since the last drain."""
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
        """On the link's loop: close the client, then the embedded cluster (each within a bound)."""
        self.closing = True
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                open_clients.discard(client)
                try:
                    # first, so the scheduler does not send this client the news of its own leaving
                    client.unsubscribe_topic(self.topic)
                    # timeout=None: the coroutine itself, started at once by wait_for (dask's own
                    # timeout wrapper would never start it if this task is cancelled first)
                    await asyncio.wait_for(client.close(timeout=None), CLOSE_TIMEOUT)
                except Exception:
                    logger.warning("osiiso: the dask client did not close cleanly", exc_info=True)
                finally:  # even if this was cancelled: dask's Client.__del__ must not try again
                    client.status = "closed"
            if cluster is not None:
                await self.loop.run_in_executor(None, close_local_cluster, cluster, CLOSE_TIMEOUT)
                cluster = None
        finally:
            if cluster is not None:  # cancelled before its turn (the queue's loop is ending)
                close_in_a_thread(cluster)
            if self.thread is not None:
                self.loop.call_soon(self.loop.stop)

    def close_soon(self) -> None:
        """From any thread, without waiting: close everything (and let the thread end).

        If the link's loop is gone already (a queue collected after its loop closed), the
        embedded cluster is still closed, from a thread of its own.
        """
        def begin() -> None:
            client = self.client
            task = self.loop.create_task(self.aclose())
            if client is not None:  # a task cancelled before its first step never runs aclose's finally
                task.add_done_callback(lambda _: mark_closed(client))

        try:
            self.loop.call_soon_threadsafe(begin)
        except RuntimeError:  # the loop is closed
            client, self.client = self.client, None
            if client is not None:  # its connections went with the loop: nothing to close, nor to warn about
                open_clients.discard(client)
                client.status = "closed"
            cluster, self.cluster = self.cluster, None
            if cluster is not None:
                close_in_a_thread(cluster)
