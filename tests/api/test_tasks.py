"""`/api/v1/tasks`: success, validation, conflicts, not-found, paging and scopes."""

from __future__ import annotations

import httpx

from tests.api.conftest import (
    READER,
    SENTIMENT_INPUT,
    SENTIMENT_OUTPUT,
    WRITER,
    client_for,
    make_active_task,
    make_task,
)
from tests.support.hub_process import HubProcess


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    assert body["trace_id"] == response.headers["x-request-id"]
    assert set(body) >= {"code", "message", "trace_id", "timestamp"}
    return body


def test_create_get_with_defaults(api: httpx.Client) -> None:
    created = make_task(api, description="tell good from bad")
    assert created["accuracy_target"] == 0.9
    assert created["latency_target_ms"] == 10
    assert created["sampling_rate"] == 0.1
    assert created["total_versions"] == 0
    assert "active_version" not in created  # absent values are omitted
    assert created["created_at"].endswith("Z")
    fetched = api.get(f"/api/v1/tasks/{created['id']}").json()
    assert fetched == created


def test_validation_errors_name_each_field(api: httpx.Client) -> None:
    body = error_of(api.post("/api/v1/tasks", json={
        "name": "x", "input_schema": {}, "output_schema": {}, "accuracy_target": 1.5,
    }), 400, "validation_error")
    assert "accuracy_target" in str(body)
    missing = error_of(api.post("/api/v1/tasks", json={"name": "x"}), 400, "validation_error")
    assert "input_schema" in str(missing)
    error_of(api.post("/api/v1/tasks", content=b"{not json",
                      headers={"content-type": "application/json"}), 400, "validation_error")
    error_of(api.post("/api/v1/tasks", json={"name": "x", "input_schema": {},
                                             "output_schema": {}, "colour": "red"}),
             400, "validation_error")


def test_bad_schemas_and_examples_are_refused(api: httpx.Client) -> None:
    bad = error_of(api.post("/api/v1/tasks", json={
        "name": "bad-schema", "input_schema": {"type": "nonsense"}, "output_schema": {},
    }), 400, "invalid_schema")
    assert bad["details"] == [{"field": "input_schema", "message": bad["details"][0]["message"]}]
    mismatch = error_of(api.post("/api/v1/tasks", json={
        "name": "bad-example", "input_schema": SENTIMENT_INPUT,
        "output_schema": SENTIMENT_OUTPUT,
        "examples": [{"input": {"text": 3}, "output": "positive"}],
    }), 400, "invalid_example")
    assert mismatch["details"][0]["field"] == "examples[0].input/text"


def test_names_are_unique(api: httpx.Client) -> None:
    task = make_task(api)
    error_of(api.post("/api/v1/tasks", json={"name": task["name"], "input_schema": {},
                                             "output_schema": {}}), 409, "name_taken")


def test_patch_changes_only_what_is_given(api: httpx.Client) -> None:
    task = make_task(api)
    changed = api.patch(f"/api/v1/tasks/{task['id']}", json={"sampling_rate": 0.5})
    assert changed.status_code == 200, changed.text
    assert changed.json()["sampling_rate"] == 0.5
    assert changed.json()["name"] == task["name"]
    assert changed.json()["updated_at"] >= task["updated_at"]
    error_of(api.patch(f"/api/v1/tasks/{task['id']}", json={"sampling_rate": 2}),
             400, "validation_error")
    error_of(api.patch(f"/api/v1/tasks/{task['id']}",
                       json={"output_schema": {"type": "integer"}}), 400, "invalid_example")
    error_of(api.patch("/api/v1/tasks/nope", json={"sampling_rate": 0.5}), 404, "not_found")


def test_list_pages_through_every_task_once(api: httpx.Client) -> None:
    mine = {make_task(api)["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/tasks", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert mine <= set(seen) and len(seen) == len(set(seen))
    error_of(api.get("/api/v1/tasks", params={"cursor": "garbage!"}), 400, "validation_error")
    error_of(api.get("/api/v1/tasks", params={"limit": 0}), 400, "validation_error")


def test_delete_refuses_an_active_task_unless_forced(api: httpx.Client) -> None:
    plain = make_task(api)
    assert api.delete(f"/api/v1/tasks/{plain['id']}").status_code == 204
    error_of(api.get(f"/api/v1/tasks/{plain['id']}"), 404, "not_found")
    active = make_active_task(api)
    error_of(api.delete(f"/api/v1/tasks/{active['id']}"), 409, "task_has_active_artifact")
    assert api.delete(f"/api/v1/tasks/{active['id']}", params={"force": "true"}
                      ).status_code == 204
    error_of(api.get(f"/api/v1/tasks/{active['id']}/artifacts"), 404, "not_found")
    error_of(api.delete("/api/v1/tasks/nope"), 404, "not_found")


def test_scopes(api_server: HubProcess, api: httpx.Client) -> None:
    task = make_task(api)
    with client_for(api_server, None) as anonymous:
        error_of(anonymous.get("/api/v1/tasks"), 401, "unauthorized")
    with client_for(api_server, "wrong-key-0123456789") as wrong:
        error_of(wrong.get("/api/v1/tasks"), 401, "unauthorized")
    with client_for(api_server, READER) as reader:
        assert reader.get(f"/api/v1/tasks/{task['id']}").status_code == 200
        error_of(reader.post("/api/v1/tasks", json={}), 403, "forbidden")
        error_of(reader.patch(f"/api/v1/tasks/{task['id']}", json={}), 403, "forbidden")
    with client_for(api_server, WRITER) as writer:
        assert writer.patch(f"/api/v1/tasks/{task['id']}", json={"description": "w"}
                            ).status_code == 200
        error_of(writer.delete(f"/api/v1/tasks/{task['id']}"), 403, "forbidden")


def test_request_ids_and_oversized_bodies(api: httpx.Client) -> None:
    response = api.get("/api/v1/tasks", headers={"x-request-id": "trace-me-42"})
    assert response.headers["x-request-id"] == "trace-me-42"
    unmatched = api.get("/api/v1/nowhere", headers={"x-request-id": "trace-me-43"})
    assert error_of(unmatched, 404, "not_found")["trace_id"] == "trace-me-43"
    big = {"name": "big", "input_schema": {}, "output_schema": {}, "description": "x" * 2_000_000}
    error_of(api.post("/api/v1/tasks", json=big), 413, "payload_too_large")


def test_rate_limit_answers_429_in_the_error_shape() -> None:
    server = HubProcess(env={"LOOPAI_HTTP_RATE_LIMIT": "5"}).start()
    try:
        with httpx.Client(base_url=server.http) as client:
            statuses = [client.get("/api/v1/tasks").status_code for _ in range(12)]
            assert statuses[:5] == [200] * 5 and 429 in statuses
            limited = client.get("/api/v1/tasks")
            if limited.status_code == 429:
                error_of(limited, 429, "rate_limited")
            assert client.get("/api/v1/health/live").status_code == 200  # never limited
    finally:
        server.stop()
