"""Publish and read topic events over HTTP (the socket's `publish`, for servers and scripts)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from loopai.api.auth import principal_of, requires
from loopai.api.dependencies import HubDep
from loopai.api.errors import ApiError, documented
from loopai.errors import InvalidCursor
from loopai.hub.topics import InvalidTopic, is_reserved, validate_topic
from loopai.hub.types import Cursor, Topic

ERRORS = documented()


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
async def publish_event(request: Request[Any, Any, Any], topic: FromPath[str],
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
    topic: FromPath[str],
    hub: HubDep,
    since: FromQuery[str | None] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> EventPage:
    checked = _topic(request, topic)
    try:
        page = await hub.backplane.history(checked, Cursor(since) if since else None, limit)
    except InvalidCursor as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    events = [TopicEvent(e.topic, e.cursor, e.type, e.ts, e.data) for e in page.events]
    return EventPage(events, page.gap, page.oldest, page.latest)
