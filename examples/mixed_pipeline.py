"""A mixed pipeline in one queue: fetch with coroutines, parse in processes, store from a thread.

What it shows
-------------
* One ``AsyncQueue``, one ``run()``, one summary for three kinds of work:
  - ``fetch``: a coroutine task (I/O) that downloads a page over HTTP;
  - ``parse``: a process task (real CPU work: word counts and a hash chain);
  - ``store``: a thread task that writes the parsed page into a SQLite file.
* Handles as arguments: passing a ``TaskHandle`` to ``submit`` makes it a dependency.
  The task waits for it (without holding a worker) and receives its *value*, so each
  page is a one-line-per-stage chain, ``store(parse(fetch(url)))``.

No network is needed: the script starts a tiny stdlib HTTP server on 127.0.0.1 (in a
thread, loopback only) that serves generated pages, and writes its database into a
temporary directory that is removed at the end.

Run it with::

    python examples/mixed_pipeline.py
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.server
import random
import sqlite3
import tempfile
import threading
import urllib.parse
from pathlib import Path

import anyio

import osiiso

PAGES = 12  # how many pages to fetch, parse and store
WORDS_PER_PAGE = 20_000
HASH_ROUNDS = 40_000  # CPU work per page in parse(): about 20-40 ms


# --- a tiny local web site ----------------------------------------------------------------
VOCABULARY = ["queue", "task", "thread", "process", "coroutine", "loop", "worker", "result", "retry",
              "timeout", "pipeline", "handle", "summary", "priority", "backend", "pickle", "future"]


class PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``/page/<n>``: a deterministic page of random words (same n, same page)."""

    def do_GET(self) -> None:
        _, _, number = self.path.rpartition("/")
        if not self.path.startswith("/page/") or not number.isdigit():
            self.send_error(404)
            return
        rng = random.Random(int(number))
        body = " ".join(rng.choices(VOCABULARY, k=WORDS_PER_PAGE)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the example's output quiet


class PageServer(http.server.ThreadingHTTPServer):
    # The default listen backlog (5) is smaller than the number of fetches in flight: the
    # extra connection attempts would be dropped and retried by the kernel a second later.
    request_queue_size = 64


# --- the three stages -----------------------------------------------------------------------
async def fetch(url: str) -> str:
    """Coroutine task: GET ``url`` (plain HTTP/1.0 over an anyio TCP stream) and return the body."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    async with await anyio.connect_tcp(parts.hostname, parts.port) as stream:
        await stream.send(f"GET {parts.path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        chunks = []
        while True:
            try:
                chunks.append(await stream.receive())
            except anyio.EndOfStream:  # HTTP/1.0: the server closes the connection when done
                break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise ConnectionError(f"GET {url} answered {status.decode()}")
    return body.decode()


def parse(url: str, text: str) -> dict[str, object]:
    """Process task: count the words and derive a score from a hash chain (CPU-bound work).

    It runs in a worker process: its arguments (here ``text``, the value of the
    ``fetch`` task) and its return value travel by pickle, so it returns plain data.
    """
    counts = collections.Counter(text.split())
    digest = hashlib.sha256(text.encode()).digest()
    for _ in range(HASH_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return {
        "url": url,
        "words": sum(counts.values()),
        "top": counts.most_common(1)[0][0],
        "score": digest[0],  # 0-255, stands in for some expensive relevance score
    }


def store(db_path: str, page: dict[str, object]) -> str:
    """Thread task: write one parsed page into SQLite (sqlite3 is blocking, so a thread runs it)."""
    # One connection per call: a connection belongs to the thread that opened it, and the
    # thread pool may run each call on a different thread. ``timeout`` waits for the lock
    # when two store() calls write at the same time.
    db = sqlite3.connect(db_path, timeout=10)
    try:
        with db:  # commits on success, rolls back on error
            db.execute("INSERT INTO pages (url, words, top_word, score) VALUES (?, ?, ?, ?)",
                       (page["url"], page["words"], page["top"], page["score"]))
    finally:
        db.close()
    return str(page["url"])


# --- wiring it up -----------------------------------------------------------------------------
async def main(base_url: str, db_path: str) -> osiiso.RunSummary:
    q = osiiso.AsyncQueue(workers=8)
    for n in range(PAGES):
        url = f"{base_url}/page/{n}"
        # Each stage is one line. ``page`` and ``parsed`` are TaskHandles; passed as
        # arguments they are dependencies: parse() starts once fetch() succeeded and gets
        # the page text, store() starts once parse() succeeded and gets its dict.
        # If a stage fails, the stages after it end "failed" with DependencyError.
        page = q.submit(fetch, url, timeout=5, retries=2, retry_delay=0.1)  # async: auto
        parsed = q.submit(parse, url, page, backend="process")
        q.submit(store, db_path, parsed, backend="thread")
    # One run for everything: it returns when every task (dependents included) has ended.
    summary = await q.run()
    await q.shutdown()  # stop the worker processes and threads
    return summary


def serve_pages() -> PageServer:
    """Start the local web site on a free port of 127.0.0.1, in a daemon thread."""
    server = PageServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, name="pages", daemon=True).start()
    return server


if __name__ == "__main__":
    server = serve_pages()
    host, port = server.server_address[:2]
    with tempfile.TemporaryDirectory(prefix="osiiso-pipeline-") as tmp:
        db_path = str(Path(tmp) / "pages.db")
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            db.execute("CREATE TABLE pages (url TEXT PRIMARY KEY, words INTEGER, top_word TEXT, score INTEGER)")

        try:
            summary = osiiso.run(main, f"http://{host}:{port}", db_path)
        finally:
            server.shutdown()
            server.server_close()

        summary.display()

        # Read back what the thread tasks wrote.
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            rows = db.execute("SELECT url, words, top_word, score FROM pages ORDER BY score DESC").fetchall()
        print(f"stored {len(rows)} pages in {db_path} (removed at exit); top scores:")
        for url, words, top_word, score in rows[:3]:
            print(f"  {score:3d}  {url}  ({words} words, most common: {top_word!r})")

    raise SystemExit(0 if summary.ok else 1)
