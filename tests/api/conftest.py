"""A real server process per module, once on SQLite and once on PostgreSQL, with scoped keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.hub_process import HubProcess
from tests.support.postgres import postgres_database

ADMIN = "admin-key-0123456789"
WRITER = "write-key-0123456789"
READER = "read-key-01234567890"
KEYS = [
    {"key": ADMIN, "scopes": ["admin"], "name": "admin"},
    {"key": WRITER, "scopes": ["read", "write", "subscribe"], "name": "writer"},
    {"key": READER, "scopes": ["read", "subscribe"], "name": "reader"},
]


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_server(request: pytest.FixtureRequest) -> Iterator[HubProcess]:
    env = {"LOOPAI_API_KEYS": json.dumps(KEYS), "LOOPAI_SANDBOX_WORKERS": "2"}
    if request.param == "postgres":
        with postgres_database() as url:
            server = HubProcess(env={**env, "LOOPAI_DATABASE_URL": url}).start()
            yield server
            server.stop()
    else:
        server = HubProcess(env=env).start()
        yield server
        server.stop()


def client_for(server: HubProcess, key: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.http, headers=headers, timeout=30)


@pytest.fixture
def api(api_server: HubProcess) -> Iterator[httpx.Client]:
    with client_for(api_server, ADMIN) as client:
        yield client


SENTIMENT_INPUT = {"type": "object", "properties": {"text": {"type": "string"}},
                   "required": ["text"]}
SENTIMENT_OUTPUT = {"type": "string", "enum": ["positive", "negative"]}
CLASSIFIER = (
    "import re\n"
    "def classify(text):\n"
    "    return 'positive' if re.search(r'good|love|great', text) else 'negative'\n"
)


def make_task(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"sentiment-{uuid.uuid4().hex[:10]}",
        "input_schema": SENTIMENT_INPUT,
        "output_schema": SENTIMENT_OUTPUT,
        "examples": [{"input": {"text": "I love it"}, "output": "positive"},
                     {"input": {"text": "awful"}, "output": "negative"}],
        **fields,
    }
    response = api.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def make_active_task(api: httpx.Client, code: str = CLASSIFIER, **fields: Any) -> dict[str, Any]:
    task = make_task(api, **fields)
    response = api.post(f"/api/v1/tasks/{task['id']}/artifacts", params={"activate": "true"},
                        json={"code": code})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active", response.text
    return task
