"""Connection tokens expire under a live HubClient: with `get_token` it fetches a new one,
reconnects and resumes with nothing lost; without, it stops with AuthenticationError.

Against a real server with a 2 s token TTL; the publisher uses an API key (not closed)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from client_support import Recorder, Stream, assert_once_in_order, assert_received, until
from loopai_client import AsyncApiClient, AuthenticationError, Backoff, HubClient
from tests.support.hub_process import HubProcess

KEY = "refresh-test-key-0123456789"
TTL_S = 2
FAST = {"backoff": Backoff(initial_s=0.05, max_s=0.5), "heartbeat_s": 1.0}


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    keys = [{"name": "tester", "key": KEY, "scopes": ["admin"]}]
    server = HubProcess(env={"LOOPAI_API_KEYS": json.dumps(keys),
                             "LOOPAI_TOKEN_TTL_S": str(TTL_S)}).start()
    yield server
    server.kill()


async def test_get_token_keeps_every_event_across_expiries(hub: HubProcess) -> None:
    minted: list[str] = []
    async with AsyncApiClient(hub.http, token=KEY) as api:

        async def get_token() -> str:
            token = await api.ws_token(scopes=["subscribe"])
            minted.append(token)
            return token

        sub = await Recorder(hub.ws, "py.refresh").start(get_token=get_token, **FAST)
        stream = await Stream(hub.ws, "py.refresh", token=KEY).start()
        try:
            # Three tokens: the subscriber lived through two expiries while events flowed.
            await until(lambda: len(minted) >= 3 and sub.opens() >= 3, "two expiries",
                        timeout=4 * TTL_S + 10)
            await stream.stop()
            await until(lambda: set(stream.acked) <= set(sub.numbers()), "every acked event")
        finally:
            await stream.stop()
            await sub.stop()
    expiries = [s for s in sub.states if s.close_code == 4401]
    assert len(expiries) >= 2 and all(s.state == "reconnecting" for s in expiries)
    assert all("token expired" in s.reason for s in expiries)
    assert len(stream.acked) > 100
    numbers = sub.numbers()
    assert_once_in_order(numbers)
    assert_received(numbers, stream.acked)
    assert sub.gaps == []
    assert all(e.cursor for e in sub.events)


async def test_without_get_token_an_expired_token_stops_the_client(hub: HubProcess) -> None:
    async with AsyncApiClient(hub.http, token=KEY) as api:
        token = await api.ws_token()
    states: list[str] = []
    client = HubClient(hub.ws, token=token, on_state=lambda s: states.append(s.state),
                       **FAST)  # type: ignore[arg-type]
    await client.connect()
    subscription = await client.subscribe("py.refresh.none")
    with pytest.raises(AuthenticationError) as stopped:
        await subscription.get(timeout=TTL_S + 5)
    assert stopped.value.close_code == 4401 and stopped.value.reason == "token expired"
    assert states[-1] == "closed" and states.count("open") == 1


async def test_a_refused_fresh_token_stops_instead_of_looping(hub: HubProcess) -> None:
    calls: list[int] = []

    def get_token() -> str:
        calls.append(1)
        return "lt1.not-a-real-token.x"

    client = HubClient(hub.ws, get_token=get_token, **FAST)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError):
        await client.connect()
    assert len(calls) == 1


def test_token_and_get_token_are_exclusive() -> None:
    with pytest.raises(ValueError):
        HubClient("ws://127.0.0.1:1/ws", token="t", get_token=lambda: "t")
