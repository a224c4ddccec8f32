"""The REST API over httpx: `ApiClient` (blocking) and `AsyncApiClient` (asyncio).

Every operation is described once (`_Call`: method, path, query, body, result type); the two
clients only differ in how they send it. Errors become ApiError with the server's code,
message and trace id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from loopai_client.errors import ApiError
from loopai_client.models import (
    Artifact,
    BatchExecuteResult,
    CasePage,
    CasesAdded,
    Execution,
    ExecutionPage,
    FeedbackResult,
    Generation,
    PublishResult,
    Task,
    TaskAccuracy,
    TaskPage,
    ValidationPage,
)

T = TypeVar("T")


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    result: type[T]
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None


def _q(value: str | int) -> str:
    return quote(str(value), safe="")


def _query(**values: Any) -> dict[str, Any]:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items()
            if v is not None}


class _Artifacts:
    @staticmethod
    def items(result: dict[str, Any]) -> list[Artifact]:
        return msgspec.convert(result["items"], list[Artifact])


class _Generations(msgspec.Struct):
    items: list[Generation]


class _Unset:
    """The default of `feedback(expected_output=)`: absent, which is not `None` (JSON null)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _jsonl(cases: str | Iterable[Mapping[str, Any]]) -> str:
    if isinstance(cases, str):
        return cases
    return "".join(msgspec.json.encode(dict(case)).decode() + "\n" for case in cases)


class _Waiting:
    """`wait_for_generation`'s deadline and its timeout message."""

    def __init__(self, generation_id: str, timeout: float) -> None:
        self.generation_id = generation_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def left(self, job: Generation, interval: float) -> float:
        """Seconds to sleep before the next poll; raises TimeoutError past the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"generation {self.generation_id} still {job.status} after"
                               f" {self.timeout:g} s")
        return min(interval, left)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(response.status_code, str(body.get("code", "http_error")),
                    str(body.get("message", response.reason_phrase or "request failed")),
                    body.get("trace_id") or response.headers.get("x-request-id"),
                    body.get("details"))


def _decode(call: _Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        raise _error(response)
    if response.status_code == 204 or not response.content:
        return None  # type: ignore[return-value]
    return msgspec.json.decode(response.content, type=call.result)


class _Operations:
    """The API's operations as `_Call`s; shared by both clients."""

    @staticmethod
    def create_task(**fields: Any) -> _Call[Task]:
        return _Call("POST", "/api/v1/tasks", Task, body=fields)

    @staticmethod
    def list_tasks(limit: int | None, cursor: str | None) -> _Call[TaskPage]:
        return _Call("GET", "/api/v1/tasks", TaskPage, _query(limit=limit, cursor=cursor))

    @staticmethod
    def get_task(task_id: str) -> _Call[Task]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}", Task)

    @staticmethod
    def update_task(task_id: str, changes: dict[str, Any]) -> _Call[Task]:
        return _Call("PATCH", f"/api/v1/tasks/{_q(task_id)}", Task, body=changes)

    @staticmethod
    def delete_task(task_id: str, force: bool) -> _Call[None]:
        return _Call("DELETE", f"/api/v1/tasks/{_q(task_id)}", type(None),
                     _query(force=force or None))

    @staticmethod
    def upload_artifact(task_id: str, code: str, activate: bool, fields: dict[str, Any],
                        ) -> _Call[Artifact]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/artifacts", Artifact,
                     _query(activate=activate or None), {"code": code, **fields})

    @staticmethod
    def list_artifacts(task_id: str) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/artifacts", dict)

    @staticmethod
    def get_artifact(task_id: str, version: int) -> _Call[Artifact]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/artifacts/{_q(version)}", Artifact)

    @staticmethod
    def activate_artifact(task_id: str, version: int, force: bool) -> _Call[Artifact]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/artifacts/{_q(version)}/activate",
                     Artifact, _query(force=force or None))

    @staticmethod
    def execute(task_id: str, input: Any, options: dict[str, Any]) -> _Call[Execution]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/execute", Execution,
                     body={"input": input, **options})

    @staticmethod
    def execute_batch(task_id: str, inputs: list[Any], options: dict[str, Any],
                      ) -> _Call[BatchExecuteResult]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/execute/batch", BatchExecuteResult,
                     body={"inputs": inputs, **options})

    @staticmethod
    def list_executions(task_id: str, filters: dict[str, Any]) -> _Call[ExecutionPage]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/executions", ExecutionPage,
                     _query(**filters))

    @staticmethod
    def get_execution(execution_id: str) -> _Call[Execution]:
        return _Call("GET", f"/api/v1/executions/{_q(execution_id)}", Execution)

    @staticmethod
    def generate(task_id: str, backend: str | None, activate: str | None) -> _Call[Generation]:
        body = {k: v for k, v in {"backend": backend, "activate": activate}.items()
                if v is not None}
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/generate", Generation, body=body)

    @staticmethod
    def get_generation(generation_id: str) -> _Call[Generation]:
        return _Call("GET", f"/api/v1/generations/{_q(generation_id)}", Generation)

    @staticmethod
    def list_generations(task_id: str, limit: int | None) -> _Call[_Generations]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/generations", _Generations,
                     _query(limit=limit))

    @staticmethod
    def list_cases(task_id: str, limit: int | None, cursor: str | None) -> _Call[CasePage]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/cases", CasePage,
                     _query(limit=limit, cursor=cursor))

    @staticmethod
    def add_cases(task_id: str, cases: Iterable[Mapping[str, Any]]) -> _Call[CasesAdded]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/cases", CasesAdded,
                     body={"cases": [dict(case) for case in cases]})

    @staticmethod
    def import_cases(task_id: str, cases: str | Iterable[Mapping[str, Any]],
                     ) -> _Call[CasesAdded]:
        return _Call("POST", f"/api/v1/tasks/{_q(task_id)}/cases/import", CasesAdded,
                     body={"jsonl": _jsonl(cases)})

    @staticmethod
    def delete_case(task_id: str, case_id: str) -> _Call[None]:
        return _Call("DELETE", f"/api/v1/tasks/{_q(task_id)}/cases/{_q(case_id)}", type(None))

    @staticmethod
    def feedback(execution_id: str, expected_output: Any, correct: bool | None,
                 ) -> _Call[FeedbackResult]:
        body: dict[str, Any] = {}
        if expected_output is not UNSET:
            body["expected_output"] = expected_output
        if correct is not None:
            body["correct"] = correct
        return _Call("POST", f"/api/v1/executions/{_q(execution_id)}/feedback", FeedbackResult,
                     body=body)

    @staticmethod
    def list_validations(task_id: str, limit: int | None, cursor: str | None,
                         version: int | None) -> _Call[ValidationPage]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/validations", ValidationPage,
                     _query(limit=limit, cursor=cursor, version=version))

    @staticmethod
    def task_accuracy(task_id: str) -> _Call[TaskAccuracy]:
        return _Call("GET", f"/api/v1/tasks/{_q(task_id)}/accuracy", TaskAccuracy)

    @staticmethod
    def health(part: str) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/api/v1/health{part}", dict)

    @staticmethod
    def publish(topic: str, type: str, data: Any) -> _Call[PublishResult]:
        return _Call("POST", f"/api/v1/topics/{_q(topic)}/events", PublishResult,
                     body={"type": type, "data": data})

    @staticmethod
    def ws_token(scopes: list[str] | None, prefixes: list[str] | None) -> _Call[dict[str, Any]]:
        body = {k: v for k, v in {"scopes": scopes, "prefixes": prefixes}.items() if v}
        return _Call("POST", "/api/v1/auth/ws-token", dict, body=body)


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _request_args(call: _Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.query}
    if call.body is not None:
        args["content"] = msgspec.json.encode(call.body)
        args["headers"] = {"content-type": "application/json"}
    return args


class ApiClient:
    """Blocking client: `with ApiClient("http://127.0.0.1:8000", token=...) as api: ...`"""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(token),
                                  timeout=timeout_s, transport=transport)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: _Call[T]) -> T:
        return _decode(call, self._http.request(call.method, call.path, **_request_args(call)))

    def create_task(self, name: str, input_schema: dict[str, Any],
                    output_schema: dict[str, Any], **fields: Any) -> Task:
        return self._run(_Operations.create_task(name=name, input_schema=input_schema,
                                                 output_schema=output_schema, **fields))

    def list_tasks(self, limit: int | None = None, cursor: str | None = None) -> TaskPage:
        return self._run(_Operations.list_tasks(limit, cursor))

    def get_task(self, task_id: str) -> Task:
        return self._run(_Operations.get_task(task_id))

    def update_task(self, task_id: str, **changes: Any) -> Task:
        return self._run(_Operations.update_task(task_id, changes))

    def delete_task(self, task_id: str, force: bool = False) -> None:
        self._run(_Operations.delete_task(task_id, force))

    def upload_artifact(self, task_id: str, code: str, activate: bool = False,
                        **fields: Any) -> Artifact:
        return self._run(_Operations.upload_artifact(task_id, code, activate, fields))

    def list_artifacts(self, task_id: str) -> list[Artifact]:
        return _Artifacts.items(self._run(_Operations.list_artifacts(task_id)))

    def get_artifact(self, task_id: str, version: int) -> Artifact:
        return self._run(_Operations.get_artifact(task_id, version))

    def activate_artifact(self, task_id: str, version: int, force: bool = False) -> Artifact:
        return self._run(_Operations.activate_artifact(task_id, version, force))

    def execute(self, task_id: str, input: Any, **options: Any) -> Execution:
        return self._run(_Operations.execute(task_id, input, options))

    def execute_batch(self, task_id: str, inputs: list[Any], **options: Any,
                      ) -> BatchExecuteResult:
        return self._run(_Operations.execute_batch(task_id, inputs, options))

    def list_executions(self, task_id: str, **filters: Any) -> ExecutionPage:
        return self._run(_Operations.list_executions(task_id, filters))

    def get_execution(self, execution_id: str) -> Execution:
        return self._run(_Operations.get_execution(execution_id))

    def health(self, part: str = "") -> dict[str, Any]:
        """`""` (summary), `"/live"` or `"/ready"` (raises ApiError 503 when not ready)."""
        return self._run(_Operations.health(part))

    def publish(self, topic: str, type: str, data: Any = None) -> PublishResult:
        return self._run(_Operations.publish(topic, type, data))

    def ws_token(self, scopes: list[str] | None = None,
                 prefixes: list[str] | None = None) -> str:
        return str(self._run(_Operations.ws_token(scopes, prefixes))["token"])

    # --- the loop: generation, cases, feedback, validations, accuracy

    def generate(self, task_id: str, backend: str | None = None,
                 activate: str | None = None) -> Generation:
        """Start a generation job (`backend`: `examples`, `openai`, `http`; `activate`:
        `never`, `if_validated`, `if_better`); returns it queued or running."""
        return self._run(_Operations.generate(task_id, backend, activate))

    def get_generation(self, generation_id: str) -> Generation:
        return self._run(_Operations.get_generation(generation_id))

    def list_generations(self, task_id: str, limit: int | None = None) -> list[Generation]:
        """The task's generation jobs, newest first."""
        return self._run(_Operations.list_generations(task_id, limit)).items

    def wait_for_generation(self, generation_id: str, timeout: float = 120.0,
                            interval: float = 0.25) -> Generation:
        """Polls until the job is `completed` or `failed` and returns it (check `status`);
        raises TimeoutError when it is still going after `timeout` seconds."""
        waiting = _Waiting(generation_id, timeout)
        while True:
            job = self.get_generation(generation_id)
            if job.finished:
                return job
            time.sleep(waiting.left(job, interval))

    def list_cases(self, task_id: str, limit: int | None = None,
                   cursor: str | None = None) -> CasePage:
        return self._run(_Operations.list_cases(task_id, limit, cursor))

    def add_cases(self, task_id: str, cases: Iterable[Mapping[str, Any]]) -> CasesAdded:
        """`cases`: `{"input": …, "output": …, "source"?: …}` each; a known input gets its
        output replaced."""
        return self._run(_Operations.add_cases(task_id, cases))

    def import_cases(self, task_id: str, cases: str | Iterable[Mapping[str, Any]],
                     ) -> CasesAdded:
        """JSON Lines text, or `{"input": …, "output": …}` dicts sent as JSON Lines."""
        return self._run(_Operations.import_cases(task_id, cases))

    def delete_case(self, task_id: str, case_id: str) -> None:
        self._run(_Operations.delete_case(task_id, case_id))

    def feedback(self, execution_id: str, expected_output: Any = UNSET,
                 correct: bool | None = None) -> FeedbackResult:
        """What was right for an execution: `expected_output=`, or `correct=True` to confirm
        its output. It becomes a case and validates the execution."""
        return self._run(_Operations.feedback(execution_id, expected_output, correct))

    def list_validations(self, task_id: str, limit: int | None = None,
                         cursor: str | None = None, version: int | None = None,
                         ) -> ValidationPage:
        return self._run(_Operations.list_validations(task_id, limit, cursor, version))

    def task_accuracy(self, task_id: str) -> TaskAccuracy:
        return self._run(_Operations.task_accuracy(task_id))


class AsyncApiClient:
    """The same operations for asyncio: `async with AsyncApiClient(url, token=...) as api`."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=_headers(token),
                                       timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _run(self, call: _Call[T]) -> T:
        response = await self._http.request(call.method, call.path, **_request_args(call))
        return _decode(call, response)

    async def create_task(self, name: str, input_schema: dict[str, Any],
                          output_schema: dict[str, Any], **fields: Any) -> Task:
        return await self._run(_Operations.create_task(
            name=name, input_schema=input_schema, output_schema=output_schema, **fields))

    async def list_tasks(self, limit: int | None = None, cursor: str | None = None) -> TaskPage:
        return await self._run(_Operations.list_tasks(limit, cursor))

    async def get_task(self, task_id: str) -> Task:
        return await self._run(_Operations.get_task(task_id))

    async def update_task(self, task_id: str, **changes: Any) -> Task:
        return await self._run(_Operations.update_task(task_id, changes))

    async def delete_task(self, task_id: str, force: bool = False) -> None:
        await self._run(_Operations.delete_task(task_id, force))

    async def upload_artifact(self, task_id: str, code: str, activate: bool = False,
                              **fields: Any) -> Artifact:
        return await self._run(_Operations.upload_artifact(task_id, code, activate, fields))

    async def list_artifacts(self, task_id: str) -> list[Artifact]:
        return _Artifacts.items(await self._run(_Operations.list_artifacts(task_id)))

    async def get_artifact(self, task_id: str, version: int) -> Artifact:
        return await self._run(_Operations.get_artifact(task_id, version))

    async def activate_artifact(self, task_id: str, version: int,
                                force: bool = False) -> Artifact:
        return await self._run(_Operations.activate_artifact(task_id, version, force))

    async def execute(self, task_id: str, input: Any, **options: Any) -> Execution:
        return await self._run(_Operations.execute(task_id, input, options))

    async def execute_batch(self, task_id: str, inputs: list[Any],
                            **options: Any) -> BatchExecuteResult:
        return await self._run(_Operations.execute_batch(task_id, inputs, options))

    async def list_executions(self, task_id: str, **filters: Any) -> ExecutionPage:
        return await self._run(_Operations.list_executions(task_id, filters))

    async def get_execution(self, execution_id: str) -> Execution:
        return await self._run(_Operations.get_execution(execution_id))

    async def health(self, part: str = "") -> dict[str, Any]:
        return await self._run(_Operations.health(part))

    async def publish(self, topic: str, type: str, data: Any = None) -> PublishResult:
        return await self._run(_Operations.publish(topic, type, data))

    async def ws_token(self, scopes: list[str] | None = None,
                       prefixes: list[str] | None = None) -> str:
        return str((await self._run(_Operations.ws_token(scopes, prefixes)))["token"])

    # --- the loop: generation, cases, feedback, validations, accuracy

    async def generate(self, task_id: str, backend: str | None = None,
                       activate: str | None = None) -> Generation:
        return await self._run(_Operations.generate(task_id, backend, activate))

    async def get_generation(self, generation_id: str) -> Generation:
        return await self._run(_Operations.get_generation(generation_id))

    async def list_generations(self, task_id: str, limit: int | None = None,
                               ) -> list[Generation]:
        return (await self._run(_Operations.list_generations(task_id, limit))).items

    async def wait_for_generation(self, generation_id: str, timeout: float = 120.0,
                                  interval: float = 0.25) -> Generation:
        waiting = _Waiting(generation_id, timeout)
        while True:
            job = await self.get_generation(generation_id)
            if job.finished:
                return job
            await asyncio.sleep(waiting.left(job, interval))

    async def list_cases(self, task_id: str, limit: int | None = None,
                         cursor: str | None = None) -> CasePage:
        return await self._run(_Operations.list_cases(task_id, limit, cursor))

    async def add_cases(self, task_id: str, cases: Iterable[Mapping[str, Any]]) -> CasesAdded:
        return await self._run(_Operations.add_cases(task_id, cases))

    async def import_cases(self, task_id: str, cases: str | Iterable[Mapping[str, Any]],
                           ) -> CasesAdded:
        return await self._run(_Operations.import_cases(task_id, cases))

    async def delete_case(self, task_id: str, case_id: str) -> None:
        await self._run(_Operations.delete_case(task_id, case_id))

    async def feedback(self, execution_id: str, expected_output: Any = UNSET,
                       correct: bool | None = None) -> FeedbackResult:
        return await self._run(_Operations.feedback(execution_id, expected_output, correct))

    async def list_validations(self, task_id: str, limit: int | None = None,
                               cursor: str | None = None, version: int | None = None,
                               ) -> ValidationPage:
        return await self._run(_Operations.list_validations(task_id, limit, cursor, version))

    async def task_accuracy(self, task_id: str) -> TaskAccuracy:
        return await self._run(_Operations.task_accuracy(task_id))
