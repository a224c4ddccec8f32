"""Real examples for the OpenAPI document: what a client would send and get back.

They are one story (a sentiment task, a program for it, a run of it), so the request
examples work when sent in order against an empty server. Every value converts strictly to
its type (tests/unit/test_openapi_examples.py checks).
"""

from __future__ import annotations

from typing import Any

from loopai.api.routes.auth import TokenRequest, TokenResponse
from loopai.api.routes.health import Health, Readiness
from loopai.api.routes.topics import EventPage, PublishBody, PublishResult
from loopai.core.models import (
    Artifact,
    ArtifactCreate,
    BatchExecuteRequest,
    BatchExecuteResult,
    ExecuteRequest,
    Execution,
    Task,
    TaskCreate,
    TaskUpdate,
)

TASK_ID = "3f0c2a9e8b7d4c1fa6e5d4c3b2a19081"
EXECUTION_ID = "9d8c7b6a5f4e4d3cb2a1908f7e6d5c4b"
PROGRAM = (
    "import re\n"
    "\n"
    "def classify(text):\n"
    "    return 'positive' if re.search(r'good|love|great', text) else 'negative'\n"
)
TEXT_INPUT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
LABEL_OUTPUT = {"type": "string", "enum": ["positive", "negative"]}
SENTIMENT_EXAMPLES = [
    {"input": {"text": "I love it"}, "output": "positive"},
    {"input": {"text": "awful, it broke on day one"}, "output": "negative"},
]

EXAMPLES: dict[type, dict[str, Any]] = {
    TaskCreate: {
        "name": "sentiment",
        "description": "Label a product review as positive or negative",
        "input_schema": TEXT_INPUT,
        "output_schema": LABEL_OUTPUT,
        "examples": SENTIMENT_EXAMPLES,
        "accuracy_target": 0.9,
        "latency_target_ms": 10.0,
        "sampling_rate": 0.1,
    },
    TaskUpdate: {"accuracy_target": 0.95, "sampling_rate": 0.05},
    Task: {
        "id": TASK_ID,
        "name": "sentiment",
        "description": "Label a product review as positive or negative",
        "input_schema": TEXT_INPUT,
        "output_schema": LABEL_OUTPUT,
        "examples": SENTIMENT_EXAMPLES,
        "accuracy_target": 0.9,
        "latency_target_ms": 10.0,
        "sampling_rate": 0.1,
        "include_input_in_events": True,
        "total_versions": 1,
        "active_version": 1,
        "created_at": "2026-01-31T12:00:00.000Z",
        "updated_at": "2026-01-31T12:00:05.120Z",
    },
    ArtifactCreate: {
        "code": PROGRAM,
        "language": "python",
        "synthesis_strategy": "keyword_rules",
        "confidence_score": 0.92,
    },
    Artifact: {
        "id": "b1c2d3e4f5a64b7c8d9e0f1a2b3c4d5e",
        "task_id": TASK_ID,
        "version": 1,
        "language": "python",
        "code": PROGRAM,
        "entrypoint": "classify",
        "complexity_metrics": {"lines_of_code": 4, "cyclomatic_complexity": 2},
        "status": "active",
        "example_accuracy": 1.0,
        "synthesis_strategy": "keyword_rules",
        "confidence_score": 0.92,
        "created_at": "2026-01-31T12:00:05.000Z",
        "activated_at": "2026-01-31T12:00:05.120Z",
    },
    ExecuteRequest: {"input": {"text": "I love it"}, "timeout_ms": 2000},
    BatchExecuteRequest: {"inputs": [{"text": "great value"}, {"text": "awful, it broke"}]},
    Execution: {
        "execution_id": EXECUTION_ID,
        "task_id": TASK_ID,
        "program_id": "b1c2d3e4f5a64b7c8d9e0f1a2b3c4d5e",
        "version": 1,
        "status": "success",
        "latency_ms": 0.42,
        "sampled_for_validation": False,
        "executed_at": "2026-01-31T12:01:00.000Z",
        "input": {"text": "I love it"},
        "output": "positive",
    },
    BatchExecuteResult: {
        "task_id": TASK_ID,
        "total": 2,
        "succeeded": 1,
        "failed": 1,
        "results": [
            {"index": 0, "execution": {
                "execution_id": EXECUTION_ID, "task_id": TASK_ID,
                "program_id": "b1c2d3e4f5a64b7c8d9e0f1a2b3c4d5e", "version": 1,
                "status": "success", "latency_ms": 0.38, "sampled_for_validation": False,
                "executed_at": "2026-01-31T12:01:00.000Z", "output": "positive"}},
            {"index": 1, "error": {
                "code": "validation_error", "message": "the input does not match the task's"
                " input_schema", "details": [{"field": "text", "message": "required"}]}},
        ],
    },
    PublishBody: {
        "type": "order.created",
        "data": {"order_id": "A-1001", "total": 42.5, "currency": "EUR"},
        "idempotency_key": "order-A-1001",
    },
    PublishResult: {"topic": "orders.eu", "cursor": "5f3a9c1e:1769860800000-0"},
    EventPage: {
        "events": [{"topic": "orders.eu", "cursor": "5f3a9c1e:1769860800000-0",
                    "type": "order.created", "ts": 1769860800000,
                    "data": {"order_id": "A-1001", "total": 42.5, "currency": "EUR"}}],
        "gap": False,
        "oldest": "5f3a9c1e:1769860800000-0",
        "latest": "5f3a9c1e:1769860800000-0",
    },
    TokenRequest: {"scopes": ["subscribe"], "prefixes": ["orders"], "ttl_s": 300},
    TokenResponse: {"token": "lt1.eyJzdWIiOiJkYXNoYm9hcmQifQ.c2lnbmF0dXJl",
                    "expires_at": 1769861100},
    Health: {
        "status": "ok", "instance": "hub-1", "version": "0.1.0", "uptime_s": 3600.25,
        "checks": [{"name": "backplane", "ok": True, "detail": "memory, 3 topics"},
                   {"name": "database", "ok": True, "detail": "sqlite"},
                   {"name": "sandbox", "ok": True, "detail": "walls: seccomp, rlimits"}],
        "connections": 12, "subscriptions": 30, "draining": False,
    },
    Readiness: {
        "status": "not_ready",
        "checks": [{"name": "backplane", "ok": True, "detail": "memory, 3 topics"},
                   {"name": "database", "ok": False, "detail": "ConnectionRefusedError"},
                   {"name": "sandbox", "ok": True, "detail": "walls: seccomp, rlimits"}],
        "sandbox": {"walls": ["seccomp", "rlimits"], "missing": ["uid", "userns"],
                    "required": ["seccomp"]},
    },
}
"""Keyed by the Struct the value is an instance of."""
