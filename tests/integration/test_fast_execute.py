"""The execute route's fast path (`api/fast_execute.py`): a plain request is answered beside
Litestar exactly as the route answers it; everything else reaches the route, body and all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from loopai.api.fast_execute import FastExecute
from loopai.app import create_app
from loopai.config import Settings

WRITER = "fast-write-key-0123456789"
READER = "fast-read-key-01234567890"
KEYS = [{"key": WRITER, "scopes": ["read", "write"], "name": "w"},
        {"key": READER, "scopes": ["read"], "name": "r"}]
TASK = {"name": "fast", "input_schema": {"type": "object", "properties": {
            "text": {"type": "string"}}, "required": ["text"]},
        "output_schema": {"type": "string"},
        "examples": [{"input": {"text": "a"}, "output": "A"}], "sampling_rate": 0.0}
CODE = "def run(input):\n    return input['text'].upper()\n"


def _client(tmp_path: Path, **env: str) -> Iterator[tuple[TestClient[Any], str, Any]]:
    app = create_app(Settings.from_env({
        "LOOPAI_DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "LOOPAI_METRICS_INTERVAL_MS": "0",
        "LOOPAI_SANDBOX_WORKERS": "1", **env}))
    with TestClient(app) as client:
        if "LOOPAI_API_KEYS" in env:
            client.headers["authorization"] = f"Bearer {WRITER}"
        task = client.post("/api/v1/tasks", json=TASK).json()["id"]
        made = client.post(f"/api/v1/tasks/{task}/artifacts", params={"activate": "true"},
                           json={"code": CODE})
        assert made.status_code == 201, made.text
        yield client, task, app.asgi_handler.fast  # type: ignore[attr-defined]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient[Any], str, FastExecute]]:
    yield from _client(tmp_path)


def _shape(response: Any) -> tuple[int, set[str], dict[str, Any]]:
    body = response.json()
    stable = {k: v for k, v in body.items() if k not in ("execution_id", "executed_at",
                                                         "latency_ms", "memory_usage_mb")}
    return response.status_code, set(body), stable


def test_a_plain_request_is_served_beside_the_route_with_the_routes_answer(
    served: tuple[TestClient[Any], str, FastExecute],
) -> None:
    client, task, fast = served
    path = f"/api/v1/tasks/{task}/execute"
    quick = client.post(path, json={"input": {"text": "hi"}})
    assert (fast.served, fast.passed) == (1, 0)
    # An Origin header sends the request through Litestar (and its CORS layer).
    routed = client.post(path, json={"input": {"text": "hi"}},
                         headers={"origin": "http://elsewhere.example"})
    assert (fast.served, fast.passed) == (1, 0), "an Origin never reaches the fast path"
    assert _shape(quick) == _shape(routed)
    assert quick.json()["output"] == "HI"
    assert quick.headers["content-type"] == routed.headers["content-type"]
    assert quick.headers["x-request-id"]
    # The record is the route's record: readable, with its input.
    record = client.get(f"/api/v1/executions/{quick.json()['execution_id']}").json()
    assert record["input"] == {"text": "hi"} and record["output"] == "HI"
    assert 'route="/api/v1/tasks/{task_id}/execute"' in client.get("/api/v1/metrics").text


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b'{"input": {"text": "hi"}', "application/json", 400, "validation_error"),
    (b'{"input": {"text": "hi"}, "timeout_ms": "5"}', "application/json", 400,
     "validation_error"),
    (b'{"input": {"text": 5}}', "application/json", 400, "invalid_input"),
    (b'{"input": {"text": "hi"}}', "text/plain", 415, "unsupported_media_type"),
    (b"[" * 200 + b"]" * 200, "application/json", 400, "validation_error"),
])
def test_what_the_fast_path_cannot_answer_reaches_the_route_with_its_body(
    served: tuple[TestClient[Any], str, FastExecute], body: bytes, content_type: str,
    status: int, code: str,
) -> None:
    client, task, fast = served
    response = client.post(f"/api/v1/tasks/{task}/execute", content=body,
                           headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["trace_id"]
    assert fast.served == 0 and fast.passed == 1


def test_an_unknown_task_is_the_routes_404(
    served: tuple[TestClient[Any], str, FastExecute],
) -> None:
    client, _, fast = served
    response = client.post("/api/v1/tasks/nope/execute", json={"input": {"text": "hi"}})
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert fast.passed == 1


def test_with_auth_only_a_caller_allowed_to_write_is_served(tmp_path: Path) -> None:
    for client, task, fast in _client(tmp_path, LOOPAI_API_KEYS=json.dumps(KEYS)):
        path = f"/api/v1/tasks/{task}/execute"
        body = json.dumps({"input": {"text": "hi"}})
        plain = {"content-type": "application/json"}
        assert client.post(path, content=body, headers=plain).status_code == 200
        assert fast.served == 1
        reader = client.post(path, content=body,
                             headers={**plain, "authorization": f"Bearer {READER}"})
        nobody = client.post(path, content=body,
                             headers={**plain, "authorization": "Bearer wrong-key-000000"})
        assert (reader.status_code, nobody.status_code) == (403, 401)
        assert reader.json()["code"] == "forbidden" and nobody.json()["code"] == "unauthorized"
        assert (fast.served, fast.passed) == (1, 2)


def test_with_an_http_rate_limit_every_request_goes_through_litestar(tmp_path: Path) -> None:
    for client, task, fast in _client(tmp_path, LOOPAI_HTTP_RATE_LIMIT="1000"):
        assert fast is None
        response = client.post(f"/api/v1/tasks/{task}/execute", json={"input": {"text": "x"}})
        assert response.status_code == 200 and response.json()["output"] == "X"
