"""An instance judges the sampled executions it ran as it stores them (the writer's intake,
`ValidationService.admit`): what a case judges is recorded by the queue's next round without
being claimed, what nothing can judge waits for feedback, and only what the LLM must judge
(or what the intake failed on) goes to the claim queue.

The queue's claims find nothing in each test (`claim` is replaced), so whatever is validated
here was validated through the intake; the tests read the real `claim` themselves. The app
runs in-process on SQLite with a real sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from loopai.app import create_app
from loopai.config import Settings
from loopai.core.clock import now_ms
from loopai.core.runtime import Domain
from loopai.core.store import executions as execution_rows
from loopai.core.store import validations as validation_rows
from loopai.core.validation.service import WAIT_FOR_FEEDBACK_MS

real_claim = validation_rows.claim


@pytest.fixture(autouse=True)
def no_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    monkeypatch.setattr(validation_rows, "claim", nothing)

CLASSIFIER = ("def classify(text):\n"
              "    return 'positive' if 'love' in text else 'negative'\n")
TASK = {"name": "intake",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}},
                         "required": ["text"]},
        "output_schema": {"type": "string", "enum": ["positive", "negative"]},
        "examples": [{"input": {"text": "I love it"}, "output": "positive"}]}


@asynccontextmanager
async def _serve(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                         Domain]]:
    """The app's lifespan is entered and left in the test's own task (anyio's scopes)."""
    app: Litestar = create_app(Settings(database_url=f"sqlite:///{tmp_path}/v.db",
                                        metrics_interval_ms=0, sandbox_workers=1, **settings))
    async with app.lifespan(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake") as api:
        domain: Domain = app.state.domain
        yield api, domain


async def _validations(api: httpx.AsyncClient, task_id: str, count: int) -> list[Any]:
    """The task's validations once there are `count` (the queue's round, within seconds)."""
    for _ in range(200):
        items: list[Any] = (await api.get(f"/api/v1/tasks/{task_id}/validations")).json()[
            "items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} validations after 10 s")


async def _task(api: httpx.AsyncClient) -> str:
    task = (await api.post("/api/v1/tasks", json=TASK)).json()
    response = await api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                              params={"activate": "true"}, json={"code": CLASSIFIER})
    assert response.status_code == 201, response.text
    # A case the program gets wrong, added once the program is active.
    case = await api.post(f"/api/v1/tasks/{task['id']}/cases", json={
        "cases": [{"input": {"text": "I love nothing"}, "output": "negative"}]})
    assert case.status_code == 201, case.text
    task_id: str = task["id"]
    return task_id


async def _execute(api: httpx.AsyncClient, task_id: str, text: str) -> str:
    response = await api.post(f"/api/v1/tasks/{task_id}/execute",
                              json={"input": {"text": text}, "force_validation": True})
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def test_what_a_case_judges_is_validated_without_a_claim(tmp_path: Path) -> None:
    async with _serve(tmp_path) as (api, domain):
        task_id = await _task(api)
        right = await _execute(api, task_id, "I love it")
        wrong = await _execute(api, task_id, "I love nothing")  # the case says negative
        await domain.writer.flush()

        listed = await _validations(api, task_id, 2)
        by_execution = {v["execution_id"]: v for v in listed}
        assert set(by_execution) == {right, wrong}
        assert by_execution[right]["match"] is True and by_execution[wrong]["match"] is False
        assert {v["oracle"] for v in listed} == {"cases"}
        for execution_id in (right, wrong):
            row = await execution_rows.get_execution(domain.db, execution_id)
            assert row is not None and row.validated and row.claimed_by is None
        events = (await api.get(f"/api/v1/topics/tasks.{task_id}.validations/events")).json()
        assert len([e for e in events["events"] if e["type"] == "validation.completed"]) == 2


async def test_what_nothing_can_judge_is_stored_waiting_for_feedback(tmp_path: Path) -> None:
    async with _serve(tmp_path) as (api, domain):
        task_id = await _task(api)
        before = now_ms()
        execution_id = await _execute(api, task_id, "a day like any other")
        await domain.writer.flush()

        row = await execution_rows.get_execution(domain.db, execution_id)
        assert row is not None and not row.validated and row.claimed_by is None
        assert row.claimed_until is not None
        wait_over = row.claimed_until
        assert before + WAIT_FOR_FEEDBACK_MS <= wait_over <= now_ms() + WAIT_FOR_FEEDBACK_MS
        assert await real_claim(domain.db, "other", now_ms(), 60_000, 20) == []
        # ... until its wait is over, when any instance's queue may take it.
        later = await real_claim(domain.db, "other", wait_over + 1, 60_000, 20)
        assert [e.id for e in later] == [execution_id]

        feedback = await api.post(f"/api/v1/executions/{execution_id}/feedback",
                                  json={"expected_output": "negative"})
        assert feedback.status_code in (200, 201), feedback.text
        assert feedback.json()["validation"]["oracle"] == "feedback"


async def test_what_only_the_llm_can_judge_is_left_to_the_queue(tmp_path: Path) -> None:
    # The backend is never called by the intake: the queue asks it later.
    llm = {"validation_oracle": "llm", "openai_base_url": "http://127.0.0.1:9/v1",
           "openai_model": "none"}
    async with _serve(tmp_path, **llm) as (api, domain):
        task_id = await _task(api)
        unknown = await _execute(api, task_id, "a day like any other")
        known = await _execute(api, task_id, "I love it")
        await domain.writer.flush()
        row = await execution_rows.get_execution(domain.db, unknown)
        assert row is not None and row.claimed_until is None and not row.validated
        await _validations(api, task_id, 1)  # a case still judges first
        judged = await execution_rows.get_execution(domain.db, known)
        assert judged is not None and judged.validated
        claimed = await real_claim(domain.db, "other", now_ms(), 60_000, 20)
        assert [e.id for e in claimed] == [unknown]


async def test_when_the_intake_fails_the_executions_go_to_the_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with _serve(tmp_path) as (api, domain):

        async def broken(sampled: Any) -> None:
            raise RuntimeError("the database went away")

        monkeypatch.setattr(domain.validations, "admit", broken)
        task_id = await _task(api)
        execution_id = await _execute(api, task_id, "I love it")
        await domain.writer.flush()
        row = await execution_rows.get_execution(domain.db, execution_id)
        assert row is not None and row.claimed_until is None and not row.validated
        claimed = await real_claim(domain.db, "other", now_ms(), 60_000, 20)
        assert [e.id for e in claimed] == [execution_id]


async def test_feedback_right_after_the_execute_comes_before_the_case(tmp_path: Path) -> None:
    async with _serve(tmp_path) as (api, _domain):
        task_id = await _task(api)
        execution_id = await _execute(api, task_id, "I love it")  # a case would say match
        feedback = await api.post(f"/api/v1/executions/{execution_id}/feedback",
                                  json={"expected_output": "negative"})
        assert feedback.status_code in (200, 201), feedback.text
        validation = feedback.json()["validation"]
        assert validation["oracle"] == "feedback" and validation["match"] is False
        assert feedback.json().get("already_validated") is not True
