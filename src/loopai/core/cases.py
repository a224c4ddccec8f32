"""A task's labelled cases: the examples it was created with, feedback, oracle answers and
imports. Generation learns from them; every new version is checked against them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from loopai.core.clock import iso, now_ms
from loopai.core.errors import Invalid, NotFound
from loopai.core.generation.base import Case as GenerationCase
from loopai.core.paging import decode_page_cursor, encode_page_cursor
from loopai.core.store import cases as rows
from loopai.core.store import tasks as task_rows
from loopai.core.store.cases import CaseRecord, input_key
from loopai.core.store.database import Database
from loopai.core.validation.models import (
    Case,
    CaseCreate,
    CasePage,
    CasesAdded,
    CaseSource,
)

_line = msgspec.json.Decoder(CaseCreate)


def resource(r: CaseRecord) -> Case:
    return Case(id=r.id, task_id=r.task_id, input=r.input, output=r.output,
                source=CaseSource(r.source), created_at=iso(r.created_at),
                execution_id=r.execution_id)


def parse_jsonl(text: str) -> list[CaseCreate]:
    """One case per non-empty line; every bad line is reported with its number."""
    cases: list[CaseCreate] = []
    problems: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(_line.decode(line))
        except msgspec.DecodeError as exc:
            problems.append({"field": f"jsonl[line {number}]", "message": str(exc)})
    if problems:
        raise Invalid("validation_error", "some lines are not cases", problems[:50])
    if not cases:
        raise Invalid("validation_error", "no cases in the import",
                      [{"field": "jsonl", "message": "expected one JSON object per line"}])
    return cases


class CaseService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _task_exists(self, task_id: str) -> None:
        if await task_rows.get_task(self.db, task_id) is None:
            raise NotFound("task", task_id)

    async def add(self, task_id: str, cases: list[CaseCreate],
                  execution_id: str | None = None) -> CasesAdded:
        await self._task_exists(task_id)
        now = now_ms()
        for i, case in enumerate(cases):
            # Ids sort as the cases were given, so pages and prompts keep their order.
            await rows.upsert(self.db, CaseRecord(
                id=f"{now:012x}{i:05x}{uuid.uuid4().hex[:15]}", task_id=task_id,
                input_key=input_key(case.input),
                input=case.input, output=case.output, source=case.source.value,
                execution_id=execution_id, created_at=now))
        return CasesAdded(added=len(cases), total=await rows.count(self.db, task_id))

    async def add_one(self, task_id: str, case: CaseCreate,
                      execution_id: str | None = None) -> Case:
        await self.add(task_id, [case], execution_id)
        stored = await rows.for_input(self.db, task_id, case.input)
        assert stored is not None
        return resource(stored)

    async def seed(self, task_id: str, examples: list[tuple[Any, Any]]) -> None:
        """A new task's examples become its first cases."""
        if examples:
            await self.add(task_id, [CaseCreate(input=i, output=o, source=CaseSource.EXAMPLE)
                                     for i, o in examples])

    async def page(self, task_id: str, limit: int, cursor: str | None) -> CasePage:
        after = decode_page_cursor(cursor) if cursor else None
        await self._task_exists(task_id)
        records = await rows.page(self.db, task_id, limit + 1, after)
        more = len(records) > limit
        records = records[:limit]
        next_cursor = (encode_page_cursor(records[-1].created_at, records[-1].id)
                       if more and records else None)
        return CasePage(items=[resource(r) for r in records],
                        total=await rows.count(self.db, task_id), next_cursor=next_cursor)

    async def delete(self, task_id: str, case_id: str) -> None:
        if not await rows.delete(self.db, task_id, case_id):
            await self._task_exists(task_id)
            raise NotFound("case", case_id)

    async def for_generation(self, task_id: str) -> list[GenerationCase]:
        return [GenerationCase(input=r.input, output=r.output)
                for r in await rows.all_for_task(self.db, task_id)]

    async def lookup(self, task_id: str, keys: Sequence[str]) -> dict[str, CaseRecord]:
        """The cases of these input keys (`store.cases.input_key`), by key."""
        return await rows.for_inputs(self.db, task_id, keys)
