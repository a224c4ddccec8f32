"""The whole loop offline, on a real server, with no program written by a person.

A task starts with 5 labelled examples and gets its first program from the built-in
`examples` backend. Traffic runs through it with `sampling_rate` 0.3; feedback gives the true
label of each sampled execution; the task is regenerated from its cases. After two rounds the
active program must answer at least 90% of inputs it has never seen correctly. Each version's
held-out accuracy is printed (and written to $LOOPAI_LOOP_CURVE when set, for docs/loop.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import datasets
from tests.support.hub_process import HubProcess

pytestmark = pytest.mark.slow

ROUNDS = 2
TRAFFIC_PER_ROUND = 400


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    hub = HubProcess(env={"LOOPAI_SANDBOX_TASK_CONCURRENCY": "4"}).start()
    yield hub
    hub.stop()


def _wait_generation(api: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/api/v1/generations/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("generation did not finish")


def _generate(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.post(f"/api/v1/tasks/{task_id}/generate",
                        json={"backend": "examples", "activate": "if_better"})
    assert response.status_code == 202, response.text
    job = _wait_generation(api, response.json()["id"])
    assert job["status"] == "completed", job
    return job


def _run(api: httpx.Client, task_id: str, inputs: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(inputs), 200):
        response = api.post(f"/api/v1/tasks/{task_id}/execute/batch",
                            json={"inputs": inputs[start:start + 200]})
        assert response.status_code == 200, response.text
        out += [r["execution"] for r in response.json()["results"]]
    return out


def _held_out_accuracy(api: httpx.Client, task_id: str, held: list[Any]) -> float:
    executions = _run(api, task_id, [value for value, _ in held])
    right = sum(1 for e, (_, label) in zip(executions, held, strict=True)
                if e.get("output") == label)
    return right / len(held)


@pytest.mark.parametrize("name", ["tickets", "language"])
def test_feedback_and_regeneration_reach_the_target_on_unseen_inputs(
        server: HubProcess, name: str) -> None:
    input_schema, output_schema = datasets.schemas(name)
    traffic, held = datasets.split(name, ROUNDS * TRAFFIC_PER_ROUND, 200, seed=11)
    seen: set[str] = set()
    examples = []
    for value, label in traffic:  # five examples, as varied in labels as they come
        if label not in seen or len(seen) == len(datasets.labels(name)):
            examples.append({"input": value, "output": label})
            seen.add(label)
        if len(examples) == 5:
            break
    curve: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.http, timeout=60) as api:
        task = api.post("/api/v1/tasks", json={
            "name": f"loop-{name}", "description": f"classify {name}",
            "input_schema": input_schema, "output_schema": output_schema,
            "examples": examples, "sampling_rate": 0.3, "accuracy_target": 0.9}).json()
        job = _generate(api, task["id"])
        assert job["activated"], job
        curve.append({"version": job["version"], "cases": job["cases_total"],
                      "held_out_accuracy": _held_out_accuracy(api, task["id"], held)})
        for round_ in range(ROUNDS):
            batch = traffic[round_ * TRAFFIC_PER_ROUND:(round_ + 1) * TRAFFIC_PER_ROUND]
            executions = _run(api, task["id"], [value for value, _ in batch])
            sampled = 0
            for execution, (_, label) in zip(executions, batch, strict=True):
                if execution["sampled_for_validation"]:
                    sampled += 1
                    fed = api.post(f"/api/v1/executions/{execution['execution_id']}/feedback",
                                   json={"expected_output": label})
                    assert fed.status_code == 200, fed.text
            assert 0.2 * len(batch) < sampled < 0.4 * len(batch)
            job = _generate(api, task["id"])
            active = api.get(f"/api/v1/tasks/{task['id']}").json()
            curve.append({"version": job["version"], "cases": job["cases_total"],
                          "sampled_feedback": sampled, "activated": job["activated"],
                          "held_out_accuracy": _held_out_accuracy(api, task["id"], held),
                          "active_version": active["active_version"],
                          "active_validated": active.get("accuracy")})
        artifacts = api.get(f"/api/v1/tasks/{task['id']}/artifacts").json()["items"]
        assert all(a["llm_provider"] == "examples" for a in artifacts)
        validations = api.get(f"/api/v1/tasks/{task['id']}/accuracy").json()
    print(f"\n{name}: " + json.dumps(curve))
    if os.environ.get("LOOPAI_LOOP_CURVE"):
        with open(os.environ["LOOPAI_LOOP_CURVE"], "a") as fh:
            fh.write(json.dumps({"dataset": name, "curve": curve,
                                 "validated": validations["versions"]}) + "\n")
    assert curve[0]["held_out_accuracy"] < 0.9  # five examples are not enough
    assert curve[-1]["held_out_accuracy"] >= 0.9, curve
