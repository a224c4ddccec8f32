"""Frames between the pool and a worker: a 4-byte big-endian length, then msgpack.

Inputs and outputs travel as JSON bytes: the worker must prove an output is JSON (and
small enough) anyway, and the server needs JSON in the end.
"""

from __future__ import annotations

import struct

import msgspec

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


class Request(msgspec.Struct, array_like=True):
    key: str
    code: str
    input_json: bytes
    timeout_ms: int


class Response(msgspec.Struct, array_like=True):
    status: str
    output_json: bytes | None = None
    error: str | None = None
    latency_ms: float = 0.0
    memory_mb: float = 0.0
    cache_hit: bool = False


class Ready(msgspec.Struct, array_like=True):
    pid: int


encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(Request)
response_decoder = msgspec.msgpack.Decoder(Response)
ready_decoder = msgspec.msgpack.Decoder(Ready)


def frame(message: msgspec.Struct) -> bytes:
    body = encoder.encode(message)
    return HEADER.pack(len(body)) + body
