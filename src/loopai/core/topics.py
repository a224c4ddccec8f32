"""The hub topics the domain publishes to (the protocol's standard topics)."""

from __future__ import annotations

TASKS = "tasks"
ERRORS = "errors"


def artifacts(task_id: str) -> tuple[str, str]:
    return ("artifacts", f"tasks.{task_id}.artifacts")


def executions(task_id: str) -> tuple[str, str]:
    return ("executions", f"tasks.{task_id}.executions")


def generations(task_id: str) -> tuple[str, str]:
    return ("generations", f"tasks.{task_id}.generations")


def validations(task_id: str) -> tuple[str, str]:
    return ("validations", f"tasks.{task_id}.validations")
