"""Log lines are JSON objects carrying the trace id a client sees."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from loopai.logs import JsonFormatter, Redactor


def test_a_log_line_is_json_with_extras_and_exceptions() -> None:
    record = logging.LogRecord("loopai.api", logging.ERROR, __file__, 1, "failed %s", ("x",),
                               None)
    record.trace_id = "abc123"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("i-1").format(record))
    assert line["message"] == "failed x" and line["level"] == "error"
    assert line["trace_id"] == "abc123" and line["instance"] == "i-1"
    assert "ValueError: boom" in line["exception"] and line["ts"].endswith("Z")


KEY = "secret-api-key-0123456789"
TOKEN = "lt1.eyJzdWIiOiJvcHMifQ.c2lnbmF0dXJlLWJ5dGVz"


def _line(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    line: dict[str, object] = json.loads(
        JsonFormatter(redactor=Redactor([KEY, "short"])).format(record))
    return line


def test_token_query_values_are_redacted() -> None:
    line = _line('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws?token={KEY}&x=1")
    assert line["message"] == '127.0.0.1:1 - "WebSocket /ws?token=[redacted]&x=1" [accepted]'
    assert _line("< GET /ws?a=b&token=anything-at-all HTTP/1.1")["message"] == (
        "< GET /ws?a=b&token=[redacted] HTTP/1.1")


def test_auth_headers_are_redacted() -> None:
    assert _line("< authorization: Bearer %s", "whatever-1")["message"] == (
        "< authorization: Bearer [redacted]")
    assert _line("< Authorization: basic dXNlcjpwdw==")["message"] == (
        "< Authorization: basic [redacted]")
    assert _line("< authorization: raw-credential")["message"] == (
        "< authorization: [redacted]")
    headers = str([(b"authorization", b"Bearer abc"), (b"host", b"h")])
    assert "abc" not in str(_line(headers)["message"])


def test_configured_secrets_and_tokens_are_redacted_everywhere() -> None:
    line = _line("key %s and token %s", KEY, TOKEN, scope={"headers": KEY}, trace_id=TOKEN)
    text = json.dumps(line)
    assert KEY not in text and TOKEN not in text and "c2lnbmF0dXJl" not in text
    assert "[redacted]" in str(line["message"]) and "[redacted]" in str(line["scope"])
    # Secrets too short to blank literally are left alone (they would blank ordinary words).
    assert _line("a short word")["message"] == "a short word"


def test_exception_text_is_redacted() -> None:
    record = logging.LogRecord("loopai.api", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError(f"bad credential {KEY} in Bearer {TOKEN}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    text = JsonFormatter(redactor=Redactor([KEY])).format(record)
    assert KEY not in text and TOKEN not in text and "ValueError: bad credential" in text


def test_a_server_error_carrying_a_credential_is_logged_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path of a 500: the app's exception handler, our handler on the root logger
    (and Litestar's own logger routed there), the `errors` topic."""
    from litestar import get
    from litestar.testing import TestClient

    from loopai import logs
    from loopai.app import create_app
    from loopai.config import ApiKey, Settings

    @get("/api/v1/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError(f"failed with {KEY} and Bearer {TOKEN}")

    settings = Settings(database_url=f"sqlite:///{tmp_path}/t.db", metrics_interval_ms=0,
                        sandbox_workers=1, api_keys=[ApiKey(key=KEY, scopes=["admin"])])
    app = create_app(settings)
    app.register(boom)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("debug", "i-1", [KEY, settings.token_secret])
    try:
        with TestClient(app) as client:
            response = client.get(f"/api/v1/boom?token={KEY}",
                                  headers={"authorization": f"Bearer {KEY}"})
            logging.getLogger("litestar").error("litestar says %s", KEY)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logs._active = Redactor()
    assert response.status_code == 500
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any("RuntimeError: failed with [redacted]" in str(line.get("exception"))
               for line in lines), err
    assert any(line["logger"] == "litestar" for line in lines), err
    assert KEY not in err and TOKEN not in err
