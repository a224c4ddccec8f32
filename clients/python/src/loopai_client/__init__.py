"""Loopai Hub client: live events with reconnect and resume (`HubClient`), and the REST API
(`ApiClient`, `AsyncApiClient`)."""

from loopai_client.api import ApiClient, AsyncApiClient
from loopai_client.backoff import Backoff
from loopai_client.errors import (
    ApiError,
    AuthenticationError,
    ConnectionLost,
    HubClosed,
    HubError,
    LoopaiError,
)
from loopai_client.hub import HubClient, Subscription
from loopai_client.models import (
    Artifact,
    BatchExecuteResult,
    ConnectionState,
    Event,
    Execution,
    ExecutionPage,
    Gap,
    StateChange,
    Task,
    TaskPage,
)

__all__ = [
    "ApiClient",
    "ApiError",
    "Artifact",
    "AsyncApiClient",
    "AuthenticationError",
    "Backoff",
    "BatchExecuteResult",
    "ConnectionLost",
    "ConnectionState",
    "Event",
    "Execution",
    "ExecutionPage",
    "Gap",
    "HubClient",
    "HubClosed",
    "HubError",
    "LoopaiError",
    "StateChange",
    "Subscription",
    "Task",
    "TaskPage",
]
