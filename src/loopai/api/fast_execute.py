"""`POST /api/v1/tasks/{task_id}/execute` answered beside Litestar, for the requests it can
answer exactly as the route does (`routes/executions.py`: same checks, same body, same
headers); every other request goes to the route.

Litestar's request machinery (routing, the signature model, dependency injection, the
hook, the response object, its exception layer) cost more CPU than the execution itself:
about 115 µs of a 190 µs call, measured in-process. This is the hot route, called once per
input a program answers instead of an LLM. The fast path takes a request only when it is
the plain case: no `Origin` (no CORS), no HTTP rate limit configured, a `Content-Length`
JSON body within the size limit, nested within bounds and of the declared type under strict
rules, the caller allowed (`write`) when auth is on. It then runs the executor and writes
the answer. Anything else, and any request whose execution raises (unknown task, no active
artifact, an input that fails the schema, a full queue, anything), goes to Litestar with the
body replayed, so errors keep their one shape and their route. The path is the route's own
declaration, split around its `task_id`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from loopai.api.auth import bearer_in
from loopai.api.bodies import body_decoder, is_json
from loopai.api.edge import header
from loopai.api.routes.executions import execute
from loopai.api.routes.tasks import TASK_ID_MAX
from loopai.core.executor import Executor
from loopai.core.models import ExecuteRequest
from loopai.hub.auth import Authenticator
from loopai.nesting import too_deep

(ROUTE,) = execute.paths
PREFIX, _, SUFFIX = ROUTE.partition("{task_id:str}")
TEMPLATE = PREFIX + "{task_id}" + SUFFIX
"""What Litestar puts in `scope["path_template"]` for the route (the edge's metric label)."""
MAX_FAST_BODY = 65_536
"""Larger bodies go to the route (which measures their nesting in a thread)."""

_HEADERS = [(b"content-type", b"application/json")]


class FastExecute:
    """The edge's `FastRoute` for the execute route (`api/edge.py`)."""

    __slots__ = ("_auth", "_decoder", "_encoder", "_executor", "_max_body", "passed", "served")

    def __init__(self, executor: Executor, authenticator: Authenticator | None,
                 max_body: int) -> None:
        self._executor = executor
        self._auth = authenticator
        """None when auth is off."""
        self._max_body = min(max_body, MAX_FAST_BODY)
        self._decoder = body_decoder(ExecuteRequest)
        self._encoder = msgspec.json.Encoder()
        self.served = 0
        self.passed = 0
        """Requests of this route handed to Litestar (for tests and curiosity)."""

    def takes(self, scope: Any) -> bool:
        """Whether `scope` is this route at all (method and path), cheaply."""
        if scope["method"] != "POST":
            return False
        path: str = scope["path"]
        return (path.startswith(PREFIX) and path.endswith(SUFFIX)
                and 0 < len(path) - len(PREFIX) - len(SUFFIX) <= TASK_ID_MAX)

    async def serve(self, scope: Any, receive: Any, send: Any, app: Any) -> None:
        """Answer the request, or hand it to `app` (Litestar) as it came."""
        task_id = scope["path"][len(PREFIX):-len(SUFFIX)]
        if not self._plain(scope, task_id):
            self.passed += 1
            await app(scope, receive, send)
            return
        body, tail = await self._read(receive)
        if tail is None and not too_deep(body):
            try:
                execution = await self._executor.execute(task_id, self._decoder.decode(body))
            except Exception:
                pass  # the route meets it again and answers in the one error shape
            else:
                self.served += 1
                scope["path_template"] = TEMPLATE
                payload = self._encoder.encode(execution)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS, (b"content-length", b"%d" % len(payload))]})
                await send({"type": "http.response.body", "body": payload,
                            "more_body": False})
                return
        self.passed += 1
        await app(scope, _replay(body, tail, receive), send)

    def _plain(self, scope: Any, task_id: str) -> bool:
        if "/" in task_id or not is_json(header(scope, b"content-type")):
            return False
        length = header(scope, b"content-length")
        if length is None or not length.isdigit() or not 0 < int(length) <= self._max_body:
            return False
        if self._auth is not None:
            credential = bearer_in(scope)
            principal = self._auth.authenticate(credential) if credential else None
            if principal is None or not principal.has("write"):
                return False
        return True

    async def _read(self, receive: Any) -> tuple[bytes, list[Any] | None]:
        """The body and, when it is not whole, what `receive` gave after it (a disconnect)
        or `[]` (past the size limit: the rest is still to be received)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), [message]
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None
            if size > self._max_body:
                return b"".join(chunks), []


def _replay(body: bytes, tail: list[Any] | None, receive: Any) -> Any:
    """A `receive` that gives what the fast path read, then the server's own."""
    first: list[Any] = [{"type": "http.request", "body": body, "more_body": tail is not None},
                        *(tail or ())]

    async def replaying() -> Any:
        return first.pop(0) if first else await receive()

    return replaying
