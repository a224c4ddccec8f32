"""Generation through the REST API with the remote backends: a fake OpenAI-compatible server
and a fake generator service on real sockets. Good code, code in prose, code that breaks the
policy and is corrected, code that fails the cases; 500s; dropped connections; the circuit
breaker opening (generate answers 503 with Retry-After at once) and closing again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_http import Drop, FakeHttpServer, Reply
from tests.support.hub_process import HubProcess

GOOD = "def run(input):\n    return 'even' if input % 2 == 0 else 'odd'\n"
WRONG = "def run(input):\n    return 'odd'\n"
HOSTILE = "import os\ndef run(input):\n    return os.getcwd()\n"
KEY = "sk-test-secret-0123456789"


def chat(content: str) -> Reply:
    return Reply(body={"choices": [{"message": {"role": "assistant", "content": content}}],
                       "model": "fake-model", "usage": {"total_tokens": 42}})


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeHttpServer, FakeHttpServer]]:
    llm, service = FakeHttpServer().start(), FakeHttpServer().start()
    try:
        yield llm, service
    finally:
        llm.stop()
        service.stop()


@pytest.fixture(scope="module")
def server(fakes: tuple[FakeHttpServer, FakeHttpServer]) -> Iterator[HubProcess]:
    llm, service = fakes
    hub = HubProcess(env={
        "LOOPAI_OPENAI_BASE_URL": llm.url, "LOOPAI_OPENAI_MODEL": "fake-model",
        "LOOPAI_OPENAI_API_KEY": KEY, "LOOPAI_GENERATOR_HTTP_URL": service.url,
        "LOOPAI_GENERATOR_RETRIES": "1", "LOOPAI_GENERATOR_TIMEOUT_S": "2",
        "LOOPAI_GENERATOR_BREAKER_FAILURES": "2", "LOOPAI_GENERATOR_BREAKER_RESET_S": "1.5",
    }).start()
    yield hub
    hub.stop()
    log = hub.log_path.read_text() if hub.log_path else ""
    assert KEY not in log


@pytest.fixture
def api(server: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http, timeout=30) as client:
        yield client


def _task(api: httpx.Client, **fields: Any) -> str:
    body = {"name": f"parity-{uuid.uuid4().hex[:8]}", "description": "even or odd",
            "input_schema": {"type": "integer"},
            "output_schema": {"type": "string", "enum": ["even", "odd"]},
            "examples": [{"input": i, "output": "even" if i % 2 == 0 else "odd"}
                         for i in range(6)], **fields}
    return str(api.post("/api/v1/tasks", json=body).json()["id"])


def _run(api: httpx.Client, task_id: str, backend: str) -> dict[str, Any]:
    response = api.post(f"/api/v1/tasks/{task_id}/generate", json={"backend": backend})
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/api/v1/generations/{response.json()['id']}").json()
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("generation did not finish")


def test_code_in_prose_from_a_chat_model_becomes_the_active_version(
        api: httpx.Client, fakes: tuple[FakeHttpServer, FakeHttpServer]) -> None:
    llm, _ = fakes
    llm.script(chat(f"Here is the program:\n\n```python\n{GOOD}```\nIt checks parity."))
    task_id = _task(api)
    job = _run(api, task_id, "openai")
    assert job["status"] == "completed" and job["activated"], job
    assert job["model"] == "fake-model" and job["accuracy"] == 1.0
    artifact = api.get(f"/api/v1/tasks/{task_id}/artifacts/{job['version']}").json()
    assert (artifact["llm_provider"], artifact["synthesis_strategy"]) == ("openai", "llm")
    sent = llm.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    prompt = sent.json["messages"][-1]["content"]
    assert "even or odd" in prompt and '"enum"' in prompt


def test_a_policy_breach_goes_back_to_the_model_which_corrects_it(
        api: httpx.Client, fakes: tuple[FakeHttpServer, FakeHttpServer]) -> None:
    llm, _ = fakes
    llm.script(chat(f"```python\n{HOSTILE}```"), chat(f"```python\n{GOOD}```"))
    before = len(llm.requests)
    job = _run(api, _task(api), "openai")
    assert job["status"] == "completed" and job["attempts"] == 2, job
    follow_up = llm.requests[before + 1].json["messages"][-1]["content"]
    assert "os" in follow_up  # the model was told what was wrong


def test_code_that_fails_the_cases_is_stored_as_failed_and_not_activated(
        api: httpx.Client, fakes: tuple[FakeHttpServer, FakeHttpServer]) -> None:
    llm, _ = fakes
    llm.script(then=chat(f"```python\n{WRONG}```"))
    task_id = _task(api)
    job = _run(api, task_id, "openai")
    assert job["status"] == "completed" and job["activated"] is False, job
    assert job["accuracy"] == 0.5 and job["attempts"] == 3
    artifact = api.get(f"/api/v1/tasks/{task_id}/artifacts/{job['version']}").json()
    assert artifact["status"] == "failed" and artifact["validation_errors"]


def test_the_generator_service_contract(
        api: httpx.Client, fakes: tuple[FakeHttpServer, FakeHttpServer]) -> None:
    _, service = fakes
    service.script(Reply(body={"success": True, "code": GOOD, "language": "python",
                               "metadata": {"engine": "fake"}}),
                   Reply(body={"success": False, "language": "python",
                               "error_message": "cannot do that"}))
    task_id = _task(api)
    job = _run(api, task_id, "http")
    assert job["status"] == "completed" and job["activated"], job
    sent = service.requests[-1]
    assert sent.path == "/generate"
    assert {"task_id", "task_name", "description", "input_schema", "output_schema",
            "examples"} <= set(sent.json)
    assert {"input": 3, "output": "odd"} in sent.json["examples"]
    failed = _run(api, task_id, "http")
    assert failed["status"] == "failed" and "cannot do that" in failed["error"]["message"]


def test_failures_open_the_breaker_then_a_probe_closes_it(
        api: httpx.Client, fakes: tuple[FakeHttpServer, FakeHttpServer]) -> None:
    llm, _ = fakes
    llm.script(Reply(500, {"error": "boom"}), Drop(), Reply(500, {"error": "boom"}), Drop(),
               then=Reply(500, {"error": "boom"}))
    task_id = _task(api)
    for _ in range(2):  # two failed calls (each retried once) open it
        job = _run(api, task_id, "openai")
        assert job["status"] == "failed", job
    asked = len(llm.requests)
    refused = api.post(f"/api/v1/tasks/{task_id}/generate", json={"backend": "openai"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "unavailable" and int(refused.headers["retry-after"]) >= 1
    assert len(llm.requests) == asked  # refused at once, nothing sent
    metrics = api.get("/api/v1/metrics").text
    assert 'loopai_generator_breaker_state{backend="openai"} 2.0' in metrics
    llm.script(then=chat(f"```python\n{GOOD}```"))
    deadline = time.monotonic() + 10
    while True:  # once the reset time has passed, one probe goes through and closes it
        response = api.post(f"/api/v1/tasks/{task_id}/generate", json={"backend": "openai"})
        if response.status_code == 202:
            break
        assert response.status_code == 503 and time.monotonic() < deadline
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while (job := api.get(f"/api/v1/generations/{response.json()['id']}").json())[
            "status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job["status"] == "completed", job
    assert 'loopai_generator_breaker_state{backend="openai"} 0.0' in api.get(
        "/api/v1/metrics").text
