"""A script written for the original osiiso's ThreadQueue (1.1, as its README shows it).

tests/test_migrating.py runs it against this package, unchanged: only the package differs.
"""

import time

import osiiso
from osiiso import ClosedError, ExecutionError, SyncTaskGroup, SyncTaskHandle, ThreadQueue, iter_completed


def resize(path: str) -> str:
    time.sleep(0.05)
    return f"resized {path}"


def broken(path: str) -> str:
    raise OSError(f"cannot read {path}")


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


with ThreadQueue(workers=4) as q:
    q.map(resize, ["a.png", "b.png", "c.png"], name="resize")
    summary = q.run(strict=True)

print(summary.values)
assert summary.ok and summary.succeeded == 3 and summary.timed_out is False

completed = []
q = ThreadQueue(workers=2, on_complete=lambda r: completed.append(r.name))
handle = q.submit(resize, "d.png", retries=2, timeout=5, name="resize-d", priority=0)
assert isinstance(handle, SyncTaskHandle) and handle.priority == 0
q.run()
result = handle.wait(timeout=5)
assert result.status == "succeeded" and handle.value() == "resized d.png" and handle.done()

group = q.group([(resize, "e.png"), (resize, "f.png")], group_id="batch")
assert isinstance(group, SyncTaskGroup) and len(group) == 2
q.run()
assert group.values() == ("resized e.png", "resized f.png")
assert sorted(h.value() for h in iter_completed(group.handles, timeout=5)) == ["resized e.png", "resized f.png"]
assert sorted(h.name for h in group.as_completed(timeout=5)) == ["resize", "resize"]

q.submit(broken, "g.png", name="broken")
q.submit(resize, "h.png", detached=True)
summary = q.run()
assert not summary.ok and summary.failed == 1 and len(summary.successes()) == 0
for r in summary.errors:
    print("failed:", r.name, "-", r.message)
try:
    summary.raise_for_errors()
except ExecutionError as exc:
    assert exc.results[0].name == "broken"
assert any(r.detached for r in q.results)

q.submit(nap, 1.0, name="nap")
summary = q.run(timeout=0.2)
assert summary.timed_out is True and not summary.ok and len(summary.cancellations()) == 1
assert "broken" in completed and "nap" in completed

q.cancel()
try:
    q.submit(resize, "i.png")
except ClosedError:
    print("closed after cancel()")
q.reset()

bounded = ThreadQueue(workers=2, size=2)
with bounded:
    for name in "jklmn":
        bounded.submit(resize, f"{name}.png")  # waits for room on a full queue
assert len(bounded.results) == 5

print(osiiso.tmap(resize, ["x.png", "y.png"], workers=2, rate=100))
print("thread script ok")
