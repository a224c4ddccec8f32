"""Program artifacts: upload checks, example accuracy, versions, activation and rollback."""

from __future__ import annotations

import httpx

from tests.api.conftest import CLASSIFIER, READER, client_for, make_task
from tests.api.test_tasks import error_of
from tests.support.hub_process import HubProcess

ALWAYS_POSITIVE = "def run(input):\n    return 'positive'\n"


def upload(api: httpx.Client, task_id: str, code: str, **params: str) -> httpx.Response:
    return api.post(f"/api/v1/tasks/{task_id}/artifacts", params=params,
                    json={"code": code, "synthesis_strategy": "rules", "confidence_score": 0.7,
                          "llm_provider": "openai", "llm_model": "gpt-x"})


def test_upload_runs_the_examples_and_measures_the_program(api: httpx.Client) -> None:
    task = make_task(api)
    good = upload(api, task["id"], CLASSIFIER)
    assert good.status_code == 201, good.text
    body = good.json()
    assert body["version"] == 1 and body["status"] == "validated"
    assert body["example_accuracy"] == 1.0
    assert body["entrypoint"] == "classify"
    assert body["complexity_metrics"] == {"lines_of_code": 3, "cyclomatic_complexity": 2}
    assert (body["llm_provider"], body["llm_model"]) == ("openai", "gpt-x")
    weak = upload(api, task["id"], ALWAYS_POSITIVE).json()
    assert (weak["version"], weak["status"], weak["example_accuracy"]) == (2, "failed", 0.5)
    assert weak["validation_errors"] == ['example 1: expected "negative", got "positive"']
    task_now = api.get(f"/api/v1/tasks/{task['id']}").json()
    assert task_now["total_versions"] == 2 and "active_version" not in task_now


def test_programs_breaking_the_rules_are_refused_and_not_stored(api: httpx.Client) -> None:
    task = make_task(api)
    for code, needle in [("import os\ndef run(x):\n    return 1\n", "'os'"),
                         ("def run(x) return 1", "line 1"),
                         ("def helper(x):\n    return 1\n", "run(input) or classify(text)")]:
        body = error_of(upload(api, task["id"], code), 400, "program_rejected")
        assert needle in str(body["details"])
    assert api.get(f"/api/v1/tasks/{task['id']}/artifacts").json() == {"items": []}
    error_of(api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                      json={"code": "def run(x):\n    return 1\n", "language": "ruby"}),
             400, "validation_error")


def test_activation_deprecates_the_previous_and_rollback_works(api: httpx.Client) -> None:
    task = make_task(api)
    upload(api, task["id"], CLASSIFIER)
    second = CLASSIFIER.replace("great", "superb")
    upload(api, task["id"], second)
    first = api.post(f"/api/v1/tasks/{task['id']}/artifacts/1/activate")
    assert first.status_code == 200 and first.json()["status"] == "active"
    assert api.post(f"/api/v1/tasks/{task['id']}/artifacts/2/activate").json()["status"] == \
        "active"
    statuses = {a["version"]: a["status"] for a in
                api.get(f"/api/v1/tasks/{task['id']}/artifacts").json()["items"]}
    assert statuses == {1: "deprecated", 2: "active"}
    api.post(f"/api/v1/tasks/{task['id']}/artifacts/1/activate")  # roll back
    statuses = {a["version"]: a["status"] for a in
                api.get(f"/api/v1/tasks/{task['id']}/artifacts").json()["items"]}
    assert statuses == {1: "active", 2: "deprecated"}
    assert api.get(f"/api/v1/tasks/{task['id']}").json()["active_version"] == 1
    assert api.get(f"/api/v1/tasks/{task['id']}/artifacts/2").json()["status"] == "deprecated"


def test_failed_versions_need_force_and_upload_can_activate(api: httpx.Client) -> None:
    task = make_task(api)
    weak = upload(api, task["id"], ALWAYS_POSITIVE, activate="true").json()
    assert weak["status"] == "failed"  # ?activate=true only activates what validated
    error_of(api.post(f"/api/v1/tasks/{task['id']}/artifacts/1/activate"), 409,
             "artifact_failed")
    forced = api.post(f"/api/v1/tasks/{task['id']}/artifacts/1/activate",
                      params={"force": "true"})
    assert forced.json()["status"] == "active"
    good = upload(api, task["id"], CLASSIFIER, activate="true").json()
    assert (good["version"], good["status"]) == (2, "active")


def test_not_found_and_scopes(api_server: HubProcess, api: httpx.Client) -> None:
    task = make_task(api)
    error_of(api.get(f"/api/v1/tasks/{task['id']}/artifacts/7"), 404, "not_found")
    error_of(api.get("/api/v1/tasks/nope/artifacts"), 404, "not_found")
    error_of(upload(api, "nope", CLASSIFIER), 404, "not_found")
    error_of(api.post(f"/api/v1/tasks/{task['id']}/artifacts/7/activate"), 404, "not_found")
    with client_for(api_server, READER) as reader:
        error_of(upload(reader, task["id"], CLASSIFIER), 403, "forbidden")
        assert reader.get(f"/api/v1/tasks/{task['id']}/artifacts").status_code == 200
