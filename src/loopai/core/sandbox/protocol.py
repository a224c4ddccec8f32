"""Frames between the server, the zygote and the workers: a 4-byte big-endian length, then
msgpack.

The pool sends the zygote `Spawn` (with the worker's socket attached) and `Kill`; the zygote
reports `Exited` for each child it reaps. A worker greets with `Ready` (the walls it put
up), takes one `Load` (its program, for its whole life), then answers each frame of
`Request`s (the calls one round trip carries, run one after another) with a `Response` frame
per request, in order. Inputs and outputs travel as JSON bytes: the worker must prove an
output is JSON (and small enough) anyway, and the server needs JSON in the end.
"""

from __future__ import annotations

import struct

import msgspec

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


class Spawn(msgspec.Struct, tag=True, array_like=True):
    memory_mb: int
    cpu_s: int
    max_output_bytes: int


class Kill(msgspec.Struct, tag=True, array_like=True):
    pid: int


class Exited(msgspec.Struct, tag=True, array_like=True):
    pid: int
    status: int
    """As os.waitstatus_to_exitcode: the exit code, or minus the signal number."""


class Load(msgspec.Struct, array_like=True):
    code: str
    policy: bool = True
    """False only for `loopai sandbox run --no-policy`: real builtins, no compile-time check."""


class Request(msgspec.Struct, array_like=True):
    input_json: bytes
    timeout_ms: int
    """From when the worker read the frame: later requests of a frame wait for earlier ones."""


class Response(msgspec.Struct, array_like=True):
    status: str
    output_json: bytes | None = None
    error: str | None = None
    latency_ms: float = 0.0
    memory_mb: float = 0.0
    cache_hit: bool = False


class Ready(msgspec.Struct, array_like=True):
    pid: int
    walls: list[str] = []


encoder = msgspec.msgpack.Encoder()
command_decoder = msgspec.msgpack.Decoder(Spawn | Kill)
exited_decoder = msgspec.msgpack.Decoder(Exited)
load_decoder = msgspec.msgpack.Decoder(Load)
request_decoder = msgspec.msgpack.Decoder(list[Request])
response_decoder = msgspec.msgpack.Decoder(Response)
ready_decoder = msgspec.msgpack.Decoder(Ready)


def frame(message: msgspec.Struct | list[Request]) -> bytes:
    body = encoder.encode(message)
    return HEADER.pack(len(body)) + body
