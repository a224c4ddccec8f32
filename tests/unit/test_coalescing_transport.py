"""The HTTP protocol's transport (api/http_protocol.py): one send per event-loop turn, in
order, nothing lost or held back."""

from __future__ import annotations

import asyncio
from typing import Any

from loopai.api.http_protocol import COALESCE_MAX, CoalescingTransport


class Recording:
    """Stands in for the socket transport: what was sent, in how many writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def turn() -> None:
    await asyncio.sleep(0)


async def test_a_head_and_its_body_leave_in_one_write_on_the_next_turn() -> None:
    real = Recording()
    t = CoalescingTransport(real)  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b"")
    t.write(memoryview(b"body"))
    assert real.writes == []
    await turn()
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_a_head_whose_body_comes_later_is_not_held_for_it() -> None:
    real = Recording()
    t = CoalescingTransport(real)  # type: ignore[arg-type]
    t.write(b"head")
    await turn()
    assert real.writes == [b"head"]  # a streaming response's client sees its headers
    await asyncio.sleep(0.01)
    t.write(b"chunk 1")
    await turn()
    t.write(b"chunk 2")
    await turn()
    assert real.writes == [b"head", b"chunk 1", b"chunk 2"]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    real = Recording()
    t = CoalescingTransport(real)  # type: ignore[arg-type]
    t.write(b"answer")
    t.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    t.close()
    assert real.writes == [b"answerHTTP/1.1 400 Bad Request\r\n\r\n"] and real.closed
    await turn()  # the flush scheduled by the first write finds nothing
    assert len(real.writes) == 1
    other = Recording()
    t = CoalescingTransport(other)  # type: ignore[arg-type]
    t.write(b"never sent")
    t.abort()
    await turn()
    assert other.writes == [] and other.aborted


async def test_a_large_body_goes_out_at_once() -> None:
    real = Recording()
    t = CoalescingTransport(real)  # type: ignore[arg-type]
    t.write(b"head")
    t.write(b"x" * COALESCE_MAX)
    assert real.writes == [b"head" + b"x" * COALESCE_MAX]  # flow control sees it now
    t.write(b"tail")
    await turn()
    assert real.writes[1:] == [b"tail"]


async def test_what_a_lost_connection_held_is_dropped_quietly() -> None:
    real = Recording()
    t = CoalescingTransport(real)  # type: ignore[arg-type]
    t.write(b"late")
    real.closed = True  # the peer went away before the next turn
    await turn()
    assert real.writes == []
    assert t.is_closing()
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)
