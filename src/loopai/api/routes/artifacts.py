"""`/api/v1/tasks/{task_id}/artifacts`: versioned programs of a task."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromQuery, JSONBody, Parameter

from loopai.api.auth import principal_of, requires
from loopai.api.dependencies import DomainDep
from loopai.api.errors import documented
from loopai.api.routes.tasks import TaskId
from loopai.core.models import Artifact, ArtifactCreate, ArtifactList

ERRORS = documented(404, 409)

Version = Annotated[int, Parameter(ge=1, le=2_147_483_647,
                                   description="Artifact version (1, 2, …)")]


@post("/api/v1/tasks/{task_id:str}/artifacts", responses=ERRORS,
      guards=[requires("write")], status_code=201,
      tags=["artifacts"], summary="Upload a program: checked, run on the task's examples,"
      " stored as the next version")
async def upload_artifact(task_id: TaskId, data: JSONBody[ArtifactCreate], domain: DomainDep,
                          request: Request[Any, Any, Any],
                          activate: FromQuery[bool] = False) -> Artifact:
    return await domain.artifacts.upload(task_id, data, activate,
                                         by=principal_of(request).name)


@get("/api/v1/tasks/{task_id:str}/artifacts", responses=ERRORS,
     guards=[requires("read")], tags=["artifacts"],
     summary="List a task's artifacts")
async def list_artifacts(task_id: TaskId, domain: DomainDep) -> ArtifactList:
    return ArtifactList(items=await domain.artifacts.list(task_id))


@get("/api/v1/tasks/{task_id:str}/artifacts/{version:int}", responses=ERRORS,
     guards=[requires("read")],
     tags=["artifacts"], summary="Get one artifact version")
async def get_artifact(task_id: TaskId, version: Version, domain: DomainDep) -> Artifact:
    return await domain.artifacts.get(task_id, version)


@post("/api/v1/tasks/{task_id:str}/artifacts/{version:int}/activate", responses=ERRORS,
      status_code=200,
      guards=[requires("write")], tags=["artifacts"],
      summary="Make a version the active one (the previous becomes deprecated)")
async def activate_artifact(task_id: TaskId, version: Version, domain: DomainDep,
                            request: Request[Any, Any, Any],
                            force: FromQuery[bool] = False) -> Artifact:
    return await domain.artifacts.activate(task_id, version, force,
                                           by=principal_of(request).name)
