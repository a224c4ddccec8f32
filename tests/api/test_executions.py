"""Execute, batch execute, execution records, sampling, metrics and live hub events."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from tests.api.conftest import ADMIN, READER, client_for, make_active_task, make_task
from tests.api.test_tasks import error_of
from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient


def execute(api: httpx.Client, task_id: str, **body: Any) -> httpx.Response:
    return api.post(f"/api/v1/tasks/{task_id}/execute", json=body)


def test_execute_returns_the_programs_answer(api: httpx.Client) -> None:
    task = make_active_task(api)
    response = execute(api, task["id"], input={"text": "a great day"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["output"], body["version"]) == ("success", "positive", 1)
    assert body["task_id"] == task["id"] and body["program_id"]
    assert body["latency_ms"] >= 0 and body["memory_usage_mb"] > 0
    assert body["executed_at"].endswith("Z")
    assert isinstance(body["sampled_for_validation"], bool)
    assert "input" not in body
    stored = api.get(f"/api/v1/executions/{body['execution_id']}").json()
    assert stored["input"] == {"text": "a great day"} and stored["output"] == "positive"


def test_inputs_and_outputs_are_checked_against_the_schemas(api: httpx.Client) -> None:
    task = make_active_task(api)
    bad = error_of(execute(api, task["id"], input={"words": "x"}), 400, "invalid_input")
    assert bad["details"] == [{"field": "input", "message": '"text" is a required property'}]
    wrong_output = make_active_task(
        api, code="def run(input):\n    return 'positive' if 'love' in input['text'] else 42\n",
        examples=[{"input": {"text": "love"}, "output": "positive"}])
    result = execute(api, wrong_output["id"], input={"text": "meh"}).json()
    assert result["status"] == "error"
    assert "output_schema" in result["error_message"] and "output" not in result


def test_hostile_programs_end_as_error_or_timeout(api: httpx.Client) -> None:
    loop = make_active_task(
        api, code="def run(input):\n    while True:\n        pass\n", examples=[])
    timed_out = execute(api, loop["id"], input={"text": "x"}, timeout_ms=300).json()
    assert timed_out["status"] == "timeout" and "300 ms" in timed_out["error_message"]
    bomb = make_active_task(
        api, code="def run(input):\n    return len('x' * 10 ** 10)\n", examples=[])
    result = execute(api, bomb["id"], input={"text": "x"}).json()
    assert result["status"] == "error" and "MemoryError" in result["error_message"]
    healthy = make_active_task(api)
    assert execute(api, healthy["id"], input={"text": "good"}).json()["output"] == "positive"
    error_of(execute(api, healthy["id"], input={"text": "x"}, timeout_ms=0), 400,
             "validation_error")


def test_no_active_program_and_versions(api: httpx.Client) -> None:
    task = make_task(api)
    error_of(execute(api, task["id"], input={"text": "x"}), 409, "no_active_artifact")
    error_of(execute(api, "nope", input={"text": "x"}), 404, "not_found")
    active = make_active_task(api)
    api.post(f"/api/v1/tasks/{active['id']}/artifacts",
             json={"code": "def run(input):\n    return 'negative'\n"})
    older = execute(api, active["id"], input={"text": "good"}, version=2).json()
    assert (older["version"], older["output"]) == (2, "negative")
    error_of(execute(api, active["id"], input={"text": "x"}, version=9), 404, "not_found")


def test_batch_has_a_result_per_item(api: httpx.Client) -> None:
    task = make_active_task(api)
    inputs: list[Any] = [{"text": f"good {i}"} for i in range(30)] + [{"nope": 1}, "plain"]
    response = api.post(f"/api/v1/tasks/{task['id']}/execute/batch",
                        json={"inputs": inputs, "force_validation": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["succeeded"], body["failed"]) == (32, 30, 2)
    assert [r["index"] for r in body["results"]] == list(range(32))
    assert all(r["execution"]["sampled_for_validation"] for r in body["results"][:30])
    assert body["results"][30]["error"]["code"] == "invalid_input"
    error_of(api.post(f"/api/v1/tasks/{task['id']}/execute/batch",
                      json={"inputs": [{"text": "x"}] * 1001}), 400, "validation_error")


def test_execution_listing_filters_and_pages(api: httpx.Client) -> None:
    task = make_active_task(api, sampling_rate=0.0)
    for i in range(6):
        execute(api, task["id"], input={"text": "good" if i % 2 else "bad"},
                force_validation=i < 2)
    base = f"/api/v1/tasks/{task['id']}/executions"
    everything = api.get(base).json()["items"]
    assert len(everything) == 6
    assert [e["executed_at"] for e in everything] == sorted(
        (e["executed_at"] for e in everything), reverse=True)
    sampled = api.get(base, params={"sampled": "true"}).json()["items"]
    assert len(sampled) == 2 and all(e["sampled_for_validation"] for e in sampled)
    assert len(api.get(base, params={"status": "success"}).json()["items"]) == 6
    assert api.get(base, params={"status": "timeout"}).json()["items"] == []
    future = api.get(base, params={"since": "2999-01-01T00:00:00Z"}).json()["items"]
    assert future == []
    pages: list[str] = []
    cursor = None
    while True:
        page = api.get(base, params={"limit": 4, **({"cursor": cursor} if cursor else {})}
                       ).json()
        pages += [e["execution_id"] for e in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert pages == [e["execution_id"] for e in everything]
    error_of(api.get(base, params={"since": "yesterday"}), 400, "validation_error")
    error_of(api.get(base, params={"status": "exploded"}), 400, "validation_error")
    error_of(api.get("/api/v1/executions/nope"), 404, "not_found")


def test_scopes_for_execution(api_server: HubProcess, api: httpx.Client) -> None:
    task = make_active_task(api)
    with client_for(api_server, READER) as reader:
        error_of(execute(reader, task["id"], input={"text": "x"}), 403, "forbidden")
        assert reader.get(f"/api/v1/tasks/{task['id']}/executions").status_code == 200


async def test_subscribers_see_every_execution_and_artifact_change(
        api_server: HubProcess, api: httpx.Client) -> None:
    task = make_task(api, include_input_in_events=False)
    sub = await HubTestClient.open(api_server.ws, token=ADMIN)
    try:
        await sub.subscribe(f"tasks.{task['id']}.executions", f"tasks.{task['id']}.artifacts")
        loop = asyncio.get_running_loop()

        def work() -> list[str]:
            upload = api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                              params={"activate": "true"},
                              json={"code": "def classify(text):\n    return 'positive' if"
                                            " 'love' in text else 'negative'\n"})
            assert upload.status_code == 201, upload.text
            ids = [execute(api, task["id"], input={"text": f"love {i}"}).json()["execution_id"]
                   for i in range(5)]
            ids.append(execute(api, task["id"], input={"text": "x"}, timeout_ms=1).json()
                       ["execution_id"])
            return ids

        ids = await loop.run_in_executor(None, work)
        events = await sub.events(2 + 6, timeout=10)
    finally:
        await sub.close()
    types = [e["type"] for e in events]
    assert types[:2] == ["artifact.created", "artifact.activated"]
    assert "code" not in events[0]["data"]
    executions = events[2:]
    assert [e["data"]["execution_id"] for e in executions] == ids
    assert all(e["topic"] == f"tasks.{task['id']}.executions" for e in executions)
    assert all("input" not in e["data"] for e in executions)  # the task keeps inputs private
    assert {e["type"] for e in executions} <= {"execution.completed", "execution.timed_out",
                                               "execution.failed"}


def test_metrics_cover_http_executions_artifacts_and_cache(api: httpx.Client) -> None:
    task = make_active_task(api)
    for _ in range(3):
        execute(api, task["id"], input={"text": "good"})
    text = api.get("/api/v1/metrics").text
    count = re.search(rf'loopai_executions_total{{status="success",task_id="{task["id"]}"}} '
                      r"(\d+)", text)
    assert count is not None and int(count.group(1)) == 3
    assert 'loopai_http_requests_total{method="POST",route="/api/v1/tasks/{task_id}/execute"' \
        in text
    assert "loopai_execution_latency_seconds_bucket" in text
    assert re.search(r'loopai_artifacts{status="active"} [1-9]', text)
    assert re.search(r'loopai_program_cache_total{result="hit"} [1-9]', text)


def test_retention_drops_old_unsampled_records_and_keeps_sampled_ones() -> None:
    server = HubProcess(env={"LOOPAI_EXECUTION_RETENTION_S": "1",
                             "LOOPAI_SANDBOX_WORKERS": "1"}).start()
    try:
        with client_for(server, None) as api:
            task = make_active_task(api, sampling_rate=0.0)
            kept = execute(api, task["id"], input={"text": "good"}, force_validation=True)
            dropped = execute(api, task["id"], input={"text": "good"})
            base = f"/api/v1/tasks/{task['id']}/executions"
            assert len(api.get(base).json()["items"]) == 2
            deadline = time.monotonic() + 10
            while len(api.get(base).json()["items"]) > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            items = api.get(base).json()["items"]
            assert [e["execution_id"] for e in items] == [kept.json()["execution_id"]]
            error_of(api.get(f"/api/v1/executions/{dropped.json()['execution_id']}"), 404,
                     "not_found")
    finally:
        server.stop()


def test_a_batch_of_slow_programs_ends_at_its_deadline() -> None:
    server = HubProcess(env={"LOOPAI_BATCH_DEADLINE_S": "1",
                             "LOOPAI_SANDBOX_WORKERS": "1"}).start()
    try:
        with client_for(server, None) as api:
            task = make_active_task(
                api, code="def run(input):\n    while True:\n        pass\n", examples=[])
            started = time.monotonic()
            body = api.post(f"/api/v1/tasks/{task['id']}/execute/batch",
                            json={"inputs": [{"text": str(i)} for i in range(30)],
                                  "timeout_ms": 300}).json()
            assert time.monotonic() - started < 10
            codes = [r["error"]["code"] if "error" in r else r["execution"]["status"]
                     for r in body["results"]]
            assert codes[0] == "timeout" and codes[-1] == "deadline_exceeded"
            assert body["succeeded"] == 0 and body["failed"] == 30
    finally:
        server.stop()
