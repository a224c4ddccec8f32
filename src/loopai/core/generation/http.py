"""The `http` backend: a Loopai generator service writes the program.

The contract: `POST {base}/generate` with
`{task_id, task_name, description, input_schema, output_schema, examples: [{input, output}],
constraints?}`, answered with `{success, code?, language, complexity?, error_message?,
metadata?}`. `success: false` is the service's own refusal (BackendFailed with its
`error_message`); `success: true` brings a program, checked once (`check`, reported to
`progress` as attempt 1) and returned as the candidate. A program that breaks the sandbox
policy is no candidate: BackendFailed. A reply outside the contract (not JSON, `success`
missing, `success: true` without `code`) is a `bad_reply` of the RemoteCall.
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
    GenerationRequest,
    Progress,
)
from loopai.core.generation.resilience import BadReply, RemoteCall, http_client

if TYPE_CHECKING:
    from loopai.config import Settings


class GenerateReply(msgspec.Struct, frozen=True):
    success: bool
    code: str | None = None
    language: str = "python"
    complexity: Any = None
    error_message: str | None = None
    metadata: dict[str, Any] | None = None


def parse_generate_reply(reply: Any) -> GenerateReply:
    try:
        parsed = msgspec.convert(reply, GenerateReply)
    except msgspec.ValidationError as exc:
        raise BadReply(f"the reply does not follow the generate contract: {exc}") from None
    if parsed.success and not parsed.code:
        raise BadReply("the reply says success but has no code")
    return parsed


class HttpGenerator:
    name = "http"

    def __init__(self, *, base_url: str, remote: RemoteCall | None = None,
                 registry: CollectorRegistry | None = None, timeout_s: float = 30.0,
                 retries: int = 3, breaker_failures: int = 5, breaker_reset_s: float = 30.0,
                 client: httpx.AsyncClient | None = None) -> None:
        if not base_url:
            raise ValueError("the http backend needs the generator service's base URL")
        self.base_url = base_url.rstrip("/")
        self.remote = remote or RemoteCall(
            "http", timeout_s=timeout_s, retries=retries, breaker_failures=breaker_failures,
            breaker_reset_s=breaker_reset_s, registry=registry)
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, registry: CollectorRegistry | None = None,
                      client: httpx.AsyncClient | None = None) -> HttpGenerator:
        return cls(base_url=settings.generator_http_url, client=client,
                   remote=RemoteCall.from_settings("http", settings, registry))

    def __repr__(self) -> str:
        return f"HttpGenerator(base_url={self.base_url!r})"

    def _http(self) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return http_client(self._client, self.remote.timeout_s)

    @staticmethod
    def request_body(request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_id": request.task_id, "task_name": request.task_name,
            "description": request.description, "input_schema": request.input_schema,
            "output_schema": request.output_schema,
            "examples": [{"input": case.input, "output": case.output}
                         for case in request.cases]}
        if request.constraints is not None:
            body["constraints"] = request.constraints
        return body

    async def generate(self, request: GenerationRequest, check: Checker,
                       progress: Progress) -> Candidate:
        async with self._http() as client:
            reply: GenerateReply = await self.remote.post_json(
                client, f"{self.base_url}/generate", self.request_body(request),
                parse=parse_generate_reply)
        if not reply.success:
            raise BackendFailed("http: the generator service could not generate a program: "
                                f"{(reply.error_message or 'no reason given')[:500]}")
        if reply.language.lower() != "python":
            raise BackendFailed(f"http: the generator service wrote {reply.language!r}, "
                                "not python")
        code = reply.code or ""
        report = await check(code)
        await progress(1, report)
        if report.rejected is not None:
            raise BackendFailed("http: the generator service's program breaks the sandbox "
                                f"policy: {report.rejected[:500]}")
        metadata = dict(reply.metadata or {})
        if reply.complexity is not None:
            metadata.setdefault("complexity", reply.complexity)
        return Candidate(code=code, backend="http", strategy="service", attempts=1,
                         metadata=metadata)
