"""The parent's ends of a worker's two pipes: writes that never block the loop, reads that never block the supervisor.

`TaskPipe` carries commands to one worker. `TaskPipe.send` (the loop thread) writes what the
pipe takes at once, without blocking, and leaves the rest in an outbox that the supervisor
thread writes as the worker reads (`TaskPipe.flush`, when the pipe is writable): a big
argument for a worker still running its initializer never stalls the event loop. Closing a
pipe with bytes still in its outbox waits for them (`TaskPipe.close`); the time of the request
is kept, so the supervisor can kill a worker that does not exit after it (`closing_since`).
One lock per pipe orders the writes of both threads and its closing, so no thread ever writes
to a descriptor another has closed (and the kernel may have handed out again).

`ResultReader` cuts a worker's result pipe into messages. It reads what is there without
blocking, keeps a partial frame for the next time, and refuses what is not a frame of ours:
a length that cannot be, or a payload that does not open as a worker's pickles do
(`ResultReader.read` says why). One junk write then costs that worker, never the supervisor thread.

Frames are `multiprocessing.connection`'s, so the worker keeps its plain blocking
``Connection.send_bytes`` and ``recv_bytes``: a 4-byte big-endian signed length (or ``-1``
and an 8-byte length, past 2 GiB), then the payload.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection

__all__ = ("ResultReader", "TaskPipe")

_SMALL = 16384  # below this, header and payload go out in one copied write (as multiprocessing does)
_CHUNK = 1 << 16  # bytes asked of a result pipe per read
_TURN = 1 << 22  # bytes read from one worker per call, so that one big result never starves the others
_PICKLE = b"\x80\x05"  # how every payload starts: a pickle of protocol 5 (see `.child.PROTOCOL`)
_FRAME = 0x95  # pickle's FRAME opcode, which follows PROTO in every message a worker sends
_FRAMED = 11  # PROTO 5, FRAME and its 8-byte length
_OPENING = _PICKLE + bytes([_FRAME])
_LENGTH, _LONG_LENGTH, _FRAME_LENGTH = struct.Struct(">i"), struct.Struct(">Q"), struct.Struct("<Q")


def _plausible(buf: bytearray, at: int, have: int, size: int) -> bool:
    """Whether the payload of ``size`` bytes at ``buf[at:]``, of which ``buf[at:have]`` has arrived
    (at most `_FRAMED` bytes are looked at), can begin one of ours.

    A worker's message is a pickle of protocol 5 of a non-empty list, so it opens with PROTO 5
    and a FRAME whose length fits in the payload: junk that passes this by chance is rarer than
    one in 2**24, where a length alone would take any four bytes.
    """
    got = have - at
    if (got >= 1 and buf[at] != _PICKLE[0]) or (got >= 2 and buf[at + 1] != _PICKLE[1]):
        return False
    if size < _FRAMED or got < 3:
        return True
    if buf[at + 2] != _FRAME:
        return False
    return got < _FRAMED or int.from_bytes(buf[at + 3:at + _FRAMED], "little") <= size - _FRAMED


def _header(size: int) -> bytes:
    if size > 0x7FFFFFFF:
        return (-1).to_bytes(4, "big", signed=True) + size.to_bytes(8, "big")
    return size.to_bytes(4, "big", signed=True)


class TaskPipe:
    """The parent's end of a worker's command pipe (non-blocking; see the module docstring)."""

    __slots__ = ("_conn", "_lock", "_out", "_wake", "broken", "closed", "closing_since", "fd")

    def __init__(self, conn: Connection, wake: Callable[[], None]) -> None:
        self._conn, self._wake = conn, wake
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._lock = threading.Lock()
        self._out: deque[memoryview] = deque()  # what the pipe did not take yet, in order
        self.broken = self.closed = False
        self.closing_since: float | None = None  # when closing was asked for (monotonic)

    @property
    def pending(self) -> bool:
        """Whether bytes wait in the outbox (read without the lock: a stale answer costs one poll turn)."""
        return bool(self._out)

    def send(self, payload: bytes) -> None:
        """Send one message without blocking (any thread); raises ``BrokenPipeError`` once the pipe is gone."""
        header = _header(len(payload))
        with self._lock:
            if self.closed or self.broken or self.closing_since is not None:
                raise BrokenPipeError("the worker's task pipe is closed")
            if self._out:  # behind bytes still waiting: keep the order
                self._out.extend((memoryview(header), memoryview(payload)))
                return
            try:
                if len(payload) < _SMALL:
                    frame = header + payload
                    written = os.write(self.fd, frame)
                    parts = [memoryview(frame)]
                else:
                    parts = [memoryview(header), memoryview(payload)]
                    written = os.writev(self.fd, parts)
            except BlockingIOError:
                written = 0
            except OSError:
                self.broken = True
                raise
            if written == len(header) + len(payload):
                return
            self._out.extend(parts)
            self._consume(written)
        self._wake()  # the supervisor writes the rest as the worker reads

    def flush(self) -> None:
        """Write what the outbox holds, as far as the pipe takes it (the supervisor thread, when writable)."""
        with self._lock:
            out = self._out
            try:
                while out and not self.closed:
                    self._consume(os.writev(self.fd, list(out)[:64]))
            except BlockingIOError:
                pass
            except OSError:  # the worker is gone: nobody will read the rest
                self.broken = True
                out.clear()
            if not out and self.closing_since is not None:
                self._close_now()

    def _consume(self, written: int) -> None:
        out = self._out
        while written and out:
            head = out[0]
            if written >= len(head):
                written -= len(head)
                out.popleft()
            else:
                out[0] = head[written:]
                written = 0

    def close(self) -> None:
        """Close once the outbox is written (at once if it is empty): the worker then sees EOF and exits."""
        with self._lock:
            if self.closed or self.closing_since is not None:
                return
            self.closing_since = time.monotonic()
            if self._out and not self.broken:
                wake = True
            else:
                self._close_now()
                wake = False
        if wake:
            self._wake()

    def abort(self) -> None:
        """Close now, dropping what was not written (the worker is dead, or being killed)."""
        with self._lock:
            if self.closing_since is None:
                self.closing_since = time.monotonic()
            self._out.clear()
            self._close_now()

    def _close_now(self) -> None:
        if not self.closed:
            self.closed = True
            self._conn.close()


class ResultReader:
    """Cuts a worker's result pipe into messages without blocking; refuses junk (see the module docstring)."""

    __slots__ = ("_buf", "_conn", "eof", "fd")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._buf = bytearray()
        self.eof = False

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def close(self) -> None:
        self._conn.close()

    def read(self) -> tuple[list[bytearray], str | None]:
        """Read what waits (a few MiB at most) and return the whole messages, and what was wrong if
        the bytes stopped being frames of ours (then nothing more should be read from this pipe)."""
        buf = self._buf
        got = 0
        while got < _TURN:
            want = max(_CHUNK, min(self._missing(), _TURN))
            try:
                chunk = os.read(self.fd, want)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            buf += chunk
            got += len(chunk)
            if len(chunk) < want:  # the pipe held less than asked for: it is empty now
                break
        return self._split()

    def _missing(self) -> int:
        """Bytes still missing from the frame at the head of the buffer (0 if unknown)."""
        buf = self._buf
        if len(buf) < 4:
            return 0
        size = int.from_bytes(buf[:4], "big", signed=True)
        if size == -1:
            if len(buf) < 12:
                return 0
            return int.from_bytes(buf[4:12], "big") + 12 - len(buf)
        return size + 4 - len(buf)

    def _split(self) -> tuple[list[bytearray], str | None]:
        # one pass with an offset, the consumed bytes dropped once at the end: a read holds a few
        # hundred small messages while batches run, and this runs in the supervisor thread, whose
        # time the loop thread waits out (they share the GIL)
        buf = self._buf
        end = len(buf)
        messages: list[bytearray] = []
        pos = 0
        while end - pos >= 4:
            (size,) = _LENGTH.unpack_from(buf, pos)
            head = pos + 4
            if size == -1:
                if end - pos < 12:
                    break
                (size,), head = _LONG_LENGTH.unpack_from(buf, pos + 4), pos + 12
            if end - head >= _FRAMED and size >= _FRAMED:  # the usual case: the payload's opening is all here
                plausible = (buf.startswith(_OPENING, head)
                             and _FRAME_LENGTH.unpack_from(buf, head + 3)[0] <= size - _FRAMED)
            else:
                plausible = size >= len(_PICKLE) and _plausible(buf, head, min(end, head + _FRAMED), size)
            if not plausible:
                del buf[:pos]
                return messages, f"bytes that are not a frame of its reports ({bytes(buf[:24])!r}…)"
            stop = head + size
            if end < stop:
                break
            if pos == 0 and stop == end:  # the usual case: the buffer holds exactly one message
                message, self._buf = buf, bytearray()
                del message[:head]
                messages.append(message)
                return messages, None
            messages.append(buf[head:stop])
            pos = stop
        if pos:
            del buf[:pos]
        return messages, None
