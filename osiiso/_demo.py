"""The built-in demo behind ``python -m osiiso``: a mixed pipeline on one queue.

1. A small HTTP server (standard library, loopback only) serves generated pages; a few
   answer 503 now and then, a couple never answer in time.
2. **fetch** — coroutine tasks download the pages over TCP (retries, a timeout).
3. **score** — process tasks parse each page and do real CPU work on it.
4. **store** — thread tasks write each score into a SQLite file.

Each stage takes the previous stage's handle as its argument, so a page is scored as soon
as it is fetched and stored as soon as it is scored, all in one run with one summary.
"""

from __future__ import annotations

import hashlib
import http.server
import random
import sqlite3
import sys
import threading
from collections import Counter
from typing import Any

import anyio

__all__ = ("PageServer", "fetch", "score", "store")

_WORDS = ("queue", "thread", "process", "coroutine", "timeout", "retry", "priority", "result", "summary",
          "worker", "loop", "task", "handle", "group", "backend", "pickle", "signal", "future")


def page_text(number: int) -> str:
    """The page the server sends for ``number`` (the same every time)."""
    rng = random.Random(number)
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(200, 1200)))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PageServer

    def do_GET(self) -> None:
        try:
            number = int(self.path.rsplit("/", 1)[-1])
        except ValueError:
            self.send_error(404)
            return
        if number in self.server.stuck:
            self.server.release.wait(30)  # never answers within the client's timeout
            return
        with self.server.lock:
            flaky = self.server.flaky_left.get(number, 0)
            if flaky:
                self.server.flaky_left[number] = flaky - 1
        if flaky:
            self.send_error(503, "try again")
            return
        body = page_text(number).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class PageServer(http.server.ThreadingHTTPServer):
    """Serves generated pages on 127.0.0.1 from a background thread."""

    daemon_threads = True
    request_queue_size = 256  # many fetches connect at once

    def __init__(self, pages: int, seed: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        rng = random.Random(seed)
        self.lock = threading.Lock()
        self.flaky_left = {n: 1 for n in range(pages) if rng.random() < 0.08}
        self.stuck = {n for n in range(pages) if n % 151 == 150}
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, name="osiiso-demo-http", daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A fetch cancelled mid-page (a timeout, Ctrl-C, SIGTERM) hangs up: nothing to report."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.server_address[1])

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)


async def fetch(port: int, number: int) -> str:
    """Download page ``number`` with a minimal HTTP/1.0 client (a coroutine task)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET /page/{number} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while True:
            try:
                chunks.append(await stream.receive())
            except anyio.EndOfStream:
                break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise ConnectionError(f"page {number}: HTTP {status}")
    return body.decode()


def score(text: str) -> dict[str, Any]:
    """Parse a page and score it: word counts plus a deliberately CPU-heavy digest (a process task)."""
    words = text.split()
    counts = Counter(words)
    digest = text.encode()
    for _ in range(4000):  # stands in for real parsing work: about 5 ms of CPU
        digest = hashlib.sha256(digest).digest()
    return {"words": len(words), "distinct": len(counts), "top": counts.most_common(1)[0][0],
            "score": int.from_bytes(digest[:2], "big") / 65535 * len(counts), "digest": digest.hex()[:16]}


_local = threading.local()


def store(path: str, number: int, scored: dict[str, Any]) -> int:
    """Write one page's score into SQLite (a thread task; one connection per pool thread)."""
    connection = getattr(_local, "connection", None)
    if connection is None or getattr(_local, "path", None) != path:
        connection = _local.connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
        _local.path = path
    with connection:
        connection.execute(
            "INSERT OR REPLACE INTO pages (number, words, distinct_words, top_word, score, digest) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (number, scored["words"], scored["distinct"], scored["top"], scored["score"], scored["digest"]),
        )
    return number


def create_database(path: str) -> None:
    """Create the demo's table (WAL mode, so pool threads can write side by side)."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS pages (number INTEGER PRIMARY KEY, words INTEGER, "
                           "distinct_words INTEGER, top_word TEXT, score REAL, digest TEXT)")
    connection.close()


def best_pages(path: str, limit: int = 3) -> list[tuple[int, float, str]]:
    """The highest-scoring pages stored."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT number, score, top_word FROM pages ORDER BY score DESC LIMIT ?",
                                  (limit,)).fetchall()
    finally:
        connection.close()
    return [(int(n), float(s), str(t)) for n, s, t in rows]
