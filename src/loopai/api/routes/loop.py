"""The loop's routes: generation jobs, a task's cases, feedback, validations and accuracy."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody, Parameter

from loopai.api.auth import requires
from loopai.api.dependencies import DomainDep
from loopai.api.errors import ApiError, documented
from loopai.api.routes.tasks import Limit, TaskId
from loopai.core.cases import parse_jsonl
from loopai.core.generation.models import GenerateRequest, Generation, GenerationList
from loopai.core.validation.models import (
    CaseBatch,
    CaseImport,
    CasePage,
    CasesAdded,
    Feedback,
    FeedbackResult,
    TaskAccuracy,
    ValidationPage,
)

Id = Annotated[str, Parameter(max_length=64)]
JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines",
                         "text/plain"})
MAX_JSONL_BYTES = 1_048_576
Cursor = Annotated[str | None, Parameter(max_length=512)]


@post("/api/v1/tasks/{task_id:str}/generate", responses=documented(404, 422),
      guards=[requires("write")], status_code=202, tags=["generation"],
      summary="Start generating a program for the task (a job; follow it on"
      " tasks.<id>.generations or GET /api/v1/generations/{id})")
async def generate(task_id: TaskId, domain: DomainDep,
                   data: JSONBody[GenerateRequest | None] = None) -> Response[Generation]:
    job = await domain.generations.request(task_id, data or GenerateRequest())
    return Response(job, status_code=202,
                    headers={"Location": f"/api/v1/generations/{job.id}"})


@get("/api/v1/generations/{generation_id:str}", responses=documented(404),
     guards=[requires("read")], tags=["generation"], summary="One generation job")
async def get_generation(generation_id: Id, domain: DomainDep) -> Generation:
    return await domain.generations.get(generation_id)


@get("/api/v1/tasks/{task_id:str}/generations", responses=documented(404),
     guards=[requires("read")], tags=["generation"], summary="A task's generation jobs,"
     " newest first")
async def list_generations(task_id: TaskId, domain: DomainDep,
                           limit: Limit = 50) -> GenerationList:
    return await domain.generations.for_task(task_id, limit)


@get("/api/v1/tasks/{task_id:str}/cases", responses=documented(404),
     guards=[requires("read")], tags=["cases"], summary="A task's labelled cases (paged)")
async def list_cases(task_id: TaskId, domain: DomainDep, limit: Limit = 50,
                     cursor: Cursor = None) -> CasePage:
    return await domain.cases.page(task_id, limit, cursor)


@post("/api/v1/tasks/{task_id:str}/cases", responses=documented(404),
      guards=[requires("write")], status_code=201, tags=["cases"],
      summary="Add cases (a known input gets its output replaced)")
async def add_cases(task_id: TaskId, data: JSONBody[CaseBatch], domain: DomainDep) -> CasesAdded:
    return await domain.cases.add(task_id, data.cases)


@post("/api/v1/tasks/{task_id:str}/cases/import", responses=documented(404),
      guards=[requires("write")], status_code=201, tags=["cases"],
      summary="Import cases from JSON Lines ({\"input\": …, \"output\": …} per line)")
async def import_cases(task_id: TaskId, data: JSONBody[CaseImport],
                       domain: DomainDep) -> CasesAdded:
    return await domain.cases.add(task_id, parse_jsonl(data.jsonl))


# Not in the OpenAPI document: Litestar cannot declare a raw JSON Lines body (docs/api.md).
@post("/api/v1/tasks/{task_id:str}/cases/import.jsonl", responses=documented(404),
      guards=[requires("write")], status_code=201, tags=["cases"], include_in_schema=False,
      summary="Import cases from a raw JSON Lines body (application/x-ndjson, application/"
      "jsonl or text/plain)")
async def import_cases_raw(task_id: TaskId, request: Request[Any, Any, Any],
                           domain: DomainDep) -> CasesAdded:
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    if media not in JSONL_TYPES:
        raise ApiError(415, "unsupported_media_type", "send JSON Lines: one {\"input\", "
                       "\"output\"} object per line", [{"field": "content-type",
                                                        "message": f"got {media or 'none'!r}"}])
    body = await request.body()
    if len(body) > MAX_JSONL_BYTES:
        raise ApiError(413, "payload_too_large", "JSON Lines imports are limited to 1 MiB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "validation_error", "the body is not UTF-8",
                       [{"field": "body", "message": "not UTF-8"}]) from None
    return await domain.cases.add(task_id, parse_jsonl(text))


@delete("/api/v1/tasks/{task_id:str}/cases/{case_id:str}", responses=documented(404),
        guards=[requires("write")], status_code=204, tags=["cases"], summary="Delete a case")
async def delete_case(task_id: TaskId, case_id: Id, domain: DomainDep) -> None:
    await domain.cases.delete(task_id, case_id)


@post("/api/v1/executions/{execution_id:str}/feedback", responses=documented(404),
      guards=[requires("write")], status_code=200, tags=["validation"],
      summary="Say what was right for an execution: it becomes a case and validates it")
async def feedback(execution_id: Id, data: JSONBody[Feedback],
                   domain: DomainDep) -> FeedbackResult:
    return await domain.validations.feedback(execution_id, data)


@get("/api/v1/tasks/{task_id:str}/validations", responses=documented(404),
     guards=[requires("read")], tags=["validation"],
     summary="A task's validations, newest first (cursor-paged)")
async def list_validations(task_id: TaskId, domain: DomainDep, limit: Limit = 50,
                           cursor: Cursor = None,
                           version: FromQuery[int | None] = None) -> ValidationPage:
    return await domain.validations.list(task_id, version, limit, cursor)


@get("/api/v1/tasks/{task_id:str}/accuracy", responses=documented(404),
     guards=[requires("read")], tags=["validation"],
     summary="Validated accuracy per version, with Wilson intervals")
async def task_accuracy(task_id: TaskId, domain: DomainDep) -> TaskAccuracy:
    return await domain.validations.accuracy(task_id)


ROUTES = [generate, get_generation, list_generations, list_cases, add_cases, import_cases,
          import_cases_raw,
          delete_case, feedback, list_validations, task_accuracy]
