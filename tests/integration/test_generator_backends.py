"""The remote generator backends (`openai`, `http`) against fake servers on real sockets:
the conversation with the model, retries, timeouts, the circuit breaker, metrics, secrets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from loopai.config import Settings
from loopai.core.generation.base import (
    BackendFailed,
    BackendUnavailable,
    Candidate,
    Case,
    CheckReport,
    FailedCase,
    GenerationRequest,
)
from loopai.core.generation.http import HttpGenerator
from loopai.core.generation.openai import OpenAIGenerator
from loopai.core.generation.resilience import RemoteCall, RemoteCallFailed
from loopai.core.sandbox.policy import ProgramRejected, check_program
from tests.support.fake_http import Drop, FakeHttpServer, Recorded, Reply

KEY = "sk-test-SECRET-0123456789abcdef"

CASES = [Case(input="a b", output=2), Case(input="hello", output=1), Case(input="", output=0)]
REQUEST = GenerationRequest(task_id="t-1", task_name="word_count",
                            description="Count the words of a text.",
                            input_schema={"type": "string"}, output_schema={"type": "integer"},
                            cases=CASES)

GOOD = "def run(input):\n    return len(input.split())\n"
WRONG = "def run(input):\n    return 0\n"  # 1 of 3
BETTER = "def run(input):\n    return min(len(input.split()), 1)\n"  # 2 of 3
BREAKS_POLICY = "import os\n\ndef run(input):\n    return len(os.listdir(input))\n"


def fenced(code: str) -> str:
    return f"Here is the program:\n\n```python\n{code}```\n"


def chat(content: str, tokens: int = 40, model: str = "fake-model-1") -> Reply:
    return Reply(200, {"id": "c1", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": tokens - 10, "completion_tokens": 10,
                                 "total_tokens": tokens}})


async def check(code: str) -> CheckReport:
    """The test's checker: the sandbox policy, then the program run in-process on CASES."""
    try:
        check_program(code)
    except ProgramRejected as exc:
        return CheckReport(passed=0, total=len(CASES),
                           rejected=f"{exc.message}: {'; '.join(exc.details)}")
    namespace: dict[str, Any] = {}
    exec(compile(code, "<program>", "exec"), namespace)
    failures = []
    for case in CASES:
        try:
            actual = namespace["run"](case.input)
        except Exception as exc:
            failures.append(FailedCase(case.input, case.output, error=repr(exc)))
            continue
        if actual != case.output:
            failures.append(FailedCase(case.input, case.output, actual=actual))
    return CheckReport(passed=len(CASES) - len(failures), total=len(CASES), failures=failures)


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, CheckReport]] = []

    async def __call__(self, attempt: int, report: CheckReport) -> None:
        self.calls.append((attempt, report))


@pytest.fixture
def server() -> Iterator[FakeHttpServer]:
    fake = FakeHttpServer().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def remote(backend: str, registry: CollectorRegistry, **overrides: Any) -> RemoteCall:
    options: dict[str, Any] = {"timeout_s": 2.0, "retries": 2, "breaker_failures": 5,
                               "breaker_reset_s": 30.0, "backoff_s": 0.01,
                               "backoff_max_s": 0.05}
    options.update(overrides)
    return RemoteCall(backend, registry=registry, secrets=[KEY], **options)


def openai(server: FakeHttpServer, registry: CollectorRegistry, max_attempts: int = 3,
           **overrides: Any) -> OpenAIGenerator:
    return OpenAIGenerator(base_url=f"{server.url}/v1", model="fake-model", api_key=KEY,
                           max_attempts=max_attempts,
                           remote=remote("openai", registry, **overrides))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- the conversation


async def test_good_code_on_the_first_try(server: FakeHttpServer,
                                          registry: CollectorRegistry) -> None:
    server.script(chat(fenced(GOOD), tokens=42))
    progress = Progress()
    candidate = await openai(server, registry).generate(REQUEST, check, progress)

    assert candidate == Candidate(code=GOOD, backend="openai", strategy="llm",
                                  model="fake-model-1", tokens=42, attempts=1,
                                  metadata=candidate.metadata)
    assert candidate.cost_usd is None
    assert candidate.metadata["passed"] == 3 and candidate.metadata["best_attempt"] == 1
    assert [(a, r.passed, r.total) for a, r in progress.calls] == [(1, 3, 3)]
    [request] = server.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json
    assert body["model"] == "fake-model" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and "def run(input)" in system["content"]
    assert "underscore" in system["content"] and "statistics" in system["content"]
    assert user["role"] == "user"
    assert "word_count" in user["content"] and "Count the words" in user["content"]
    assert '"hello"' in user["content"] and '"integer"' in user["content"]
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="ok") == 1
    assert sample(registry, "loopai_generator_call_latency_seconds_count",
                  backend="openai") == 1


async def test_code_in_prose(server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(chat("Sure! This counts the words.\n\ndef run(input):\n"
                       "    return len(input.split())\n\nIt splits on any whitespace."))
    candidate = await openai(server, registry).generate(REQUEST, check, Progress())
    assert candidate.code == GOOD


async def test_policy_break_then_a_corrected_reply(server: FakeHttpServer,
                                                   registry: CollectorRegistry) -> None:
    server.script(chat(fenced(BREAKS_POLICY), tokens=30), chat(fenced(GOOD), tokens=50))
    progress = Progress()
    candidate = await openai(server, registry).generate(REQUEST, check, progress)

    assert candidate.code == GOOD and candidate.attempts == 2 and candidate.tokens == 80
    assert len(progress.calls) == 2
    (first, rejected), (second, passed) = progress.calls
    assert (first, second) == (1, 2)
    assert rejected.rejected is not None and "'os'" in rejected.rejected
    assert passed.rejected is None and passed.passed == 3
    messages = server.requests[1].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "import os" in messages[2]["content"]
    assert "rejected by the sandbox" in messages[3]["content"]
    assert "'os'" in messages[3]["content"]


async def test_failing_cases_every_time_returns_the_best(server: FakeHttpServer,
                                                         registry: CollectorRegistry) -> None:
    server.script(chat(fenced(WRONG)), chat(fenced(BETTER)), chat(fenced(WRONG)))
    progress = Progress()
    candidate = await openai(server, registry, max_attempts=3).generate(REQUEST, check,
                                                                         progress)
    assert candidate.code == BETTER
    assert candidate.attempts == 3 and candidate.tokens == 120
    assert candidate.metadata["best_attempt"] == 2 and candidate.metadata["passed"] == 2
    assert [r.passed for _, r in progress.calls] == [1, 2, 1]
    assert len(server.requests) == 3
    follow_up = server.requests[1].json["messages"][3]["content"]
    assert "passed 1 of 3" in follow_up
    assert "expected: 2" in follow_up and "actual: 0" in follow_up


async def test_no_policy_passing_code_is_a_backend_failure(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(chat(fenced(BREAKS_POLICY)), chat("I cannot do that."),
                  chat(fenced(BREAKS_POLICY)))
    progress = Progress()
    with pytest.raises(BackendFailed, match="sandbox policy") as caught:
        await openai(server, registry).generate(REQUEST, check, progress)
    assert "3 attempts" in caught.value.message
    assert len(progress.calls) == 3 and all(r.rejected for _, r in progress.calls)
    assert "could not find a program" in server.requests[2].json["messages"][-1]["content"]


async def test_regeneration_shows_the_failures_and_the_previous_code(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(chat(fenced(GOOD)))
    request = GenerationRequest(
        task_id="t-1", task_name="word_count", description="Count the words.",
        input_schema={"type": "string"}, output_schema={"type": "integer"}, cases=CASES,
        failures=[FailedCase(input="a b", expected=2, actual=0)], previous_code=WRONG)
    await openai(server, registry).generate(request, check, Progress())
    user = server.requests[0].json["messages"][1]["content"]
    assert "gets these known cases wrong" in user and "expected: 2" in user
    assert "actual: 0" in user and "return 0" in user


# --- retries and timeouts


async def test_a_slow_reply_is_retried(server: FakeHttpServer,
                                       registry: CollectorRegistry) -> None:
    server.script(Reply(200, {}, delay=3.0), then=chat(fenced(GOOD)))
    candidate = await openai(server, registry, timeout_s=0.3).generate(REQUEST, check,
                                                                        Progress())
    assert candidate.code == GOOD
    assert len(server.requests) == 2
    assert sample(registry, "loopai_generator_failures_total", backend="openai",
                  kind="timeout") == 1


async def test_all_slow_fails_after_the_retries(server: FakeHttpServer,
                                                registry: CollectorRegistry) -> None:
    server.script(then=Reply(200, {}, delay=3.0))
    started = time.monotonic()
    with pytest.raises(RemoteCallFailed) as caught:
        await openai(server, registry, timeout_s=0.2, retries=1).generate(REQUEST, check,
                                                                          Progress())
    assert time.monotonic() - started < 2.0
    assert caught.value.failure_kind == "timeout" and caught.value.attempts == 2
    assert isinstance(caught.value, BackendFailed)
    assert "no reply within 0.2s" in caught.value.message
    assert len(server.requests) == 2
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="failed") == 1


async def test_5xx_then_success_is_retried(server: FakeHttpServer,
                                           registry: CollectorRegistry) -> None:
    server.script(Reply(500, {"error": "boom"}), Reply(503, {"error": "busy"}),
                  chat(fenced(GOOD)))
    candidate = await openai(server, registry).generate(REQUEST, check, Progress())
    assert candidate.code == GOOD and candidate.attempts == 1
    assert len(server.requests) == 3
    assert sample(registry, "loopai_generator_failures_total", backend="openai",
                  kind="http_5xx") == 2
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="ok") == 1


async def test_429_is_retried(server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(Reply(429, {"error": "slow down"}), chat(fenced(GOOD)))
    assert (await openai(server, registry).generate(REQUEST, check, Progress())).code == GOOD
    assert len(server.requests) == 2


async def test_dropped_connections_are_retried(server: FakeHttpServer,
                                               registry: CollectorRegistry) -> None:
    server.script(Drop(partial=True), Drop(partial=False), chat(fenced(GOOD)))
    candidate = await openai(server, registry).generate(REQUEST, check, Progress())
    assert candidate.code == GOOD
    assert len(server.requests) == 3
    assert sample(registry, "loopai_generator_failures_total", backend="openai",
                  kind="connect") == 2


async def test_a_400_is_not_retried_and_does_not_trip_the_breaker(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(then=Reply(400, {"error": {"message": "unknown model"}}))
    generator = openai(server, registry, breaker_failures=1)
    for _ in range(2):
        with pytest.raises(RemoteCallFailed, match=r"HTTP 400.*unknown model") as caught:
            await generator.generate(REQUEST, check, Progress())
        assert caught.value.status == 400 and caught.value.attempts == 1
    assert len(server.requests) == 2
    assert generator.remote.state == "closed"
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="client_error") == 2
    assert sample(registry, "loopai_generator_failures_total", backend="openai",
                  kind="http_4xx") == 2


async def test_a_reply_that_is_not_json_is_a_bad_reply(server: FakeHttpServer,
                                                       registry: CollectorRegistry) -> None:
    server.script(then=Reply(200, raw=b"<html>gateway</html>"))
    with pytest.raises(RemoteCallFailed, match="not JSON") as caught:
        await openai(server, registry).generate(REQUEST, check, Progress())
    assert caught.value.failure_kind == "bad_reply" and len(server.requests) == 1


# --- the circuit breaker


async def wait_for_state(call: RemoteCall, state: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while call.state != state:
        assert time.monotonic() < deadline, f"breaker still {call.state}, not {state}"
        await asyncio.sleep(0.01)


async def open_breaker(server: FakeHttpServer, generator: OpenAIGenerator, failures: int
                       ) -> None:
    server.script(then=Reply(500, {"error": "down"}))
    for _ in range(failures):
        with pytest.raises(RemoteCallFailed):
            await generator.generate(REQUEST, check, Progress())
    assert generator.remote.state == "open"


async def test_the_breaker_opens_refuses_at_once_then_a_probe_closes_it(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    generator = openai(server, registry, retries=0, breaker_failures=2, breaker_reset_s=0.3)
    await open_breaker(server, generator, 2)
    assert len(server.requests) == 2
    assert sample(registry, "loopai_generator_breaker_state", backend="openai") == 2

    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        await generator.generate(REQUEST, check, Progress())
    assert time.monotonic() - started < 0.1
    assert 0 < caught.value.retry_after_s <= 0.3
    assert len(server.requests) == 2, "an open breaker must not touch the network"
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="unavailable") == 1

    server.script(then=chat(fenced(GOOD)))
    await wait_for_state(generator.remote, "half-open")
    assert sample(registry, "loopai_generator_breaker_state", backend="openai") == 1
    candidate = await generator.generate(REQUEST, check, Progress())
    assert candidate.code == GOOD and len(server.requests) == 3
    assert generator.remote.state == "closed"
    assert sample(registry, "loopai_generator_breaker_state", backend="openai") == 0


async def test_a_failed_probe_opens_the_breaker_again(server: FakeHttpServer,
                                                      registry: CollectorRegistry) -> None:
    generator = openai(server, registry, retries=0, breaker_failures=1, breaker_reset_s=0.3)
    await open_breaker(server, generator, 1)
    await wait_for_state(generator.remote, "half-open")
    with pytest.raises(RemoteCallFailed):
        await generator.generate(REQUEST, check, Progress())
    assert generator.remote.state == "open" and len(server.requests) == 2
    with pytest.raises(BackendUnavailable):
        await generator.generate(REQUEST, check, Progress())
    assert len(server.requests) == 2


async def test_while_the_probe_runs_other_calls_are_refused(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    generator = openai(server, registry, retries=0, breaker_failures=1, breaker_reset_s=0.3)
    await open_breaker(server, generator, 1)
    await wait_for_state(generator.remote, "half-open")
    server.script(then=Reply(200, chat(fenced(GOOD)).body, delay=0.5))
    probe = asyncio.create_task(generator.generate(REQUEST, check, Progress()))
    try:
        deadline = time.monotonic() + 3
        while len(server.requests) < 2:
            assert time.monotonic() < deadline, "the probe never reached the server"
            await asyncio.sleep(0.01)
        with pytest.raises(BackendUnavailable):
            await generator.generate(REQUEST, check, Progress())
        assert (await probe).code == GOOD
    finally:
        probe.cancel()
    assert len(server.requests) == 2 and generator.remote.state == "closed"


async def test_breaker_settings_come_from_settings(server: FakeHttpServer,
                                                   registry: CollectorRegistry) -> None:
    settings = Settings(openai_base_url=f"{server.url}/v1", openai_model="m",
                        openai_api_key=KEY, generator_timeout_s=1.0, generator_retries=0,
                        generator_max_attempts=2, generator_breaker_failures=1,
                        generator_breaker_reset_s=5.0)
    generator = OpenAIGenerator.from_settings(settings, registry)
    assert generator.max_attempts == 2 and generator.remote.timeout_s == 1.0
    await open_breaker(server, generator, 1)
    with pytest.raises(BackendUnavailable) as caught:
        await generator.generate(REQUEST, check, Progress())
    assert 4 < caught.value.retry_after_s <= 5
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


# --- secrets


async def test_the_api_key_never_appears_in_errors_logs_or_metrics(
        server: FakeHttpServer, registry: CollectorRegistry,
        caplog: pytest.LogCaptureFixture) -> None:
    def echo(status: int) -> Any:
        def reply(request: Recorded) -> Reply:
            return Reply(status, {"error": f"bad credentials: {request.headers['authorization']}"})
        return reply

    caplog.set_level(logging.DEBUG)
    generator = openai(server, registry, retries=1)
    errors: list[BaseException] = []
    for status in (401, 500):
        server.script(then=echo(status))
        with pytest.raises(BackendFailed) as caught:
            await generator.generate(REQUEST, check, Progress())
        errors.append(caught.value)
    assert len(server.requests) == 3  # the 401 once, the 500 twice
    assert all(KEY in r.headers["authorization"] for r in server.requests)
    for error in errors:
        assert "bad credentials" in str(error)
        assert KEY not in str(error) and KEY not in repr(error)
        assert error.__cause__ is None and error.__suppress_context__
    assert "retrying" in caplog.text and KEY not in caplog.text
    assert KEY not in generate_latest(registry).decode()
    assert KEY not in repr(generator)


# --- the llm oracle


async def test_answer_uses_json_mode(server: FakeHttpServer,
                                     registry: CollectorRegistry) -> None:
    server.script(chat('{"output": 3}'), chat('{"label": "spam", "score": 0.9}'))
    generator = openai(server, registry)
    assert await generator.answer("one two three", {"type": "integer"}, "Count words") == 3
    assert await generator.answer("win money", {"type": "object"}, "Classify") == {
        "label": "spam", "score": 0.9}
    body = server.requests[0].json
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0
    assert '"one two three"' in body["messages"][1]["content"]


async def test_an_answer_that_is_not_json_fails(server: FakeHttpServer,
                                                registry: CollectorRegistry) -> None:
    server.script(chat("three"))
    with pytest.raises(BackendFailed, match="not JSON"):
        await openai(server, registry).answer("a b c", {"type": "integer"}, "Count")


# --- the generator service


def http_generator(server: FakeHttpServer, registry: CollectorRegistry,
                   **overrides: Any) -> HttpGenerator:
    return HttpGenerator(base_url=server.url, remote=remote("http", registry, **overrides))


async def test_http_service_success(server: FakeHttpServer,
                                    registry: CollectorRegistry) -> None:
    server.script(Reply(200, {"success": True, "code": GOOD, "language": "python",
                              "complexity": 1, "metadata": {"strategy": "rules", "ms": 12}}))
    request = GenerationRequest(task_id="t-1", task_name="word_count", description="Count",
                                input_schema={"type": "string"},
                                output_schema={"type": "integer"}, cases=CASES,
                                constraints={"max_latency_ms": 10})
    progress = Progress()
    candidate = await http_generator(server, registry).generate(request, check, progress)
    assert candidate == Candidate(code=GOOD, backend="http", strategy="service", attempts=1,
                                  metadata={"strategy": "rules", "ms": 12, "complexity": 1})
    assert [(a, r.passed) for a, r in progress.calls] == [(1, 3)]
    [sent] = server.requests
    assert sent.path == "/generate"
    assert sent.json == {"task_id": "t-1", "task_name": "word_count", "description": "Count",
                         "input_schema": {"type": "string"},
                         "output_schema": {"type": "integer"},
                         "examples": [{"input": "a b", "output": 2},
                                      {"input": "hello", "output": 1},
                                      {"input": "", "output": 0}],
                         "constraints": {"max_latency_ms": 10}}
    assert "authorization" not in sent.headers
    assert sample(registry, "loopai_generator_calls_total", backend="http",
                  outcome="ok") == 1


async def test_http_service_failure(server: FakeHttpServer,
                                    registry: CollectorRegistry) -> None:
    server.script(then=Reply(200, {"success": False, "language": "python",
                                   "error_message": "cannot learn this task"}))
    progress = Progress()
    with pytest.raises(BackendFailed, match="cannot learn this task"):
        await http_generator(server, registry).generate(REQUEST, check, progress)
    assert len(server.requests) == 1 and progress.calls == []
    assert "constraints" not in server.requests[0].json


async def test_http_service_retries_and_contract_breaks(server: FakeHttpServer,
                                                        registry: CollectorRegistry) -> None:
    server.script(Reply(502, {}), Drop(), Reply(200, {"success": True, "language": "python"}))
    with pytest.raises(RemoteCallFailed, match="no code") as caught:
        await http_generator(server, registry).generate(REQUEST, check, Progress())
    assert caught.value.failure_kind == "bad_reply" and caught.value.attempts == 3
    assert sample(registry, "loopai_generator_failures_total", backend="http",
                  kind="http_5xx") == 1
    assert sample(registry, "loopai_generator_failures_total", backend="http",
                  kind="bad_reply") == 1


async def test_http_service_program_that_breaks_the_policy(
        server: FakeHttpServer, registry: CollectorRegistry) -> None:
    server.script(Reply(200, {"success": True, "code": BREAKS_POLICY, "language": "python"}))
    progress = Progress()
    with pytest.raises(BackendFailed, match="sandbox policy"):
        await http_generator(server, registry).generate(REQUEST, check, progress)
    assert len(progress.calls) == 1 and progress.calls[0][1].rejected


async def test_both_backends_share_one_registry(server: FakeHttpServer,
                                                registry: CollectorRegistry) -> None:
    openai(server, registry)
    http_generator(server, registry)
    text = generate_latest(registry).decode()
    assert 'loopai_generator_breaker_state{backend="openai"} 0.0' in text
    assert 'loopai_generator_breaker_state{backend="http"} 0.0' in text


async def test_a_cancelled_call_does_not_trip_the_breaker(server: FakeHttpServer,
                                                          registry: CollectorRegistry) -> None:
    generator = openai(server, registry, retries=0, breaker_failures=1)
    server.script(Reply(200, chat(fenced(GOOD)).body, delay=3.0), then=chat(fenced(GOOD)))
    call = asyncio.create_task(generator.generate(REQUEST, check, Progress()))
    deadline = time.monotonic() + 3
    while not server.requests:
        assert time.monotonic() < deadline, "the call never reached the server"
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert generator.remote.state == "closed"
    assert sample(registry, "loopai_generator_calls_total", backend="openai",
                  outcome="cancelled") == 1
    assert (await generator.generate(REQUEST, check, Progress())).code == GOOD
