"""A long-running service: ``mode="infinite"``, fed from another thread, shut down cleanly.

What it shows
-------------
* ``AsyncQueue(mode="infinite")``: ``await q.run()`` does not return when the queue runs
  dry; it serves whatever arrives until ``await q.shutdown()`` (or a run timeout).
* A producer on a plain ``threading.Thread`` (think: a socket listener, a file watcher,
  a GUI) feeding the queue with ``q.submit(...)``, which is safe from any thread once the
  queue has started: the call hands the task over to the event loop.
* Results consumed as they complete, with the ``on_complete`` hook (it runs on the event
  loop's thread, once per task, whatever the outcome).
* A clean stop: once the producer is done, the main task calls ``await q.shutdown()``:
  no new task is accepted, the ones in flight finish, ``run()`` returns its summary and
  the worker threads are released.

Run it with::

    python examples/service.py
"""

from __future__ import annotations

import hashlib
import random
import threading
import time

import anyio

import osiiso

EVENTS = 20  # how many events the producer thread submits before it stops


async def handle_event(event_id: int, payload: bytes) -> int:
    """Coroutine task: pretend to call another service about one event."""
    await anyio.sleep(random.uniform(0.01, 0.05))  # network latency
    if payload.startswith(b"!"):
        raise ValueError(f"event {event_id}: malformed payload")
    return len(payload)


def write_audit(event_id: int, payload: bytes) -> str:
    """Thread task: blocking work (a stand-in for a file or database write)."""
    time.sleep(0.005)
    return hashlib.sha256(payload).hexdigest()[:10]


def produce(q: osiiso.AsyncQueue, count: int) -> None:
    """The producer thread: submits events at its own pace, then returns."""
    rng = random.Random(1)
    for event_id in range(count):
        payload = (b"!" if event_id % 10 == 7 else b"") + rng.randbytes(rng.randint(10, 100))
        q.submit(handle_event, event_id, payload, name=f"event-{event_id}")  # async: auto
        if event_id % 4 == 0:  # every fourth event also leaves an audit trail
            q.submit(write_audit, event_id, payload, backend="thread", name=f"audit-{event_id}")
        time.sleep(0.02)  # events trickle in


async def main() -> osiiso.RunSummary:
    received = 0

    def on_complete(result: osiiso.TaskResult) -> None:
        """Called once per finished task, on the event loop's thread: consume its result here."""
        nonlocal received
        received += 1
        outcome = result.value if result.ok else f"{type(result.exception).__name__}: {result.exception}"
        print(f"  {received:2d}. {result.name:<9} {result.status:<9} {outcome}")

    q = osiiso.AsyncQueue(mode="infinite", workers=8, on_complete=on_complete)
    await q.start()  # from now on, q.submit() may be called from any thread

    summary: osiiso.RunSummary | None = None

    async def serve() -> None:
        nonlocal summary
        summary = await q.run()  # infinite mode: returns only after shutdown()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        producer = threading.Thread(target=produce, args=(q, EVENTS), name="producer")
        producer.start()
        # Wait for the producer without blocking the event loop (join() blocks, so it runs
        # in a worker thread of anyio).
        await anyio.to_thread.run_sync(producer.join)
        print(f"producer done; {q.active_count} running, {q.pending_count} pending — shutting down")
        await q.shutdown()  # accepts no new task, finishes the rest; then run() returns
    assert summary is not None
    return summary


if __name__ == "__main__":
    print(f"serving {EVENTS} events from a producer thread:")
    summary = osiiso.run(main)
    summary.display()
    print(f"served {summary.total_submitted} tasks: {summary.succeeded} succeeded, {summary.failed} failed "
          f"(every tenth event is malformed on purpose)")
