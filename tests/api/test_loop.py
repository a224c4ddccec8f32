"""The loop through the REST API on a real server (SQLite and PostgreSQL): cases, generation
with the built-in `examples` backend, feedback, validations, accuracy, and their events."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.api.conftest import make_task
from tests.support import datasets

TICKETS_IN, TICKETS_OUT = datasets.schemas("tickets")


def _poll(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _tickets_task(api: httpx.Client, n: int = 40, **fields: Any) -> tuple[dict[str, Any],
                                                                          list[Any]]:
    cases = datasets.dataset("tickets", n, seed=3)
    task = make_task(api, input_schema=TICKETS_IN, output_schema=TICKETS_OUT,
                     examples=[{"input": i, "output": o} for i, o in cases], **fields)
    return task, cases


def _finished(api: httpx.Client, generation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/api/v1/generations/{generation_id}").json()
        return job if job["status"] in ("completed", "failed") else None
    result: dict[str, Any] = _poll(done, "the generation to finish")
    return result


def test_a_tasks_examples_are_its_first_cases(api: httpx.Client) -> None:
    task, cases = _tickets_task(api, n=8)
    page = api.get(f"/api/v1/tasks/{task['id']}/cases", params={"limit": 5}).json()
    assert page["total"] == len({c[0]["text"] for c in cases})
    assert len(page["items"]) == 5 and page["next_cursor"]
    assert {c["source"] for c in page["items"]} == {"example"}
    rest = api.get(f"/api/v1/tasks/{task['id']}/cases",
                   params={"cursor": page["next_cursor"]}).json()
    assert len(page["items"]) + len(rest["items"]) == page["total"]


def test_cases_are_added_imported_replaced_and_deleted(api: httpx.Client) -> None:
    task = make_task(api)
    base = f"/api/v1/tasks/{task['id']}/cases"
    added = api.post(base, json={"cases": [{"input": {"text": "so good"}, "output": "positive"}]})
    assert added.status_code == 201 and added.json()["total"] == 3
    jsonl = ('{"input": {"text": "meh"}, "output": "negative"}\n\n'
             '{"input": {"text": "so good"}, "output": "negative"}\n')
    imported = api.post(f"{base}/import", json={"jsonl": jsonl})
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"added": 2, "total": 4}  # "so good" was replaced, not added
    items = api.get(base, params={"limit": 100}).json()["items"]
    by_text = {c["input"]["text"]: c for c in items}
    assert by_text["so good"]["output"] == "negative"
    bad = api.post(f"{base}/import", json={"jsonl": '{"input": 1}\nnot json\n'})
    assert bad.status_code == 400
    assert [d["field"] for d in bad.json()["details"]] == ["jsonl[line 1]", "jsonl[line 2]"]
    line = b'{"input": {"text": "raw"}, "output": "positive"}\n'
    raw = api.post(f"{base}/import.jsonl", content=line,
                   headers={"content-type": "application/x-ndjson"})
    assert raw.status_code == 201 and raw.json()["total"] == 5, raw.text
    wrong_type = api.post(f"{base}/import.jsonl", content=b"{}",
                          headers={"content-type": "image/png"})
    assert wrong_type.status_code == 415
    assert api.delete(f"{base}/{by_text['meh']['id']}").status_code == 204
    assert api.delete(f"{base}/{by_text['meh']['id']}").status_code == 404
    assert api.get(base).json()["total"] == 4


def test_generation_with_examples_makes_an_active_validated_version(api: httpx.Client) -> None:
    task, cases = _tickets_task(api, n=60)
    response = api.post(f"/api/v1/tasks/{task['id']}/generate", json={"backend": "examples"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/generations/{job['id']}"
    assert job["status"] in ("queued", "running")
    done = _finished(api, job["id"])
    assert done["status"] == "completed", done
    assert done["version"] == 1 and done["activated"] is True
    assert done["cases_total"] == len({c[0]["text"] for c in cases})
    assert done["accuracy"] >= 0.9
    artifact = api.get(f"/api/v1/tasks/{task['id']}/artifacts/1").json()
    assert artifact["status"] == "active"
    assert artifact["llm_provider"] == "examples"
    assert artifact["synthesis_strategy"].startswith("ngram_")
    assert artifact["generation_id"] == job["id"]
    assert artifact["activated_by"] == f"generation {job['id']}"
    assert "def run(input)" in artifact["code"] and "WEIGHTS" in artifact["code"]
    events = api.get(f"/api/v1/topics/tasks.{task['id']}.generations/events").json()["events"]
    types = [e["type"] for e in events]
    assert types[0] == "generation.started" and types[-1] == "generation.completed"
    assert "generation.progress" in types
    progress = next(e["data"] for e in events if e["type"] == "generation.progress")
    assert progress["attempt"] == 1 and progress["cases_total"] == done["cases_total"]
    listed = api.get(f"/api/v1/tasks/{task['id']}/generations").json()["items"]
    assert [g["id"] for g in listed] == [job["id"]]


def test_if_better_keeps_the_active_version_when_the_new_one_is_no_better(
        api: httpx.Client) -> None:
    task, _ = _tickets_task(api, n=40)
    first = _finished(api, api.post(f"/api/v1/tasks/{task['id']}/generate", json={}).json()["id"])
    assert first["activated"] is True
    again = _finished(api, api.post(f"/api/v1/tasks/{task['id']}/generate",
                                    json={"activate": "if_better"}).json()["id"])
    assert again["status"] == "completed" and again["version"] == 2
    assert again["activated"] is False  # the same cases teach the same program
    assert api.get(f"/api/v1/tasks/{task['id']}").json()["active_version"] == 1


def test_shapes_the_examples_backend_cannot_learn_are_422(api: httpx.Client) -> None:
    task = make_task(api, input_schema={"type": "number"}, output_schema={"type": "number"},
                     examples=[{"input": 1, "output": 2}, {"input": 2, "output": 4}])
    response = api.post(f"/api/v1/tasks/{task['id']}/generate", json={"backend": "examples"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "unsupported_task"
    assert "LLM backend" in body["details"][0]["message"]
    missing = api.post(f"/api/v1/tasks/{task['id']}/generate", json={"backend": "openai"})
    assert missing.status_code == 422 and missing.json()["code"] == "backend_not_configured"
    assert "LOOPAI_OPENAI_BASE_URL" in missing.json()["message"]
    assert api.post(f"/api/v1/tasks/{uuid.uuid4().hex}/generate", json={}).status_code == 404


def test_feedback_makes_a_case_and_a_validation_with_events(api: httpx.Client) -> None:
    task, _ = _tickets_task(api, n=60)
    _finished(api, api.post(f"/api/v1/tasks/{task['id']}/generate", json={}).json()["id"])
    text = {"text": "my parcel never arrived and tracking shows nothing " + uuid.uuid4().hex}
    execution = api.post(f"/api/v1/tasks/{task['id']}/execute", json={"input": text}).json()
    assert execution["status"] == "success"
    wrong = "billing" if execution["output"] != "billing" else "shipping"
    result = api.post(f"/api/v1/executions/{execution['execution_id']}/feedback",
                      json={"expected_output": wrong})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["case"]["source"] == "feedback" and body["case"]["output"] == wrong
    validation = body["validation"]
    assert validation["oracle"] == "feedback" and validation["match"] is False
    assert validation["expected"] == wrong and validation["actual"] == execution["output"]
    assert validation["failure_type"] == "value_mismatch"
    again = api.post(f"/api/v1/executions/{execution['execution_id']}/feedback",
                     json={"correct": True}).json()
    assert again["already_validated"] is True and again["validation"]["id"] == validation["id"]
    listed = api.get(f"/api/v1/tasks/{task['id']}/validations").json()["items"]
    assert [v["id"] for v in listed] == [validation["id"]]
    events = api.get(f"/api/v1/topics/tasks.{task['id']}.validations/events").json()["events"]
    assert [e["type"] for e in events] == ["validation.completed"]
    accuracy = api.get(f"/api/v1/tasks/{task['id']}/accuracy").json()
    [v1] = accuracy["versions"]
    assert (v1["version"], v1["samples"], v1["matches"]) == (1, 1, 0)
    assert 0 <= v1["low"] <= v1["high"] <= 1
    assert api.get(f"/api/v1/tasks/{task['id']}").json()["accuracy"]["samples"] == 1
    bad = api.post(f"/api/v1/executions/{execution['execution_id']}/feedback", json={})
    assert bad.status_code == 400
    metrics = api.get("/api/v1/metrics").text
    assert f'loopai_validations_total{{result="mismatch",task_id="{task["id"]}"' in metrics


def test_sampled_executions_are_validated_in_the_background_by_cases(
        api: httpx.Client) -> None:
    task, cases = _tickets_task(api, n=60)
    _finished(api, api.post(f"/api/v1/tasks/{task['id']}/generate", json={}).json()["id"])
    known = [c[0] for c in cases[:10]]
    for value in known:
        response = api.post(f"/api/v1/tasks/{task['id']}/execute",
                            json={"input": value, "force_validation": True})
        assert response.json()["sampled_for_validation"] is True

    def validated() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = api.get(f"/api/v1/tasks/{task['id']}/validations",
                                              params={"limit": 100}).json()["items"]
        return items if len(items) >= len(known) else None

    items = _poll(validated, "background validations")
    assert len(items) == len(known)
    assert {v["oracle"] for v in items} == {"cases"}
    assert len({v["execution_id"] for v in items}) == len(known)
