"""One contract suite for every backplane: memory and Redis pass the same tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import msgspec
import pytest
import redis as redis_lib

from loopai.errors import BackplaneUnavailable
from loopai.hub.backplane.base import Backplane
from loopai.hub.backplane.memory import MemoryBackplane
from loopai.hub.backplane.redis import RedisBackplane
from loopai.hub.cursor import parse_cursor
from loopai.hub.types import Cursor, Event, Topic
from tests.support.redis_server import RedisServer

T = Topic("demo.contract")


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gaps: list[tuple[str, str | None]] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    def gap(self, topic: Topic, since: Cursor | None, oldest: Cursor | None) -> None:
        self.gaps.append((topic, since))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


async def _ready(bp: Backplane) -> None:
    for _ in range(100):
        if bp.health().ok:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(bp.health().detail)


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    made: list[Backplane] = []

    async def factory(max_events: int = 100) -> tuple[Backplane, Recorder]:
        if request.param == "memory":
            bp: Backplane = MemoryBackplane(max_events=max_events)
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            bp = RedisBackplane(server.url, max_events=max_events,
                                prefix=f"t{len(made)}{id(request)}:", check_interval_s=0.2)
        rec = Recorder()
        await bp.start(rec)
        await _ready(bp)
        made.append(bp)
        return bp, rec

    yield factory
    for bp in made:
        await bp.close()


def now() -> int:
    return time.time_ns() // 1_000_000


def raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


async def settle(rec: Recorder, count: int) -> None:
    for _ in range(100):
        if len(rec.events) >= count:
            return
        await asyncio.sleep(0.02)


async def test_publish_delivers_in_order(make) -> None:  # type: ignore[no-untyped-def]
    bp, rec = await make()
    await bp.watch(T)
    published = [await bp.publish(T, "t", raw(i), now()) for i in range(20)]
    await settle(rec, 20)
    assert [e.cursor for e in rec.events] == [e.cursor for e in published]
    assert [msgspec.json.decode(e.data) for e in rec.events] == list(range(20))


async def test_history_after_cursor_and_latest(make) -> None:  # type: ignore[no-untyped-def]
    bp, _ = await make()
    zero = await bp.latest(T)
    assert zero is not None
    events = [await bp.publish(T, "t", raw(i), now()) for i in range(5)]
    page = await bp.history(T, Cursor(events[1].cursor), 10)
    assert [e.cursor for e in page.events] == [e.cursor for e in events[2:]]
    assert not page.gap and page.latest == events[-1].cursor
    assert await bp.latest(T) == events[-1].cursor
    from_zero = await bp.history(T, zero, 10)
    assert not from_zero.gap and len(from_zero.events) == 5


async def test_redis_latest_never_answers_a_call_with_a_read_sent_before_it(
    redis_server: RedisServer,
) -> None:
    """Calls of `latest` share reads. A call made while a read is in flight, after an event
    was stored, must wait for the next read: the one in flight may predate the event, and a
    subscriber starting from it would never get that event."""
    bp = RedisBackplane(redis_server.url, prefix="late:")
    await bp.start(Recorder())
    late: list[tuple[Event, asyncio.Task[Cursor | None]]] = []
    read = bp._read_latest

    async def read_then_publish(topic: Topic) -> Cursor | None:
        value = await read(topic)  # this read's answer is fixed now
        if not late:
            event = await bp.publish(T, "t", raw("late"), now())
            late.append((event, asyncio.create_task(bp.latest(T))))
            for _ in range(3):  # the late call starts while this read is still out
                await asyncio.sleep(0)
        return value

    bp._read_latest = read_then_publish  # type: ignore[method-assign]
    try:
        await _ready(bp)
        first = await bp.latest(T)
        (event, call), = late
        seen = await call
        assert first is not None and seen is not None
        assert _order(first) < _order(event.cursor) <= _order(seen)
    finally:
        await bp.close()


def _xrevrange_calls(server: RedisServer) -> int:
    stats = redis_lib.Redis.from_url(server.url).info("commandstats")
    return int(stats.get("cmdstat_xrevrange", {}).get("calls", 0))


async def test_redis_concurrent_latest_calls_share_round_trips(
    redis_server: RedisServer,
) -> None:
    """A burst of fresh subscribes (each reads the topic's latest cursor) costs a few
    round trips, not one each."""
    bp = RedisBackplane(redis_server.url, prefix="share:")
    await bp.start(Recorder())
    try:
        await _ready(bp)
        await bp.publish(T, "t", raw(0), now())
        before = _xrevrange_calls(redis_server)
        answers = await asyncio.gather(*(bp.latest(T) for _ in range(500)))
        used = _xrevrange_calls(redis_server) - before
        assert len(set(answers)) == 1 and answers[0] is not None
        assert 1 <= used <= 10, used
    finally:
        await bp.close()


async def test_trimmed_cursor_is_a_gap(make) -> None:  # type: ignore[no-untyped-def]
    bp, _ = await make(max_events=10)
    first = await bp.publish(T, "t", raw(0), now())
    for i in range(1, 300):
        await bp.publish(T, "t", raw(i), now())
    page = await bp.history(T, Cursor(first.cursor), 1000)
    assert page.gap
    assert msgspec.json.decode(page.events[-1].data) == 299


async def test_other_epoch_is_a_gap(make) -> None:  # type: ignore[no-untyped-def]
    bp, _ = await make()
    await bp.publish(T, "t", raw(1), now())
    page = await bp.history(T, Cursor("zzzz:5-0"), 10)
    assert page.gap and len(page.events) == 1


async def test_unwatch_stops_delivery(make) -> None:  # type: ignore[no-untyped-def]
    bp, rec = await make()
    await bp.watch(T)
    await bp.unwatch(T)
    await bp.publish(T, "t", raw(1), now())
    await asyncio.sleep(0.2)
    assert rec.events == []


async def test_publish_with_same_idempotency_key_is_stored_once(make) -> None:  # type: ignore[no-untyped-def]
    bp, rec = await make()
    await bp.watch(T)
    first = await bp.publish(T, "t", raw("a"), now(), idempotency_key="k1")
    again = await bp.publish(T, "t", raw("a"), now(), idempotency_key="k1")
    other = await bp.publish(T, "t", raw("b"), now(), idempotency_key="k2")
    # The key is per topic: another topic's "k1" is another event.
    elsewhere = await bp.publish(Topic("demo.other"), "t", raw("c"), now(),
                                 idempotency_key="k1")
    assert again.cursor == first.cursor
    assert other.cursor != first.cursor
    page = await bp.history(T, None, 10)
    assert [msgspec.json.decode(e.data) for e in page.events] == ["a", "b"]
    [stored] = (await bp.history(Topic("demo.other"), None, 10)).events
    assert stored.cursor == elsewhere.cursor and msgspec.json.decode(stored.data) == "c"
    # Delivery is in order: a duplicate of "a" would arrive before "b".
    await settle(rec, 2)
    assert [e.cursor for e in rec.events[:2]] == [first.cursor, other.cursor]


async def test_idempotency_key_expires_after_its_window() -> None:
    bp = MemoryBackplane(idempotency_window_ms=50)
    await bp.start(Recorder())
    first = await bp.publish(T, "t", raw(1), now(), idempotency_key="k")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        again = await bp.publish(T, "t", raw(1), now(), idempotency_key="k")
        if again.cursor != first.cursor:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the key never expired")


async def test_redis_idempotency_key_expires_after_its_window(
    redis_server: RedisServer,
) -> None:
    bp = RedisBackplane(redis_server.url, prefix="window:", idempotency_window_ms=50)
    await bp.start(Recorder())
    await _ready(bp)
    try:
        first = await bp.publish(T, "t", raw(1), now(), idempotency_key="k")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            again = await bp.publish(T, "t", raw(1), now(), idempotency_key="k")
            if again.cursor != first.cursor:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the key never expired")
    finally:
        await bp.close()


async def test_two_redis_instances_each_get_every_event(redis_server: RedisServer) -> None:
    instances = [RedisBackplane(redis_server.url, prefix="shared:", check_interval_s=0.2)
                 for _ in range(3)]
    recs = [Recorder() for _ in instances]
    for bp, rec in zip(instances, recs, strict=True):
        await bp.start(rec)
        await _ready(bp)
        await bp.watch(T)
    try:
        for i in range(30):
            await instances[i % 3].publish(T, "t", raw(i), now())
        for rec in recs:
            await settle(rec, 30)
        cursors = [e.cursor for e in recs[0].events]
        assert len(cursors) == 30 and len(set(cursors)) == 30
        for rec in recs:
            assert [e.cursor for e in rec.events] == cursors
    finally:
        for bp in instances:
            await bp.close()


@pytest.mark.slow
async def test_redis_outage_refuses_then_backfills() -> None:
    server = RedisServer().start()
    bp = RedisBackplane(server.url, check_interval_s=0.2)
    rec = Recorder()
    await bp.start(rec)
    await _ready(bp)
    try:
        await bp.watch(T)
        before = await bp.publish(T, "t", raw("before"), now())
        server.stop()
        with pytest.raises(BackplaneUnavailable):
            for _ in range(50):
                await bp.publish(T, "t", raw("during"), now())
                await asyncio.sleep(0.05)
        assert not bp.health().ok
        server.start()  # the same object, so the finally below stops the restarted one
        await _ready(bp)
        after = await bp.publish(T, "t", raw("after"), now())
        await settle(rec, 2)
        assert [e.cursor for e in rec.events] == [before.cursor, after.cursor]
        # Redis came back empty: a cursor from before is from another epoch.
        assert (await bp.history(T, Cursor(before.cursor), 10)).gap
    finally:
        await bp.close()
        server.stop()


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_lost_history_is_one_gap_even_across_later_reconnects() -> None:
    server = RedisServer().start()
    bp = RedisBackplane(server.url, check_interval_s=0.2)
    rec = Recorder()
    await bp.start(rec)
    await _ready(bp)
    try:
        await bp.watch(T)
        await bp.publish(T, "t", raw("before"), now())
        await _until(lambda: len(rec.events) == 1, "the first event")
        server = server.restart(keep_data=False)
        await _until(lambda: len(rec.gaps) == 1, "the gap")
        await _ready(bp)
        # Nothing published since: the next rebuild of the link must not report it again.
        admin = redis_lib.Redis.from_url(server.url)
        admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        admin.close()
        after = await _publish_retrying(bp, "after")
        await _until(lambda: len(rec.events) == 2, "the event after the restart")
        assert rec.events[1].cursor == after.cursor
        assert len(rec.gaps) == 1
    finally:
        await bp.close()
        server.stop()


@pytest.mark.slow
async def test_killed_command_connections_recover_without_a_pubsub_reset() -> None:
    server = RedisServer().start()
    bp = RedisBackplane(server.url, check_interval_s=0.2)
    rec = Recorder()
    await bp.start(rec)
    await _ready(bp)
    admin = redis_lib.Redis.from_url(server.url)
    try:
        await bp.watch(T)
        accepted: list[Event] = []
        for round_ in range(5):
            # Publishes in flight while their connections are killed.
            burst = [asyncio.create_task(bp.publish(T, "t", raw([round_, i]), now(),
                                                    idempotency_key=f"{round_}-{i}"))
                     for i in range(50)]
            await asyncio.to_thread(admin.execute_command, "CLIENT", "KILL", "TYPE", "normal")
            for i, task in enumerate(burst):
                try:
                    accepted.append(await task)
                except BackplaneUnavailable:  # refused: retried with the same key
                    accepted.append(await _publish_retrying(bp, [round_, i], f"{round_}-{i}"))
        await _until(lambda: bp.health().ok, "health")
        page = await bp.history(T, None, 1000)
        assert sorted(e.cursor for e in page.events) == sorted(e.cursor for e in accepted)
        assert len(page.events) == 250
        await _until(lambda: len(rec.events) == 250, "every event delivered")
    finally:
        admin.close()
        await bp.close()
        server.stop()


async def _publish_retrying(bp: Backplane, value: object, key: str | None = None) -> Event:
    deadline = time.monotonic() + 10
    while True:
        try:
            return await bp.publish(T, "t", raw(value), now(), idempotency_key=key)
        except BackplaneUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_retry_after_a_timeout_does_not_store_twice() -> None:
    server = RedisServer(debug=True).start()
    # No probe during the test: the publish itself must meet the stalled Redis.
    bp = RedisBackplane(server.url, check_interval_s=30, timeout_s=0.3)
    await bp.start(Recorder())
    await _ready(bp)
    admin = redis_lib.Redis.from_url(server.url)
    try:
        stall = asyncio.create_task(
            asyncio.to_thread(admin.execute_command, "DEBUG", "SLEEP", 1))
        await asyncio.to_thread(_wait_asleep, server.url)
        first_ts = now() - 1000
        # Sent while Redis sleeps: times out here, but Redis runs it when it wakes up.
        with pytest.raises(BackplaneUnavailable):
            await bp.publish(T, "t", raw("once"), first_ts, idempotency_key="the-one")
        await stall
        retried = await _publish_retrying(bp, "once", "the-one")
        [stored] = (await bp.history(T, None, 10)).events
        assert stored.cursor == retried.cursor
        assert stored.ts == first_ts  # the timed-out attempt was stored, the retry was not
    finally:
        admin.close()
        await bp.close()
        server.stop()


def _wait_asleep(url: str) -> None:
    """Returns once Redis stops answering (DEBUG SLEEP has begun)."""
    probe = redis_lib.Redis.from_url(url, socket_timeout=0.05)
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except redis_lib.TimeoutError:
                return
        raise AssertionError("Redis never stalled")
    finally:
        probe.close()


def _order(cursor: str) -> tuple[int, int]:
    position = parse_cursor(cursor).position
    return position.ms, position.seq


async def test_redis_watch_misses_nothing_published_while_it_subscribes(
    redis_server: RedisServer,
) -> None:
    """`watch` reads the topic's latest cursor, then Redis takes the SUBSCRIBE: an event
    stored between the two was published to nobody here. Every event after the cursor
    `watch` started from must still arrive (from history, then live)."""
    publisher = RedisBackplane(redis_server.url, prefix="race:")
    watcher = RedisBackplane(redis_server.url, prefix="race:")
    rec = Recorder()
    await publisher.start(Recorder())
    await watcher.start(rec)
    await _ready(publisher)
    await _ready(watcher)
    stop = asyncio.Event()

    async def publish_all_the_time() -> None:
        i = 0
        while not stop.is_set():
            await publisher.publish(T, "t", raw(i), now())
            i += 1

    pumping = asyncio.create_task(publish_all_the_time())
    try:
        for _round in range(20):
            await watcher.watch(T)
            start = watcher._last[T]  # white box: where this watch took over
            await asyncio.sleep(0.02)  # let events arrive while subscribed
            await watcher.unwatch(T)
            delivered = {e.cursor for e in rec.events}
            rec.events.clear()
            page = await publisher.history(T, start, 10_000)
            expected = {e.cursor for e in page.events}
            # Everything stored after `start` up to what arrived last must have arrived.
            last = max(delivered, key=_order, default=None)
            if last is None:
                continue
            missing = {c for c in expected if _order(c) <= _order(last)} - delivered
            assert not missing, f"round {_round}: {len(missing)} events never delivered"
    finally:
        stop.set()
        await pumping
        await watcher.close()
        await publisher.close()


async def test_redis_bursts_of_commands_wait_for_a_connection_instead_of_failing(
    redis_server: RedisServer,
) -> None:
    """A burst of subscribes reads many latest cursors at once: more than the pool holds
    must wait for a connection, not fail (redis-py's default pool raised MaxConnectionsError
    past 100, refusing subscribes and flapping the instance's health)."""
    bp = RedisBackplane(redis_server.url, prefix="burst:")
    await bp.start(Recorder())
    await _ready(bp)
    try:
        cursors = await asyncio.gather(*(bp.latest(Topic(f"burst.{i % 7}"))
                                         for i in range(400)))
        assert len(cursors) == 400 and bp.health().ok
    finally:
        await bp.close()
