"""Publish and read topic events over HTTP (the socket's `publish`, for servers and scripts)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody, Parameter

from loopai.api.auth import principal_of, requires
from loopai.api.dependencies import HubDep
from loopai.api.errors import ApiError, documented
from loopai.errors import InvalidCursor
from loopai.hub.topics import InvalidTopic, is_reserved, validate_topic
from loopai.hub.types import Cursor, Topic

ERRORS = documented()

_SEGMENT = r"[A-Za-z0-9_:\-]{1,64}"
TopicName = Annotated[str, Parameter(
    description="A topic: 1-8 dot-separated segments of letters, digits, '_', '-' or ':'",
    max_length=255, schema_extra={"pattern": rf"^{_SEGMENT}(\.{_SEGMENT}){{0,7}}$"},
)]
"""The pattern is documentation: `validate_topic` checks it, answering `invalid_topic`."""
EventCursor = Annotated[str | None, Parameter(
    description="A cursor from an earlier event or page: events after it (empty or left out:"
    " from the oldest kept)", max_length=128,
    schema_extra={"pattern": r"^(.{1,100}:[0-9]{1,19}-[0-9]{1,19})?$"},
)]


class PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    data: Any = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    """Retrying with the same key (within `idempotency_window_s`) returns the first
    publish's cursor instead of storing the event again."""


class PublishResult(msgspec.Struct):
    topic: str
    cursor: str


class TopicEvent(msgspec.Struct):
    topic: str
    cursor: str
    type: str
    ts: int
    data: msgspec.Raw


class EventPage(msgspec.Struct):
    events: list[TopicEvent]
    gap: bool
    oldest: str | None
    latest: str | None


def _topic(request: Request[Any, Any, Any], name: str) -> Topic:
    try:
        topic = validate_topic(name)
    except InvalidTopic as exc:
        raise ApiError(400, "invalid_topic", str(exc)) from None
    if not principal_of(request).may_use(topic):
        raise ApiError(403, "forbidden", "topic outside this credential's prefixes")
    return topic


@post("/api/v1/topics/{topic:str}/events", responses=ERRORS,
      guards=[requires("publish")], status_code=201,
      summary="Publish an event to a topic", tags=["hub"])
async def publish_event(request: Request[Any, Any, Any], topic: TopicName,
                        data: JSONBody[PublishBody],
                        hub: HubDep) -> PublishResult:
    checked = _topic(request, topic)
    if is_reserved(checked):
        raise ApiError(403, "forbidden", "reserved topic: only the server publishes here")
    event = await hub.publish_json(checked, data.type, data.data,
                                   idempotency_key=data.idempotency_key)
    return PublishResult(topic=checked, cursor=event.cursor)


@get("/api/v1/topics/{topic:str}/events", responses=ERRORS, guards=[requires("subscribe")],
     summary="Read a topic's history after a cursor", tags=["hub"])
async def read_events(
    request: Request[Any, Any, Any],
    topic: TopicName,
    hub: HubDep,
    since: EventCursor = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> EventPage:
    checked = _topic(request, topic)
    try:
        page = await hub.backplane.history(checked, Cursor(since) if since else None, limit)
    except InvalidCursor as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    events = [TopicEvent(e.topic, e.cursor, e.type, e.ts, e.data) for e in page.events]
    return EventPage(events, page.gap, page.oldest, page.latest)
