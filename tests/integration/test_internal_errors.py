"""A 500 says nothing of its cause to the caller, and is announced on the `errors` topic."""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.testing import TestClient

from loopai.app import create_app
from loopai.config import Settings
from loopai.hub.backplane.base import Event


@get("/api/v1/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret detail: password=hunter2")


def test_a_500_hides_its_cause_and_reaches_the_errors_topic(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/t.db", metrics_interval_ms=0,
                              sandbox_workers=1))
    app.register(boom)
    heard: list[Event] = []
    with TestClient(app) as client:
        client.blocking_portal.call(app.state.hub.listen, "errors", heard.append)
        response = client.get("/api/v1/boom", headers={"x-request-id": "trace-500"})
        client.blocking_portal.call(app.state.domain.events.flush)
    assert response.status_code == 500
    assert response.json()["code"] == "internal" and "hunter2" not in response.text
    assert response.json()["trace_id"] == "trace-500"
    assert len(heard) == 1 and b"trace-500" in bytes(heard[0].data)
    assert b"hunter2" not in bytes(heard[0].data) and b"RuntimeError" in bytes(heard[0].data)
