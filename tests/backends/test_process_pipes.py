"""Unit tests of the parent's pipe ends (`osiiso.backends.process.pipes`), with plain pipes and no worker."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest
from support import eventually

from osiiso.backends.process.pipes import ResultReader, TaskPipe

pytestmark = [pytest.mark.timeout(30)]
Pipe = tuple[TaskPipe, Connection, list[int]]


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    """A `TaskPipe` on a fresh pipe, the other end as a Connection, and a count of wake-ups."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    wakes: list[int] = []
    task = TaskPipe(writer, lambda: wakes.append(1))
    yield task, reader, wakes
    task.abort()
    reader.close()


def test_a_message_bigger_than_the_pipe_never_blocks_and_arrives_whole(pipe: Pipe) -> None:
    """send() returns at once with a message the pipe cannot hold; flush() writes the rest as it drains."""
    task, reader, wakes = pipe
    big, small = os.urandom(3 * 2**20), b"after"
    task.send(big)  # nobody reads yet: this would block on a blocking pipe
    task.send(small)  # queued behind, in order
    assert task.pending and wakes
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.extend([reader.recv_bytes(), reader.recv_bytes()]))
    thread.start()
    while task.pending:
        task.flush()
    thread.join(10)
    assert got == [big, small]


def test_close_waits_for_the_outbox_then_the_reader_sees_eof(pipe: Pipe) -> None:
    """close() with bytes still waiting closes once they are written; later sends are refused."""
    task, reader, _ = pipe
    task.send(os.urandom(2**20))
    task.close()
    assert not task.closed and task.closing_since is not None
    with pytest.raises(BrokenPipeError):
        task.send(b"late")
    got: list[object] = []

    def drain() -> None:
        got.append(reader.recv_bytes())
        try:
            reader.recv_bytes()
        except EOFError:
            got.append("eof")

    thread = threading.Thread(target=drain)
    thread.start()
    eventually(lambda: (task.flush(), task.closed)[1], "the pipe to close after its outbox")
    thread.join(10)
    assert got[1] == "eof" and len(got[0]) == 2**20


def test_a_pipe_whose_reader_is_gone_is_broken(pipe: Pipe) -> None:
    """Sending to a worker that died raises BrokenPipeError, and keeps raising it."""
    task, reader, _ = pipe
    reader.close()
    for _ in range(2):
        with pytest.raises(BrokenPipeError):
            task.send(b"x")
    assert task.broken


def _result_pipe() -> tuple[ResultReader, int]:
    r, w = os.pipe()
    return ResultReader(Connection(r, writable=False)), w


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big", signed=True) + payload


def test_frames_are_cut_wherever_the_reads_end() -> None:
    """Messages split across reads, or several in one read, come out whole and in order."""
    reader, w = _result_pipe()
    messages = [pickle.dumps([(10,)], 5), pickle.dumps([(13, 1, True, os.urandom(300_000), 0.1)], 5),
                pickle.dumps([(11, 2)], 5)]
    stream = b"".join(_frame(m) for m in messages)
    got: list[bytes] = []
    for start in range(0, len(stream), 7001):  # odd slices: headers and payloads cut anywhere
        os.write(w, stream[start:start + 7001])
        while True:
            out, junk = reader.read()
            assert junk is None
            got.extend(bytes(m) for m in out)
            if not out:
                break
    assert got == messages
    os.close(w)
    assert reader.read() == ([], None) and reader.eof
    reader.close()


def test_many_frames_of_both_header_forms_come_out_whole_however_the_bytes_arrive() -> None:
    """Hundreds of small messages in one read, and the 12-byte header form (``-1`` and an 8-byte
    length, which multiprocessing writes past 2 GiB), come out whole wherever a read ends."""
    messages = [pickle.dumps([(13, seq, True, pickle.dumps(seq * seq, 5), 1e-6), (11, seq + 1)], 5)
                for seq in range(300)]
    long_form = pickle.dumps([(11, 7)], 5)
    frames = [_frame(m) for m in messages]
    frames.insert(150, (-1).to_bytes(4, "big", signed=True) + len(long_form).to_bytes(8, "big") + long_form)
    stream = b"".join(frames)
    expected = messages[:150] + [long_form] + messages[150:]
    for step in (1, 5, 11, 13, len(stream)):  # a byte at a time; cuts inside headers and openings; all at once
        reader, w = _result_pipe()
        got: list[bytes] = []
        for start in range(0, len(stream), step):
            os.write(w, stream[start:start + step])
            out, junk = reader.read()
            assert junk is None
            got.extend(bytes(m) for m in out)
        assert got == expected, step
        os.close(w)
        reader.close()


@pytest.mark.parametrize("junk", [
    b"this is not a frame\n",  # text: its first four bytes read as a length
    _frame(b"junk junk junk"),  # a frame, but no pickle
    _frame(pickle.dumps({"a": 1}, 4)),  # a pickle, but not of protocol 5
    _frame(b"\x80\x05\x95" + (10**9).to_bytes(8, "little") + b"]"),  # a pickle frame longer than the message
    _frame(b"\x80\x05" + b"x" * 20),  # protocol 5, but no FRAME after it
    (-5).to_bytes(4, "big", signed=True),  # a negative length
])
def test_junk_is_refused_after_the_good_messages_before_it(junk: bytes) -> None:
    """What is not a frame of a worker's reports is named as junk; the messages before it still count."""
    reader, w = _result_pipe()
    good = pickle.dumps([(10,)], 5)
    os.write(w, _frame(good) + junk + b"." * 16)
    out, why = reader.read()
    assert [bytes(m) for m in out] == [good]
    assert why is not None and "not a frame" in why
    os.close(w)
    reader.close()


@pytest.mark.parametrize("started", [False, True], ids=["never-started", "after-its-thread-ended"])
def test_a_wake_after_the_supervisor_closed_its_pipe_writes_to_no_reused_descriptor(started: bool) -> None:
    """A late wake() must not write into the descriptor that took the closed wake-up pipe's number.

    The kernel hands a closed number out again; a byte written there once landed in the
    forkserver's request socket and killed it, so every worker's exit code read 255.
    """
    from osiiso.backends.process.events import Stopped, Up
    from osiiso.backends.process.launch import resolve_context
    from osiiso.backends.process.supervisor import Supervisor

    seen: list[object] = []
    up, stopped = threading.Event(), threading.Event()

    def report(events: list[object]) -> None:
        seen.extend(events)
        if any(isinstance(e, Up) for e in events):
            up.set()
        if any(isinstance(e, Stopped) for e in events):
            stopped.set()

    sup = Supervisor(resolve_context(None), pickle.dumps((None, ())), report)
    number = sup._wake_w
    if started:
        sup.spawn(0)
        assert up.wait(20), seen
        sup.kill_all()
        assert stopped.wait(20), seen
        sup.join(20)
    else:
        assert sup.close_unstarted()
    reader, writer = os.pipe()
    try:
        os.dup2(writer, number)  # the closed number now names a live pipe, as the kernel would reuse it
        os.set_blocking(reader, False)
        sup.wake()
        with pytest.raises(BlockingIOError):
            os.read(reader, 1)
    finally:
        for fd in {reader, writer, number}:
            os.close(fd)
