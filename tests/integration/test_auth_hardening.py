"""Credentials against a real server: never in its logs, tokens only from keys, malformed ones
refused with 401/4401, requests beyond a key refused, and the HTTP limiter keyed by principal."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient

ADMIN_KEY = "admin-key-SECRET-0123456789"
PUB_KEY = "pub-key-SECRET-0123456789"
OTHER_KEY = "other-key-SECRET-0123456789"
TOKEN_SECRET = "token-secret-SECRET-0123456789"
KEYS = [
    {"name": "ops", "key": ADMIN_KEY, "scopes": ["admin"]},
    {"name": "pub", "key": PUB_KEY, "scopes": ["publish", "subscribe", "read"],
     "prefixes": ["demo."]},
    {"name": "other", "key": OTHER_KEY, "scopes": ["read"]},
]
ENV = {"LOOPAI_API_KEYS": json.dumps(KEYS), "LOOPAI_TOKEN_SECRET": TOKEN_SECRET,
       "LOOPAI_SANDBOX_WORKERS": "1"}


def bearer(credential: str | bytes) -> dict[str, str | bytes]:
    if isinstance(credential, bytes):
        return {"authorization": b"Bearer " + credential}
    return {"authorization": f"Bearer {credential}"}


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    proc = HubProcess(env=ENV).start()
    yield proc
    proc.stop()


async def _mint(http: httpx.AsyncClient, key: str, **body: object) -> str:
    r = await http.post("/api/v1/auth/ws-token", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


async def test_no_credential_reaches_the_log_at_debug_level() -> None:
    proc = HubProcess(env=ENV, args=["--log-level", "debug"]).start()
    try:
        async with httpx.AsyncClient(base_url=proc.http) as http:
            token = await _mint(http, ADMIN_KEY)
            for credential in (ADMIN_KEY, token, "wrong-" + ADMIN_KEY, b"lt1.eyJ9.\xc3\xa9"):
                r = await http.get("/api/v1/tasks", headers=bearer(credential))
                assert r.status_code in (200, 401), r.text
            r = await http.get("/api/v1/nope?token=" + ADMIN_KEY)
            assert r.status_code == 404
        for url, header in ((f"{proc.ws}?token={token}", None),
                            (f"{proc.ws}?token={ADMIN_KEY}", None),
                            (proc.ws, ADMIN_KEY), (proc.ws, token)):
            c = await HubTestClient.open(url, token=header)
            assert c.welcome["op"] == "welcome"
            await c.subscribe("demo.logs")
            await c.ws.close()
    finally:
        proc.stop()
    assert proc.log_path is not None
    text = proc.log_path.read_text(errors="replace")
    # Every line went through the JSON (redacting) formatter: no logger writes around it.
    assert all(json.loads(line)["message"] is not None for line in text.splitlines()), text
    # The lines that used to carry them are there, redacted: the test is not vacuous.
    assert "WebSocket /ws?token=[redacted]" in text
    assert "authorization: bearer [redacted]" in text.lower()
    for secret in (ADMIN_KEY, token, token.split(".")[1], token.split(".")[2], TOKEN_SECRET,
                   "SECRET"):
        assert secret not in text, f"{secret[:12]}… in the log"


async def test_a_connection_token_cannot_mint(server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        token = await _mint(http, ADMIN_KEY)
        r = await http.post("/api/v1/auth/ws-token", json={}, headers=bearer(token))
        assert r.status_code == 403, r.text
        body = r.json()
        assert body["code"] == "forbidden" and "API key" in body["message"]
        assert {"trace_id", "timestamp"} <= body.keys()
        # The token still works for what it is for.
        r = await http.get("/api/v1/tasks", headers=bearer(token))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("junk", [
    b"lt1.eyJ9.\xc3\xa9", b"lt1.\xff\xfe.\xa0", b"lt1.eyJ9", b"lt1..", b"\xc3\xa9" * 20,
])
async def test_malformed_bearer_is_401_on_rest(server: HubProcess, junk: bytes) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/v1/tasks", headers=bearer(junk))
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "unauthorized"
        r = await http.post("/api/v1/auth/ws-token", json={}, headers=bearer(junk))
        assert r.status_code == 401, r.text


@pytest.mark.parametrize("query", ["lt1.eyJ9.%C3%A9", "lt1.%FF%FE.x", "lt1.eyJ9.eyJ9.eyJ9",
                                   "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"])
async def test_malformed_token_closes_4401_on_the_socket(server: HubProcess, query: str) -> None:
    async with connect(f"{server.ws}?token={query}") as ws:
        await ws.wait_closed()
        assert ws.close_code == 4401, (ws.close_code, ws.close_reason)


async def test_malformed_bearer_header_closes_4401(server: HubProcess) -> None:
    async with connect(server.ws, additional_headers={"Authorization": "Bearer lt1.eyJ9.\u00e9"}
                       ) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4401, (ws.close_code, ws.close_reason)


async def test_token_beyond_the_key_is_refused_naming_what(server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.post("/api/v1/auth/ws-token", headers=bearer(PUB_KEY),
                            json={"scopes": ["subscribe", "admin", "write"]})
        assert r.status_code == 403, r.text
        body = r.json()
        assert body["code"] == "forbidden" and "admin" in body["message"]
        assert [(d["field"], d["value"]) for d in body["details"]] == [
            ("scopes", "admin"), ("scopes", "write")]
        r = await http.post("/api/v1/auth/ws-token", headers=bearer(PUB_KEY),
                            json={"prefixes": ["demo.ok.", "other.", ""]})
        assert r.status_code == 403, r.text
        assert [(d["field"], d["value"]) for d in r.json()["details"]] == [
            ("prefixes", "other."), ("prefixes", "")]
        r = await http.post("/api/v1/auth/ws-token", headers=bearer(PUB_KEY),
                            json={"scopes": ["bogus"]})
        assert r.status_code == 400 and r.json()["details"][0]["value"] == "bogus", r.text
        # Within the key: granted exactly as asked.
        token = await _mint(http, PUB_KEY, scopes=["subscribe"], prefixes=["demo.sub."])
    c = await HubTestClient.open(f"{server.ws}?token={token}")
    assert (await c.subscribe("demo.sub.x"))["topics"][0]["topic"] == "demo.sub.x"
    await c.send(op="subscribe", topics=["demo.elsewhere"])
    assert (await c.next())["code"] == "forbidden"
    assert (await c.publish("demo.sub.x", 1))["code"] == "forbidden"
    await c.ws.close()


# --- the HTTP rate limiter ------------------------------------------------------------------

LIMIT = 3
BURST = 30
"""Requests sent at once: ten times the per-second limit, so some land in one window."""


@pytest.fixture(scope="module")
def limited() -> Iterator[HubProcess]:
    proc = HubProcess(env={**ENV, "LOOPAI_HTTP_RATE_LIMIT": str(LIMIT)}).start()
    yield proc
    proc.stop()


async def _burst(http: httpx.AsyncClient, credentials: list[str | None]) -> list[int]:
    async def one(credential: str | None) -> int:
        headers = bearer(credential) if credential else {}
        return (await http.get("/api/v1/tasks", headers=headers)).status_code
    return list(await asyncio.gather(*(one(c) for c in credentials)))


async def test_random_bearers_do_not_escape_the_limit(limited: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=limited.http) as http:
        codes = await _burst(http, [f"random-{uuid.uuid4().hex}" for _ in range(BURST)])
        assert set(codes) <= {401, 429} and 429 in codes, codes
        r = await http.get("/api/v1/tasks", headers=bearer(f"random-{uuid.uuid4().hex}"))
        if r.status_code == 429:
            assert r.json()["code"] == "rate_limited"
        # A valid key from the same address has its own budget.
        r = await http.get("/api/v1/tasks", headers=bearer(OTHER_KEY))
        assert r.status_code == 200, r.text


async def test_a_key_and_its_tokens_share_one_budget(limited: HubProcess) -> None:
    """Requests alternating between a key and its token draw on one bucket: three in a row
    report `RateLimit-Remaining` LIMIT-1, LIMIT-2, LIMIT-3. With a bucket each, the first
    and third (same credential) could only differ by one, or the third be a fresh window."""
    async with httpx.AsyncClient(base_url=limited.http) as http:
        r = await http.post("/api/v1/auth/ws-token", json={}, headers=bearer(PUB_KEY))
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        seen: list[int] = []
        deadline = time.monotonic() + 10
        while seen[-3:] != [LIMIT - 1, LIMIT - 2, LIMIT - 3]:
            assert time.monotonic() < deadline, seen[-12:]
            credential = (PUB_KEY, token)[len(seen) % 2]
            r = await http.get("/api/v1/tasks", headers=bearer(credential))
            assert r.status_code in (200, 429), r.text
            seen.append(int(r.headers["ratelimit-remaining"]) if r.status_code == 200 else -1)
        # Another key is not held back by pub's requests.
        codes = await _burst(http, [PUB_KEY] * BURST)
        assert 429 in codes, codes
        r = await http.get("/api/v1/tasks", headers=bearer(ADMIN_KEY))
        assert r.status_code == 200, r.text


async def test_unauthenticated_requests_are_limited_by_address(limited: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=limited.http) as http:
        codes = await _burst(http, [None] * BURST)
        assert set(codes) <= {401, 429} and 429 in codes, codes
        r = await http.get("/api/v1/tasks", headers=bearer(ADMIN_KEY))
        assert r.status_code == 200, r.text
