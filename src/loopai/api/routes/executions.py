"""Executing a task's active program, and reading execution records."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import FromQuery, JSONBody, Parameter

from loopai.api.auth import requires
from loopai.api.dependencies import DomainDep
from loopai.api.errors import ApiError, documented
from loopai.api.routes.tasks import Limit, TaskId
from loopai.core.clock import parse_iso
from loopai.core.models import (
    BatchExecuteRequest,
    BatchExecuteResult,
    ExecuteRequest,
    Execution,
    ExecutionPage,
    ExecutionStatus,
)
from loopai.core.store.executions import ExecutionFilter

ERRORS = documented(404, 409)


@post("/api/v1/tasks/{task_id:str}/execute", responses=ERRORS,
      guards=[requires("write")], status_code=200,
      tags=["executions"], summary="Run the task's program on one input")
async def execute(task_id: TaskId, data: JSONBody[ExecuteRequest], domain: DomainDep) -> Execution:
    return await domain.executor.execute(task_id, data)


@post("/api/v1/tasks/{task_id:str}/execute/batch", responses=ERRORS,
      guards=[requires("write")], status_code=200,
      tags=["executions"], summary="Run the task's program on up to 1000 inputs")
async def execute_batch(task_id: TaskId, data: JSONBody[BatchExecuteRequest],
                        domain: DomainDep) -> BatchExecuteResult:
    return await domain.executor.execute_batch(task_id, data)


@get("/api/v1/tasks/{task_id:str}/executions", responses=ERRORS,
     guards=[requires("read")], tags=["executions"],
     summary="A task's executions, newest first (cursor-paged)")
async def list_executions(
    task_id: TaskId,
    domain: DomainDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    status: FromQuery[ExecutionStatus | None] = None,
    sampled: FromQuery[bool | None] = None,
    since: Annotated[str | None, Parameter(description="ISO 8601 time; executions at or after",
                                           max_length=64,
                                           schema_extra={"format": "date-time"})] = None,
) -> ExecutionPage:
    since_ms = None
    if since is not None:
        try:
            since_ms = parse_iso(since)
        except ValueError:
            raise ApiError(400, "validation_error", f"since: not an ISO 8601 time: {since!r}",
                           [{"field": "since", "message": "expected e.g. 2026-01-31T12:00:00Z"}]
                           ) from None
    where = ExecutionFilter(status=status, sampled=sampled, since_ms=since_ms)
    return await domain.executor.list(task_id, where, limit, cursor)


@get("/api/v1/executions/{execution_id:str}", responses=ERRORS,
     guards=[requires("read")], tags=["executions"],
     summary="One execution record")
async def get_execution(
    execution_id: Annotated[str, Parameter(max_length=64)], domain: DomainDep
) -> Execution:
    return await domain.executor.get(execution_id)
