"""ApiClient and AsyncApiClient against a real server, and the error shape as ApiError."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import loopai_client
import pytest
from loopai_client import ApiClient, ApiError, AsyncApiClient, Execution, HubClient
from tests.support.hub_process import HubProcess

CLASSIFIER = ("import re\ndef classify(text):\n"
              "    return 'positive' if re.search(r'good|love', text) else 'negative'\n")
INPUT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OUTPUT = {"type": "string", "enum": ["positive", "negative"]}


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    hub = HubProcess(env={"LOOPAI_SANDBOX_WORKERS": "1"}).start()
    yield hub
    hub.stop()


def test_a_task_from_creation_to_records(server: HubProcess) -> None:
    with ApiClient(server.http) as api:
        task = api.create_task(f"py-{uuid.uuid4().hex[:8]}", INPUT, OUTPUT,
                               examples=[{"input": {"text": "love"}, "output": "positive"}])
        artifact = api.upload_artifact(task.id, CLASSIFIER, activate=True, llm_model="m1")
        assert (artifact.status, artifact.version, artifact.llm_model) == ("active", 1, "m1")
        assert artifact.complexity_metrics is not None
        result = api.execute(task.id, {"text": "good"}, force_validation=True)
        assert (result.status, result.output, result.sampled_for_validation) == (
            "success", "positive", True)
        batch = api.execute_batch(task.id, [{"text": "meh"}, {"oops": 1}])
        assert (batch.succeeded, batch.failed) == (1, 1)
        assert batch.results[1].error is not None
        assert batch.results[1].error.code == "invalid_input"
        page = api.list_executions(task.id, sampled=True)
        assert [e.execution_id for e in page.items] == [result.execution_id]
        assert api.get_execution(result.execution_id).input == {"text": "good"}
        assert api.get_task(task.id).active_version == 1
        assert [a.version for a in api.list_artifacts(task.id)] == [1]
        assert api.update_task(task.id, sampling_rate=0.5).sampling_rate == 0.5
        assert task.id in [t.id for t in api.list_tasks(limit=500).items]
        assert api.health("/ready")["status"] == "ready"
        api.delete_task(task.id, force=True)


def test_errors_carry_code_message_and_trace_id(server: HubProcess) -> None:
    with ApiClient(server.http) as api:
        with pytest.raises(ApiError) as missing:
            api.get_task("nope")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert missing.value.trace_id and "task nope not found" in missing.value.message
        with pytest.raises(ApiError) as bad:
            api.create_task("x", {"type": "nonsense"}, {})
        assert bad.value.status == 400 and bad.value.code == "invalid_schema"
        assert bad.value.details and bad.value.details[0]["field"] == "input_schema"


async def test_async_client_and_typed_events(server: HubProcess) -> None:
    async with AsyncApiClient(server.http) as api, HubClient(server.ws) as hub:
        task = await api.create_task(f"py-async-{uuid.uuid4().hex[:8]}", INPUT, OUTPUT)
        await api.upload_artifact(task.id, CLASSIFIER, activate=True)
        events = await hub.subscribe(f"tasks.{task.id}.executions")
        done = await api.execute(task.id, {"text": "love it"})
        event = await events.get(timeout=10)
        payload = event.payload()  # type: ignore[union-attr]
        assert isinstance(payload, Execution) and payload.execution_id == done.execution_id
        published = await api.publish("py.free", "custom.thing", {"a": 1})
        assert published.topic == "py.free"


def test_every_public_name_is_exported() -> None:
    for name in loopai_client.__all__:
        assert hasattr(loopai_client, name), name
    assert set(loopai_client.__all__) >= {"HubClient", "ApiClient", "AsyncApiClient", "Event",
                                          "Gap", "ApiError", "AuthenticationError", "Backoff"}


def test_tail_prints_events_as_json_lines(server: HubProcess) -> None:
    tail = subprocess.Popen([sys.executable, "-m", "loopai_client", "tail", "py.tail", "--url",
                             server.ws, "--count", "2"], stdout=subprocess.PIPE, text=True)
    try:
        with ApiClient(server.http) as api:
            for n in range(40):  # until the tail is subscribed and has seen two
                api.publish("py.tail", "tick", {"n": n})
                if tail.poll() is not None:
                    break
                time.sleep(0.1)
        out, _ = tail.communicate(timeout=10)
    finally:
        tail.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2 and all(line["topic"] == "py.tail" for line in lines)
    assert lines[1]["data"]["n"] == lines[0]["data"]["n"] + 1
