"""The sandbox as a server operator and an API user meet it: walls at start-up and in
readiness, required walls, budgets for example checks, batch responses and events, and the
`loopai sandbox` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hub_process import HubProcess

ROOT = os.geteuid() == 0
LOOPING = "def run(x):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    hub = HubProcess(env={
        "LOOPAI_SANDBOX_REQUIRE": "seccomp,no_new_privs",
        "LOOPAI_BATCH_RESPONSE_MAX_BYTES": "100000",
        "LOOPAI_EVENT_OUTPUT_MAX_BYTES": "1000",
        "LOOPAI_EXAMPLES_BUDGET_MS": "1500",
    }).start()
    yield hub
    hub.stop()


@pytest.fixture
def api(server: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http, timeout=30) as client:
        yield client


def _task(api: httpx.Client, code: str, examples: list[dict[str, Any]] | None = None) -> str:
    task = api.post("/api/v1/tasks", json={
        "name": f"t-{uuid.uuid4().hex[:8]}", "input_schema": {},
        "output_schema": {"type": "string"}, "examples": examples or []}).json()
    uploaded = api.post(f"/api/v1/tasks/{task['id']}/artifacts", params={"activate": "true"},
                        json={"code": code})
    assert uploaded.status_code == 201, uploaded.text
    return str(task["id"])


def test_readiness_reports_the_walls(api: httpx.Client) -> None:
    body = api.get("/api/v1/health/ready").json()
    assert body["status"] == "ready"
    walls = set(body["sandbox"]["walls"])
    assert {"seccomp", "no_new_privs", "rlimits", "capabilities"} <= walls
    if ROOT:
        assert {"uid", "netns", "chroot"} <= walls
    assert body["sandbox"]["required"] == ["no_new_privs", "seccomp"]
    check = next(c for c in body["checks"] if c["name"] == "sandbox")
    assert check["ok"] and "seccomp" in check["detail"]


def test_a_missing_required_wall_stops_start_up() -> None:
    missing = "userns" if ROOT else "uid"  # a root server never needs a user namespace
    hub = HubProcess(env={"LOOPAI_SANDBOX_REQUIRE": f"seccomp,{missing}"})
    with pytest.raises(RuntimeError) as info:
        hub.start()
    assert f"required sandbox walls missing on this host: {missing}" in str(info.value)
    hub.stop()


def test_an_unknown_wall_name_is_a_configuration_error() -> None:
    hub = HubProcess(env={"LOOPAI_SANDBOX_REQUIRE": "seccomp,moat"})
    with pytest.raises(RuntimeError) as info:
        hub.start()
    assert "unknown walls ['moat']" in str(info.value)
    hub.stop()


def test_the_formatter_bypass_is_refused_at_upload(api: httpx.Client) -> None:
    task = api.post("/api/v1/tasks", json={"name": f"t-{uuid.uuid4().hex[:8]}",
                                           "input_schema": {}, "output_schema": {}}).json()
    code = ("import string\ndef run(x):\n    b = string.Formatter().get_field('0.__globals__',"
            " [string.Formatter.get_field], {})[0]['__builtins__']\n"
            "    return b['__import__']('os').getcwd()\n")
    response = api.post(f"/api/v1/tasks/{task['id']}/artifacts", json={"code": code})
    assert response.status_code == 400
    assert response.json()["code"] == "program_rejected"
    assert any("Formatter" in d["message"] for d in response.json()["details"])


def test_example_checks_share_one_budget_and_say_what_did_not_finish(
        api: httpx.Client) -> None:
    task = api.post("/api/v1/tasks", json={
        "name": f"t-{uuid.uuid4().hex[:8]}", "input_schema": {}, "output_schema": {},
        "examples": [{"input": i, "output": i} for i in range(30)]}).json()
    response = api.post(f"/api/v1/tasks/{task['id']}/artifacts", json={"code": LOOPING})
    assert response.status_code == 201, response.text
    artifact = response.json()
    assert artifact["status"] == "failed"
    errors = artifact["validation_errors"]
    assert any("timeout" in e for e in errors), errors
    assert "not run, the 1500 ms budget for example checks ran out" in errors[-1], errors
    # the server kept serving while it happened
    assert api.get("/api/v1/health/live").status_code == 200


def test_a_batch_response_stops_at_its_size_budget(api: httpx.Client) -> None:
    task_id = _task(api, "def run(x):\n    return 'x' * 30000\n")
    response = api.post(f"/api/v1/tasks/{task_id}/execute/batch",
                        json={"inputs": list(range(10))})
    assert response.status_code == 200, response.text
    assert len(response.content) < 130_000
    results = response.json()["results"]
    ok = [r for r in results if "execution" in r]
    too_large = [r for r in results if r.get("error", {}).get("code") == "response_too_large"]
    assert len(ok) == 3 and len(too_large) == 7, [r.get("error") for r in results]


def test_events_leave_out_large_outputs(api: httpx.Client) -> None:
    task_id = _task(api, "def run(x):\n    return 'y' * x\n")
    small = api.post(f"/api/v1/tasks/{task_id}/execute", json={"input": 10}).json()
    large = api.post(f"/api/v1/tasks/{task_id}/execute", json={"input": 5000}).json()
    assert large["output"] == "y" * 5000  # the API answer is whole
    events = api.get(f"/api/v1/topics/tasks.{task_id}.executions/events").json()["events"]
    by_id = {e["data"]["execution_id"]: e["data"] for e in events}
    assert by_id[small["execution_id"]]["output"] == "y" * 10
    assert by_id[large["execution_id"]].get("output") is None
    assert by_id[large["execution_id"]]["output_omitted"] is True


def _loopai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopai.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LOOPAI_TOKEN_SECRET": "s3"})


def test_sandbox_check_blocks_every_action() -> None:
    done = _loopai("sandbox", "check", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["all_blocked"] is True
    assert len(report["findings"]) >= 20
    assert all(f["blocked"] for f in report["findings"])
    assert "seccomp" in report["walls"]
    table = _loopai("sandbox", "check")
    assert "every action was blocked" in table.stdout


def test_sandbox_run_without_the_policy_meets_only_the_walls(tmp_path: Path) -> None:
    program = tmp_path / "hostile.py"
    program.write_text(
        "import os\n"
        "def run(input):\n"
        "    out = {'env': dict(os.environ)}\n"
        "    for name, path in input.items():\n"
        "        try:\n"
        "            out[name] = open(path).read(10)\n"
        "        except OSError as exc:\n"
        "            out[name] = exc.errno\n"
        "    return out\n")
    done = _loopai("sandbox", "run", "--no-policy", str(program), "--json",
                   "--input", json.dumps({"passwd": "/etc/passwd", "me": str(program)}))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["policy"] is False and out["status"] == "success"
    assert out["output"] == {"env": {}, "passwd": 1, "me": 1}
    refused = _loopai("sandbox", "run", str(program))
    assert refused.returncode == 1 and "import of 'os' is not allowed" in refused.stderr
