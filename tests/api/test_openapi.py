"""The OpenAPI document: complete enough to fuzz, and fuzzing finds no 500 or schema break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

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


@pytest.mark.slow
@pytest.mark.timeout(660)  # the fuzzing run below has 600 s of its own
def test_schemathesis_finds_no_server_error_or_schema_break(tmp_path: Path) -> None:
    server = HubProcess(env={"LOOPAI_SANDBOX_WORKERS": "2"}).start()
    try:
        st = Path(sys.executable).with_name("schemathesis")
        result = subprocess.run(
            [str(st), "run", f"{server.http}/schema/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance,"
             "status_code_conformance,content_type_conformance",
             "--max-examples", "25", "--generation-deterministic", "--request-timeout", "20"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout
