"""The `openai` backend: any OpenAI-compatible chat-completions endpoint writes the program.

`generate` asks the model for a program (prompt.py), checks it (`check`: sandbox policy,
then every known case), reports each attempt to `progress`, and when the program was
rejected or got cases wrong, tells the model what went wrong in the same conversation and
asks again, up to `max_attempts` times. It returns the best program seen (most cases
passed; the earliest on a tie); `Candidate.attempts` is the number of attempts made and
`metadata["best_attempt"]` the one whose program it is. A reply with no program in it is
reported to `progress` as a rejected attempt (`rejected` says so) and the model is asked for
one. When no attempt brought a program that passes the policy: BackendFailed. Every HTTP
request goes through a `RemoteCall` (retries, per-attempt timeout, circuit breaker,
metrics); its failures (RemoteCallFailed, BackendUnavailable) end the generation.

`answer` serves the `llm` validation oracle: the model answers one input directly, in JSON
mode. JSON mode only allows an object, so the model is asked for `{"output": <answer>}`;
a reply with just the `output` key gives its value, any other object is taken as the
answer itself (a model that answered an object-typed task without the wrapper).

The API key is sent as `Authorization: Bearer …` and nowhere else; it is redacted from
every failure message (RemoteCall) and is not kept in this object's repr.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from prometheus_client import CollectorRegistry

from loopai.core.generation.base import (
    BackendFailed,
    Candidate,
    Checker,
    CheckReport,
    GenerationRequest,
    Progress,
)
from loopai.core.generation.prompt import (
    NO_CODE_FOLLOW_UP,
    build_messages,
    extract_code,
    follow_up,
)
from loopai.core.generation.resilience import BadReply, RemoteCall, http_client

if TYPE_CHECKING:
    from loopai.config import Settings

ANSWER_SYSTEM_PROMPT = """\
You are a function: you receive a task's description, its output JSON Schema and one input,
and you answer with a JSON object {"output": <the answer>} whose "output" matches the
output schema. Reply with that JSON object only."""


class ChatReply(msgspec.Struct, frozen=True):
    content: str
    model: str | None
    tokens: int | None
    cost_usd: float | None
    finish_reason: str | None


def parse_chat_reply(reply: Any) -> ChatReply:
    """The first choice's text of a chat-completions reply; BadReply when it has none."""
    if not isinstance(reply, dict):
        raise BadReply("the reply is not a JSON object")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadReply("the reply has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise BadReply("the reply's first choice has no text content")
    usage = reply.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    tokens = usage.get("total_tokens")
    cost = usage.get("cost")  # some gateways (OpenRouter, LiteLLM) report it
    model = reply.get("model")
    finish = choices[0].get("finish_reason")
    return ChatReply(
        content=content, model=model if isinstance(model, str) else None,
        tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        finish_reason=finish if isinstance(finish, str) else None)


class OpenAIGenerator:
    name = "openai"

    def __init__(self, *, base_url: str, model: str, api_key: str = "",
                 remote: RemoteCall | None = None, registry: CollectorRegistry | None = None,
                 max_attempts: int = 3, timeout_s: float = 30.0, retries: int = 3,
                 breaker_failures: int = 5, breaker_reset_s: float = 30.0,
                 client: httpx.AsyncClient | None = None) -> None:
        if not base_url or not model:
            raise ValueError("the openai backend needs a base URL and a model")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_attempts = max_attempts
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.remote = remote or RemoteCall(
            "openai", timeout_s=timeout_s, retries=retries, breaker_failures=breaker_failures,
            breaker_reset_s=breaker_reset_s, registry=registry,
            secrets=[api_key] if api_key else [])
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, registry: CollectorRegistry | None = None,
                      client: httpx.AsyncClient | None = None) -> OpenAIGenerator:
        key = settings.openai_api_key
        return cls(base_url=settings.openai_base_url, model=settings.openai_model,
                   api_key=key, max_attempts=settings.generator_max_attempts, client=client,
                   remote=RemoteCall.from_settings("openai", settings, registry,
                                                   secrets=[key] if key else []))

    def __repr__(self) -> str:
        return f"OpenAIGenerator(base_url={self.base_url!r}, model={self.model!r})"

    def _http(self) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return http_client(self._client, self.remote.timeout_s)

    async def _chat(self, client: httpx.AsyncClient, messages: list[dict[str, str]],
                    **extra: Any) -> ChatReply:
        body = {"model": self.model, "messages": messages, "temperature": 0, **extra}
        reply: ChatReply = await self.remote.post_json(
            client, f"{self.base_url}/chat/completions", body, self._headers,
            parse=parse_chat_reply)
        return reply

    async def generate(self, request: GenerationRequest, check: Checker,
                       progress: Progress) -> Candidate:
        messages = build_messages(request)
        best: tuple[CheckReport, str, int] | None = None
        last: CheckReport | None = None
        tokens: int | None = None
        cost: float | None = None
        model: str | None = None
        finish: str | None = None
        attempt = 0
        async with self._http() as client:
            for attempt in range(1, self.max_attempts + 1):
                reply = await self._chat(client, messages)
                model = reply.model or model
                finish = reply.finish_reason
                if reply.tokens is not None:
                    tokens = (tokens or 0) + reply.tokens
                if reply.cost_usd is not None:
                    cost = (cost or 0.0) + reply.cost_usd
                code = extract_code(reply.content)
                if code is None:
                    report = CheckReport(passed=0, total=len(request.cases),
                                         rejected="the reply contains no program defining "
                                                  "run(input)")
                    said = NO_CODE_FOLLOW_UP
                else:
                    report = await check(code)
                    said = follow_up(report)
                last = report
                await progress(attempt, report)
                if code is not None and report.rejected is None and (
                        best is None or report.passed > best[0].passed):
                    best = (report, code, attempt)
                if best is not None and best[0].passed >= best[0].total:
                    break
                if attempt < self.max_attempts:
                    messages = [*messages, {"role": "assistant", "content": reply.content},
                                {"role": "user", "content": said}]
        if best is None:
            why = last.rejected if last is not None and last.rejected else "no program"
            raise BackendFailed(
                f"openai: no attempt produced a program that passes the sandbox policy "
                f"({attempt} attempt{'s' if attempt != 1 else ''}; the last: "
                f"{self.remote.redact(why)[:500]})")
        report, code, best_attempt = best
        return Candidate(
            code=code, backend="openai", strategy="llm", model=model or self.model,
            cost_usd=cost, tokens=tokens, attempts=attempt,
            metadata={"best_attempt": best_attempt, "passed": report.passed,
                      "total": report.total, "accuracy": report.accuracy,
                      "finish_reason": finish})

    async def answer(self, request_input: Any, output_schema: dict[str, Any],
                     description: str) -> Any:
        """The model's own answer for one input (the `llm` oracle), parsed from JSON mode."""
        messages = [
            {"role": "system", "content": ANSWER_SYSTEM_PROMPT},
            {"role": "user", "content": (
                f"Task description:\n{description.strip() or '(none)'}\n\n"
                f"Output schema (JSON Schema):\n{msgspec.json.encode(output_schema).decode()}"
                f"\n\nInput:\n{msgspec.json.encode(request_input).decode()}")}]
        async with self._http() as client:
            reply = await self._chat(client, messages,
                                     response_format={"type": "json_object"})
        try:
            value = msgspec.json.decode(reply.content.strip())
        except msgspec.DecodeError:
            raise BackendFailed("openai: the model's answer is not JSON") from None
        if isinstance(value, dict) and set(value) == {"output"}:
            return value["output"]
        return value
