"""Two instances on Redis and one PostgreSQL database share the validation queue: every
sampled execution is validated once, none twice, and none is lost when one instance is
killed (kill -9) in the middle of the queue. The `llm` oracle is a fake OpenAI-compatible
server on a real socket that answers slowly, so the queue takes a few seconds to drain."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_http import FakeHttpServer, Recorded, Reply
from tests.support.hub_process import HubProcess
from tests.support.postgres import postgres_database
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

EXECUTIONS = 120


def _oracle(request: Recorded) -> Reply:
    """Answers `{"output": "<even|odd>"}` for the number in the input, after 40 ms."""
    prompt = request.json["messages"][-1]["content"]
    number = int(re.findall(r"Input:\s*(-?\d+)", prompt)[-1])
    answer = json.dumps({"output": "even" if number % 2 == 0 else "odd"})
    return Reply(body={"choices": [{"message": {"role": "assistant", "content": answer}}],
                       "usage": {"total_tokens": 12}}, delay=0.04)


@pytest.fixture
def cluster() -> Iterator[tuple[list[HubProcess], FakeHttpServer]]:
    llm = FakeHttpServer().start()
    llm.script(then=_oracle)
    redis = RedisServer().start()
    hubs: list[HubProcess] = []
    try:
        with postgres_database() as url:
            env = {"LOOPAI_REDIS_URL": redis.url, "LOOPAI_DATABASE_URL": url,
                   "LOOPAI_OPENAI_BASE_URL": llm.url, "LOOPAI_OPENAI_MODEL": "fake",
                   "LOOPAI_VALIDATION_ORACLE": "llm", "LOOPAI_VALIDATION_LEASE_S": "2"}
            hubs = [HubProcess(env=env, instance_id=f"v-{i}").start() for i in range(2)]
            yield hubs, llm
    finally:
        for hub in hubs:
            hub.kill()
        redis.stop()
        llm.stop()


def _validations(api: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get(f"/api/v1/tasks/{task_id}/validations",
                       params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def test_each_sampled_execution_is_validated_once_even_when_an_instance_dies(
        cluster: tuple[list[HubProcess], FakeHttpServer]) -> None:
    (a, b), llm = cluster
    with httpx.Client(base_url=a.http, timeout=30) as api:
        task = api.post("/api/v1/tasks", json={
            "name": f"parity-{uuid.uuid4().hex[:6]}", "input_schema": {"type": "integer"},
            "output_schema": {"type": "string", "enum": ["even", "odd"]},
            "sampling_rate": 1.0}).json()
        program = "def run(n):\n    return 'even' if n % 2 == 0 else 'odd'\n"
        uploaded = api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                            params={"activate": "true"}, json={"code": program})
        assert uploaded.status_code == 201, uploaded.text
        batch = api.post(f"/api/v1/tasks/{task['id']}/execute/batch",
                         json={"inputs": list(range(EXECUTIONS))}).json()
        executed = {r["execution"]["execution_id"] for r in batch["results"]}
        assert len(executed) == EXECUTIONS
        deadline = time.monotonic() + 30
        while len(_validations(api, task["id"])) < 10:  # the queue is being worked on
            assert time.monotonic() < deadline, "no validation started"
            time.sleep(0.05)
        b.kill()  # kill -9, holding claims
        partial = len(_validations(api, task["id"]))
        assert partial < EXECUTIONS, "the queue drained before the kill: make it longer"
        deadline = time.monotonic() + 60
        while len(validations := _validations(api, task["id"])) < EXECUTIONS:
            assert time.monotonic() < deadline, f"{len(validations)} of {EXECUTIONS} validated"
            time.sleep(0.1)
    ids = [v["execution_id"] for v in validations]
    assert len(ids) == EXECUTIONS and set(ids) == executed  # all of them, each once
    # `llm`, or `cases` for an execution whose answer the killed instance had already kept as
    # a case (the llm oracle stores its answers) before it could store the validation.
    oracles = [v["oracle"] for v in validations]
    assert set(oracles) <= {"llm", "cases"} and oracles.count("llm") > EXECUTIONS // 2
    assert all(v["match"] for v in validations)
    assert len(llm.requests) >= EXECUTIONS  # the oracle was asked for each (some twice:
    # a claim the killed instance held is asked again; its validation is stored only once)
