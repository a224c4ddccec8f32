"""The OpenAPI document: complete enough to fuzz, and fuzzing finds no 500 or schema break."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import client_for, make_active_task, make_task
from tests.support.hub_process import HubProcess


def test_document_has_every_route_errors_and_examples(api: httpx.Client) -> None:
    doc = api.get("/schema/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in ("/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/artifacts",
                 "/api/v1/tasks/{task_id}/artifacts/{version}/activate",
                 "/api/v1/tasks/{task_id}/execute", "/api/v1/tasks/{task_id}/execute/batch",
                 "/api/v1/tasks/{task_id}/executions", "/api/v1/executions/{execution_id}",
                 "/api/v1/health/ready", "/api/v1/metrics"):
        assert path in paths, path
    execute = paths["/api/v1/tasks/{task_id}/execute"]["post"]
    assert {"400", "401", "403", "404", "409", "503"} <= set(execute["responses"])
    schemas = doc["components"]["schemas"]
    assert "examples" in str(schemas["TaskCreate"]) and "examples" in str(schemas["ExecuteRequest"])
    swagger = api.get("/swagger", follow_redirects=True)
    assert swagger.status_code == 200 and "swagger" in swagger.text.lower()


FUZZ_KEY = "fuzz-admin-key-0123456789"
PAGE_CURSOR = base64.urlsafe_b64encode(b"1769860800000:0").decode().rstrip("=")
"""A well-formed page cursor. Cursors are opaque tokens from `next_cursor`: a string the
server did not make is refused (400) by design, so the fuzzer is handed a real one."""


def _seed(server: HubProcess, key: str | None) -> dict[str, str]:
    """Real ids to fuzz with: without them every operation on a task answers 404 and the
    fuzzer never reaches the code behind it."""
    with client_for(server, key) as api:
        task = make_active_task(api)
        doomed = make_task(api)
        run = api.post(f"/api/v1/tasks/{task['id']}/execute", json={"input": {"text": "good"}})
        assert run.status_code == 200, run.text
    return {"task": task["id"], "doomed": doomed["id"], "execution": run.json()["execution_id"]}


def _config(ids: dict[str, str], auth: bool) -> str:
    """schemathesis.toml. Every check is on; each `expected-statuses` below widens
    `positive_data_acceptance` for one operation whose 400 is a rule a JSON schema cannot
    state, and says which."""
    on_task = ", ".join(f'"{op}"' for op in (
        "GET /api/v1/tasks/{task_id}", "PATCH /api/v1/tasks/{task_id}",
        "GET /api/v1/tasks/{task_id}/artifacts", "POST /api/v1/tasks/{task_id}/artifacts",
        "POST /api/v1/tasks/{task_id}/execute", "GET /api/v1/tasks/{task_id}/executions"))
    lines = [
        # ensure_resource_availability takes `/execute/batch`, being under `/execute`, for the
        # execution that POST made, and a batch's 404 for a generated `version` that was
        # never uploaded for a lost resource. (Per-operation settings do not reach the
        # stateful phase's checks in schemathesis 4.32, so this is for the phase.)
        "[phases.stateful]",
        "checks.ensure_resource_availability.enabled = false",
        "",
        "[parameters]",
        f'"path.execution_id" = "{ids["execution"]}"',
        f'"query.cursor" = "{PAGE_CURSOR}"',
        "",
        # Not on the two operations with a `version` too: there schemathesis 4.32 keeps a
        # fixed task_id in the cases it made by lengthening it past maxLength, then reports
        # the 200 as "schema-violating request accepted". Stateful links reach them.
        "[[operations]]",
        f"include-name = [{on_task}]",
        f'parameters = {{ "path.task_id" = "{ids["task"]}" }}',
        "",
        "[[operations]]",
        'include-name = "DELETE /api/v1/tasks/{task_id}"',
        # Deleting the task every other operation uses would turn the rest into 404s.
        f'parameters = {{ "path.task_id" = "{ids["doomed"]}" }}',
        "",
        "[[operations]]",
        # A task's `examples` must match its own input and output schemas (`invalid_example`);
        # a program must define an entry point and pass the task's examples
        # (`program_rejected`); an input must match the task's input_schema (`invalid_input`).
        # And an integer written as a float (`"timeout_ms": 5.0`) is refused on purpose
        # (strict types, test_bad_bodies.py), though JSON Schema's `integer` admits it.
        'include-name = ["POST /api/v1/tasks", "PATCH /api/v1/tasks/{task_id}",'
        ' "POST /api/v1/tasks/{task_id}/artifacts", "POST /api/v1/tasks/{task_id}/execute",'
        ' "POST /api/v1/tasks/{task_id}/execute/batch"]',
        'checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409]',
        "",
        "[[operations]]",
        # Feedback must say what was right (`expected_output`, or `correct: true` for an
        # execution with an output); an import needs at least one line that is a case;
        # generation refuses a task shape its backend cannot learn (422 `unsupported_task`)
        # and a backend this server has no URL for (422 `backend_not_configured`).
        'include-name = ["POST /api/v1/executions/{execution_id}/feedback",'
        ' "POST /api/v1/tasks/{task_id}/cases/import", "POST /api/v1/tasks/{task_id}/generate"]',
        'checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 404, 422]',
    ]
    if not auth:
        lines += [
            "",
            "[[operations]]",
            # With auth off there is nothing to mint a token for: 400 `auth_disabled`.
            'include-name = "POST /api/v1/auth/ws-token"',
            'checks.positive_data_acceptance.expected-statuses = ["2xx", 400]',
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_schemathesis_every_check_finds_nothing(tmp_path: Path, auth: bool) -> None:
    """Every schemathesis check, every phase (examples, coverage, fuzzing, stateful), against
    a real server: no 500, no response off its schema, no undocumented status or header."""
    env = {"LOOPAI_SANDBOX_WORKERS": "2"}
    if auth:
        env["LOOPAI_API_KEYS"] = json.dumps([{"key": FUZZ_KEY, "scopes": ["admin"],
                                              "name": "fuzz"}])
    server = HubProcess(env=env).start()
    try:
        ids = _seed(server, FUZZ_KEY if auth else None)
        (tmp_path / "schemathesis.toml").write_text(_config(ids, auth))
        st = Path(sys.executable).with_name("schemathesis")
        # Every check: the default in schemathesis 4 (`--checks all` on the command line
        # would also override the one check the config turns off for the stateful phase).
        cmd = [str(st), "run", f"{server.http}/schema/openapi.json",
               "--max-examples", "40", "--generation-deterministic", "--request-timeout", "20",
               "--workers", "1", "--no-color"]
        if auth:
            cmd += ["--header", f"Authorization: Bearer {FUZZ_KEY}"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "failed" not in result.stdout, result.stdout[-4000:]
