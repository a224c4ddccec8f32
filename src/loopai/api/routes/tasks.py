"""`/api/v1/tasks`: the tasks Loopai turns into programs."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, patch, post
from litestar.params import FromQuery, JSONBody, Parameter

from loopai.api.auth import requires
from loopai.api.dependencies import DomainDep
from loopai.api.errors import documented
from loopai.core.models import Task, TaskCreate, TaskPage, TaskUpdate

ERRORS = documented(404, 409)

TASK_ID_MAX = 64
TaskId = Annotated[str, Parameter(description="The task's id", max_length=TASK_ID_MAX)]
Limit = Annotated[int, Parameter(ge=1, le=500, description="Items per page")]


@post("/api/v1/tasks", responses=ERRORS,
      guards=[requires("write")], status_code=201, tags=["tasks"],
      summary="Create a task")
async def create_task(data: JSONBody[TaskCreate], domain: DomainDep) -> Task:
    return await domain.tasks.create(data)


@get("/api/v1/tasks", responses=ERRORS, guards=[requires("read")], tags=["tasks"],
     summary="List tasks (oldest first, cursor-paged)")
async def list_tasks(domain: DomainDep, limit: Limit = 50,
                     cursor: Annotated[str | None, Parameter(max_length=512)] = None) -> TaskPage:
    return await domain.tasks.list(limit, cursor)


@get("/api/v1/tasks/{task_id:str}", responses=ERRORS, guards=[requires("read")], tags=["tasks"],
     summary="Get a task")
async def get_task(task_id: TaskId, domain: DomainDep) -> Task:
    return await domain.tasks.read(task_id)


@patch("/api/v1/tasks/{task_id:str}", responses=ERRORS, guards=[requires("write")], tags=["tasks"],
       summary="Change a task's fields")
async def update_task(task_id: TaskId, data: JSONBody[TaskUpdate], domain: DomainDep) -> Task:
    return await domain.tasks.update(task_id, data)


@delete("/api/v1/tasks/{task_id:str}", responses=ERRORS, guards=[requires("admin")], tags=["tasks"],
        status_code=204, summary="Delete a task (409 while it has an active program unless"
        " force=true)")
async def delete_task(task_id: TaskId, domain: DomainDep, force: FromQuery[bool] = False) -> None:
    await domain.tasks.delete(task_id, force)
