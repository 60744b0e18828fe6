"""Every example of the user's page on bound tasks (shared/seed-bound-tasks.txt), run unchanged."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

import pytest

import osiiso

pytestmark = [pytest.mark.timeout(30)]


class _FakeClient:
    async def get(self, url: str) -> str:
        await asyncio.sleep(0)
        return f"<html>{url}</html>"


client = _FakeClient()


def test_basic_usage() -> None:
    """The 'Basic Usage' example: decorated fetch, two calls, strict run."""
    async def main() -> Any:
        async with osiiso.AsyncQueue(workers=4) as q:
            @q.task(retries=2, retry_delay=0.25, timeout=10, name="fetch")
            async def fetch(url: str) -> str:
                return await client.get(url)

            # Each call submits a task and returns a TaskHandle
            handle = fetch("https://example.com")
            handle2 = fetch("https://example.org")
            summary = await q.run(strict=True)
        return handle, handle2, summary

    handle, handle2, summary = osiiso.run(main())
    assert handle.value() == "<html>https://example.com</html>"
    assert handle2.name == "fetch"
    assert isinstance(handle, osiiso.TaskHandle)
    assert summary.succeeded == 2


def test_map_and_group_and_overrides() -> None:
    """The map(), group() and 'Overriding Options' examples."""
    async def main() -> Any:
        q = osiiso.AsyncQueue()

        @q.task(retries=2, name="download")
        async def download(url: str) -> bytes: ...

        handles = download.map(["https://a.com", "https://b.com", "https://c.com"])
        group = download.group(["https://a.com", "https://b.com"])
        summary = await q.run()
        values = await group.values()

        @q.task(retries=2, timeout=10)
        async def fetch(url: str) -> str: ...

        urls = ["https://x.com", "https://y.com"]
        # Default options from decorator
        fetch("https://example.com")
        # Override priority for this specific call
        critical = fetch("https://critical.com", priority=0)
        # Override on map too
        mapped = fetch.map(urls, timeout=30)
        await q.run()
        return handles, summary, values, critical, mapped

    handles, summary, values, critical, mapped = osiiso.run(main())
    assert len(handles) == 3 and all(h.options.retries == 2 for h in handles)
    assert summary.succeeded == 5 and values == (None, None)
    assert critical.options.priority == 0 and critical.options.timeout == 10
    assert all(h.options.timeout == 30 and h.options.retries == 2 for h in mapped)


def test_complete_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The 'Complete Example', verbatim, prints the summary and five events."""
    import asyncio
    import osiiso

    async def main():
        events = []
        q = osiiso.AsyncQueue(
            workers=3,
            on_complete=lambda r: events.append(f"{r.name}:{r.status}"),
        )

        @q.task(retries=1, retry_delay=0.01, timeout=5, name="api-call")
        async def call_api(endpoint: str) -> dict:
            await asyncio.sleep(0.01)
            return {"endpoint": endpoint, "status": 200}

        # Submit individual tasks
        call_api("/users")
        call_api("/posts", priority=0)

        # Batch submit
        call_api.map(["/comments", "/likes", "/shares"])

        summary = await q.run(strict=True)
        summary.display()
        print("Events:", events)

    osiiso.run(main())
    out = capsys.readouterr().out
    assert "Events: ['api-call:succeeded', 'api-call:succeeded', 'api-call:succeeded', " \
           "'api-call:succeeded', 'api-call:succeeded']" in out
    assert "5" in out


def test_bound_task_keeps_the_function_identity() -> None:
    """The bound task keeps name, docstring and signature; options() returns a re-configured copy."""
    q = osiiso.AsyncQueue()

    @q.task(retries=2)
    async def fetch(url: str, *, verbose: bool = False) -> str:
        """Fetch a page."""
        return url

    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch a page."
    assert list(inspect.signature(fetch).parameters) == ["url", "verbose"]
    fast = fetch.options(timeout=1, priority=0)
    assert fast.default_options.retries == 2 and fast.default_options.timeout == 1
    assert fetch.default_options.timeout is None
    handle = fetch("u", verbose=True, priority=9)
    assert handle.options.priority == 9
    for h in (handle,):
        h.cancel()
    assert sys.modules["osiiso"] is osiiso
