"""Wire messages: one msgspec Struct per `op`, a tagged union each way, codecs built once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Raw, Struct

from loopai.nesting import MAX_JSON_DEPTH, too_deep

Ref = Annotated[str, Meta(max_length=64)]
EventType = Annotated[str, Meta(min_length=1, max_length=128)]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=128)]
NULL = Raw(b"null")


class _In(Struct, tag_field="op", forbid_unknown_fields=True):
    pass


class Subscribe(_In, tag="subscribe"):
    topics: list[str]
    resume: dict[str, str] | None = None
    ref: Ref | None = None


class Unsubscribe(_In, tag="unsubscribe"):
    topics: list[str]
    ref: Ref | None = None


class Publish(_In, tag="publish"):
    topic: str
    type: EventType
    data: Raw = NULL
    ref: Ref | None = None
    idempotency_key: IdempotencyKey | None = None


class Ping(_In, tag="ping"):
    ref: Ref | None = None


ClientMessage = Subscribe | Unsubscribe | Publish | Ping
CLIENT_OPS = frozenset({"subscribe", "unsubscribe", "publish", "ping"})


class _Out(Struct, tag_field="op", omit_defaults=True):
    pass


class Welcome(_Out, tag="welcome"):
    session: str
    instance: str
    protocol: int
    heartbeat_ms: int
    max_frame_bytes: int


class TopicState(Struct, omit_defaults=False):
    topic: str
    cursor: str | None
    recovered: bool


class Subscribed(_Out, tag="subscribed"):
    topics: list[TopicState]
    ref: str | None = None


class Unsubscribed(_Out, tag="unsubscribed"):
    topics: Sequence[str]
    ref: str | None = None


class Published(_Out, tag="published"):
    topic: str
    cursor: str
    ref: str | None = None


class Pong(_Out, tag="pong"):
    ref: str | None = None


class EventMessage(_Out, tag="event"):
    topic: str
    cursor: str
    type: str
    ts: int
    data: Raw


class Gap(_Out, tag="gap"):
    topic: str
    since: str | None
    oldest: str | None


class Error(_Out, tag="error"):
    code: str
    message: str
    ref: str | None = None
    topic: str | None = None
    topics: list[str] | None = None
    """Every topic a `subscribe` refused for this reason (`forbidden`,
    `too_many_subscriptions`): one error per reason, not per topic."""


class Reconnect(_Out, tag="reconnect"):
    reason: str
    retry_ms: int


ServerMessage = (
    Welcome | Subscribed | Unsubscribed | Published | Pong | EventMessage | Gap | Error | Reconnect
)

_decoder = msgspec.json.Decoder(ClientMessage)
_generic = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class MessageError(Exception):
    """A client message that cannot be handled; carries the protocol code and any `ref`."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def decode_client(data: str | bytes) -> ClientMessage:
    """Decode one client message or raise MessageError with the code the protocol names.

    Nesting is checked first: decoders recurse per level, and a frame of a thousand
    brackets would otherwise end the connection with a RecursionError (1011)."""
    try:
        deep = too_deep(data)
    except UnicodeEncodeError:  # a str with lone surrogates: no text frame can carry one
        raise MessageError("bad_request", "message is not valid UTF-8") from None
    if deep:  # not decoded, so no `ref` to echo
        raise MessageError("bad_request", f"message nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        message: ClientMessage = _decoder.decode(data)
        return message
    except msgspec.DecodeError as exc:
        raise _classify(data, exc) from None


def _classify(data: str | bytes, exc: msgspec.DecodeError) -> MessageError:
    try:
        value: Any = _generic.decode(data)
    except msgspec.DecodeError:
        return MessageError("bad_request", "message is not valid JSON")
    if not isinstance(value, dict):
        return MessageError("bad_request", "message must be a JSON object")
    raw_ref = value.get("ref")
    ref = raw_ref[:64] if isinstance(raw_ref, str) else None
    op = value.get("op")
    if not isinstance(op, str):
        return MessageError("bad_request", "message needs a string 'op'", ref)
    if op not in CLIENT_OPS:
        return MessageError("unknown_op", f"unknown op {op[:40]!r}", ref)
    return MessageError("bad_request", f"invalid {op}: {exc}", ref)


def encode(message: ServerMessage) -> str:
    """Encode a server message to the text of one frame (JSON is sent in text frames)."""
    return _encoder.encode(message).decode()


def encode_event(topic: str, cursor: str, type: str, ts: int, data: Raw) -> str:
    return _encoder.encode(EventMessage(topic, cursor, type, ts, data)).decode()
