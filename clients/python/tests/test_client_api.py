"""ApiClient and AsyncApiClient against a real server, and the error shape as ApiError."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import loopai_client
import msgspec
import pytest
from loopai_client import (
    ApiClient,
    ApiError,
    AsyncApiClient,
    Event,
    Execution,
    Generation,
    HubClient,
    Validation,
)
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
        # sampling_rate 0: only the forced execution below is sampled (0.1 sampled the batch
        # item one run in ten).
        task = api.create_task(f"py-{uuid.uuid4().hex[:8]}", INPUT, OUTPUT,
                               examples=[{"input": {"text": "love"}, "output": "positive"}],
                               sampling_rate=0.0)
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
    assert sorted(loopai_client.__all__) == sorted([
        "AccuracyChange", "ApiClient", "ApiError", "Artifact", "AsyncApiClient",
        "AuthenticationError", "Backoff", "BatchExecuteResult", "Case", "CasePage",
        "CasesAdded", "CompareOptions", "ConnectionLost", "ConnectionState", "Event",
        "Execution", "ExecutionPage", "FeedbackResult", "Gap", "Generation", "GenerationError",
        "GenerationProgress", "HubClient", "HubClosed", "HubError", "LoopaiError",
        "StateChange", "Subscription", "Task", "TaskAccuracy", "TaskPage", "UNSET",
        "Validation", "ValidationPage", "VersionAccuracy"])


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


# --- the loop: generation with the built-in `examples` backend, cases, feedback, accuracy

TICKET_IN = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TICKET_OUT = {"type": "string", "enum": ["billing", "technical", "account"]}
KEYWORDS = {"billing": ("refund", "invoice"), "technical": ("crash", "error"),
            "account": ("password", "login")}
TEMPLATES = ("I need help with my {w}", "the {w} is wrong again", "question about a {w} today",
             "why is there a {w} on my screen", "please look at this {w} asap",
             "my {w} problem since yesterday", "{w} issue, can you check")


def tickets() -> list[dict[str, object]]:
    """42 labelled tickets: each keyword of each label in each template."""
    return [{"input": {"text": template.format(w=word)}, "output": label}
            for label, words in KEYWORDS.items() for word in words for template in TEMPLATES]


def test_the_loop_generate_execute_feedback_accuracy(server: HubProcess) -> None:
    examples = tickets()
    with ApiClient(server.http) as api:
        task = api.create_task(f"py-loop-{uuid.uuid4().hex[:8]}", TICKET_IN, TICKET_OUT,
                               examples=examples[:36], sampling_rate=0.0)
        assert task.generator is None and task.comparison.method == "exact"
        assert api.list_cases(task.id, limit=500).total == 36
        assert api.add_cases(task.id, examples[36:39]).added == 3
        imported = api.import_cases(task.id, examples[39:])
        assert (imported.added, imported.total) == (3, 42)
        first = api.list_cases(task.id, limit=10)
        assert len(first.items) == 10 and first.next_cursor and first.total == 42
        rest = api.list_cases(task.id, limit=500, cursor=first.next_cursor)
        assert len(first.items) + len(rest.items) == 42

        job = api.generate(task.id)
        assert job.status in ("queued", "running") and job.backend == "examples"
        done = api.wait_for_generation(job.id, timeout=120)
        assert done.status == "completed", done.error
        assert (done.version, done.activated, done.cases_total) == (1, True, 42)
        assert done.accuracy is not None and done.accuracy >= 0.9
        assert [g.id for g in api.list_generations(task.id)] == [job.id]
        assert api.get_generation(job.id).finished_at
        artifact = api.get_artifact(task.id, 1)
        assert (artifact.status, artifact.generation_id) == ("active", job.id)
        assert artifact.activated_by == f"generation {job.id}"
        assert artifact.accuracy_state == "ok" and artifact.generation_ms is not None

        run = api.execute(task.id, {"text": "my invoice shows a double charge"})
        assert (run.status, run.output) == ("success", "billing")
        result = api.feedback(run.execution_id, correct=True)
        assert result.case.source == "feedback" and result.case.output == "billing"
        assert result.validation is not None and result.validation.match is True
        assert not result.already_validated
        again = api.feedback(run.execution_id, expected_output="billing")
        assert again.already_validated and again.validation is not None
        assert again.validation.id == result.validation.id
        other = api.execute(task.id, {"text": "the app keeps showing an error on start"})
        wrong = "account" if other.output != "account" else "billing"
        miss = api.feedback(other.execution_id, expected_output=wrong)
        assert miss.validation is not None and miss.validation.match is False
        assert miss.validation.expected == wrong

        page = api.list_validations(task.id, limit=1)
        assert [v.execution_id for v in page.items] == [other.execution_id]
        assert page.next_cursor is not None
        older = api.list_validations(task.id, cursor=page.next_cursor, version=1)
        assert [v.execution_id for v in older.items] == [run.execution_id]
        assert api.list_validations(task.id, version=2).items == []
        accuracy = api.task_accuracy(task.id)
        assert (accuracy.task_id, accuracy.target) == (task.id, 0.9)
        [v1] = accuracy.versions
        assert (v1.version, v1.samples, v1.matches, v1.accuracy) == (1, 2, 1, 0.5)
        assert 0 <= v1.low <= 0.5 <= v1.high <= 1
        task_now = api.get_task(task.id)
        assert task_now.accuracy is not None and task_now.accuracy.samples == 2

        case_id = miss.case.id
        api.delete_case(task.id, case_id)
        with pytest.raises(ApiError) as gone:
            api.delete_case(task.id, case_id)
        assert gone.value.status == 404
        with pytest.raises(ApiError) as missing:
            api.get_generation("nope")
        assert missing.value.status == 404
        api.delete_task(task.id, force=True)


async def test_async_loop_with_typed_generation_and_validation_events(
        server: HubProcess) -> None:
    async with AsyncApiClient(server.http) as api, HubClient(server.ws) as hub:
        task = await api.create_task(f"py-aloop-{uuid.uuid4().hex[:8]}", TICKET_IN, TICKET_OUT,
                                     sampling_rate=0.0)
        assert (await api.import_cases(task.id, tickets())).total == 42
        generations = await hub.subscribe(f"tasks.{task.id}.generations")
        validations = await hub.subscribe(f"tasks.{task.id}.validations")
        job = await api.generate(task.id, backend="examples", activate="if_validated")
        assert job.activate == "if_validated"
        done = await api.wait_for_generation(job.id, timeout=120)
        assert done.status == "completed" and done.activated

        seen: list[Event] = []
        while not seen or seen[-1].type != "generation.completed":
            item = await generations.get(timeout=30)
            assert isinstance(item, Event)
            seen.append(item)
        assert seen[0].type == "generation.started"
        started, completed = seen[0].payload(), seen[-1].payload()
        assert isinstance(started, Generation) and started.status == "running"
        assert isinstance(completed, Generation) and completed.version == done.version
        progress = [e.payload() for e in seen if e.type == "generation.progress"]
        assert progress and all(p.generation_id == job.id for p in progress)
        assert progress[-1].cases_total == 42

        run = await api.execute(task.id, {"text": "cannot login, password reset fails"})
        assert run.output == "account"
        result = await api.feedback(run.execution_id, expected_output="account")
        assert result.validation is not None and result.validation.match
        event = await validations.get(timeout=30)
        assert isinstance(event, Event) and event.type == "validation.completed"
        validation = event.payload()
        assert isinstance(validation, Validation)
        assert (validation.id, validation.oracle) == (result.validation.id, "feedback")
        page = await api.list_validations(task.id)
        assert [v.id for v in page.items] == [validation.id]
        cases = await api.list_cases(task.id, limit=500)
        assert cases.total == 43 and {c.source for c in cases.items} == {"manual", "feedback"}
        await api.delete_case(task.id, result.case.id)
        accuracy = await api.task_accuracy(task.id)
        assert [(v.version, v.samples, v.matches) for v in accuracy.versions] == [(1, 1, 1)]
        assert [g.id for g in await api.list_generations(task.id, limit=5)] == [job.id]
        assert (await api.get_generation(job.id)).accuracy == done.accuracy
        await api.delete_task(task.id, force=True)


def test_new_event_types_decode_to_their_models_and_old_servers_still_decode() -> None:
    accuracy = Event("t", "1", "accuracy.breached", data={
        "task_id": "t1", "version": 2, "program_id": "p", "target": 0.9, "samples": 20,
        "matches": 12, "accuracy": 0.6, "low": 0.39, "high": 0.78})
    change = accuracy.payload()
    assert isinstance(change, loopai_client.AccuracyChange) and change.accuracy == 0.6
    assert Event("t", "2", "generation.failed", data={"nope": 1}).payload() == {"nope": 1}
    old_task = msgspec.convert({"id": "t", "name": "n"}, loopai_client.Task)
    assert old_task.accuracy is None and old_task.comparison.method == "exact"
    old_artifact = msgspec.convert({"id": "a", "task_id": "t", "version": 1,
                                    "status": "active"}, loopai_client.Artifact)
    assert old_artifact.accuracy_state == "ok" and old_artifact.generation_id is None
    old_run = msgspec.convert({"execution_id": "e", "task_id": "t", "program_id": "p",
                               "version": 1, "status": "success"}, loopai_client.Execution)
    assert old_run.output_omitted is False


def test_wait_for_generation_raises_timeout_error_while_the_job_runs() -> None:
    polls: list[str] = []

    def running(request: httpx.Request) -> httpx.Response:
        polls.append(request.url.path)
        return httpx.Response(200, json={"id": "g1", "task_id": "t1", "status": "running"})

    with (ApiClient("http://hub", transport=httpx.MockTransport(running)) as api,
          pytest.raises(TimeoutError, match=r"generation g1 still running after 0\.3 s")):
        api.wait_for_generation("g1", timeout=0.3, interval=0.05)
    assert len(polls) >= 3 and set(polls) == {"/api/v1/generations/g1"}


async def test_async_wait_for_generation_raises_timeout_error() -> None:
    def queued(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "g2", "task_id": "t1", "status": "queued"})

    async with AsyncApiClient("http://hub", transport=httpx.MockTransport(queued)) as api:
        with pytest.raises(TimeoutError, match="still queued"):
            await api.wait_for_generation("g2", timeout=0.2, interval=0.05)
