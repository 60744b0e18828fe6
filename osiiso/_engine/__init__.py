"""The engine package: one engine for every backend, split by owner.

* `engine` — `Engine`: the places a task can be in and every counter about them; admission,
  the hand-out of worker slots (`Engine.dispatch`), retries, results, cancellation.
* `worker` — a worker coroutine: runs the attempts of the tasks it is handed, in its cancel scope.
* `service` — `Service`: the detached task group where workers, timers and hooks live.
* `run` — `Run`: one ``run()``: its results, its stop event, fail-first, its time limit.
* `lanes`, `timers` — the ready tasks of a backend; the tasks that start later.
* `deps`, `hooks`, `ratelimit` — handles as arguments, calling hooks safely, the GCRA limiter.
* `handover` — taking in the tasks other threads submitted (and those cancelled before that).
* `invariants` — what must always hold, as code the tests run.

``docs/internals.md`` describes how they fit.
"""

from .engine import Engine
from .run import Run

__all__ = ("Engine", "Run")
