"""`Origin` on the WebSocket handshake and CORS on the API, against real server processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient

APP = "https://app.example.com"
FOREIGN = "https://evil.example.net"


@pytest.fixture(scope="module")
def default_server() -> Iterator[HubProcess]:
    """No `allowed_origins`: only the server's own origin (and clients without Origin)."""
    server = HubProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def listed_server() -> Iterator[HubProcess]:
    server = HubProcess(env={"LOOPAI_ALLOWED_ORIGINS": f'["{APP}"]'}).start()
    yield server
    server.stop()


async def refused_status(server: HubProcess, origin: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await HubTestClient.open(server.ws, origin=origin)
    status: int = refused.value.response.status_code
    return status


async def test_no_origin_is_accepted(default_server: HubProcess) -> None:
    client = await HubTestClient.open(default_server.ws)
    assert client.welcome["op"] == "welcome"
    await client.close()


async def test_own_origin_is_accepted(default_server: HubProcess) -> None:
    for own in (f"http://127.0.0.1:{default_server.port}",
                f"http://localhost:{default_server.port}"):
        client = await HubTestClient.open(default_server.ws, origin=own)
        assert client.welcome["op"] == "welcome"
        assert (await client.subscribe("demo.origin"))["op"] == "subscribed"
        await client.close()


async def test_foreign_origin_is_refused_at_the_handshake(default_server: HubProcess) -> None:
    assert await refused_status(default_server, FOREIGN) == 403
    # Same host, other port: another origin.
    assert await refused_status(default_server, "http://127.0.0.1:1") == 403
    async with httpx.AsyncClient(base_url=default_server.http) as http:
        text = (await http.get("/api/v1/metrics")).text
    assert 'loopai_hub_closes_total{code="403"} 2.0' in text


async def test_listed_origin_is_accepted_and_others_refused(listed_server: HubProcess) -> None:
    client = await HubTestClient.open(listed_server.ws, origin=APP)
    assert client.welcome["op"] == "welcome"
    await client.close()
    assert await refused_status(listed_server, FOREIGN) == 403
    # An explicit list replaces the default: the server's own origin is not implied.
    assert await refused_status(listed_server, f"http://127.0.0.1:{listed_server.port}") == 403
    plain = await HubTestClient.open(listed_server.ws)
    assert plain.welcome["op"] == "welcome"
    await plain.close()


async def test_star_allows_every_origin() -> None:
    server = HubProcess(env={"LOOPAI_ALLOWED_ORIGINS": '["*"]'}).start()
    try:
        client = await HubTestClient.open(server.ws, origin=FOREIGN)
        assert client.welcome["op"] == "welcome"
        await client.close()
        async with httpx.AsyncClient(base_url=server.http) as http:
            r = await http.options("/api/v1/health", headers={
                "Origin": FOREIGN, "Access-Control-Request-Method": "GET"})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "*"
    finally:
        server.stop()


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


async def test_cors_preflight_answered_for_an_allowed_origin(listed_server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=listed_server.http) as http:
        r = await http.options("/api/v1/topics/demo.cors/events", headers=preflight(APP))
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == APP
        allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        # The actual request then carries the CORS headers, with X-Request-ID readable.
        r = await http.get("/api/v1/health", headers={"Origin": APP})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == APP
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        assert r.headers["x-request-id"]


async def test_cors_preflight_refused_for_a_foreign_origin(listed_server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=listed_server.http) as http:
        r = await http.options("/api/v1/topics/demo.cors/events", headers=preflight(FOREIGN))
        assert r.status_code == 400
        assert "access-control-allow-origin" not in r.headers
        r = await http.get("/api/v1/health", headers={"Origin": FOREIGN})
        assert "access-control-allow-origin" not in r.headers


async def test_cors_for_the_default_own_origin(default_server: HubProcess) -> None:
    own = f"http://localhost:{default_server.port}"
    async with httpx.AsyncClient(base_url=default_server.http) as http:
        r = await http.options("/api/v1/health", headers=preflight(own, "GET"))
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == own
        r = await http.options("/api/v1/health", headers=preflight(FOREIGN, "GET"))
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
