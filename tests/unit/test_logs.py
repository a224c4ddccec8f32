"""Log lines are JSON objects carrying the trace id a client sees."""

from __future__ import annotations

import json
import logging

from loopai.logs import JsonFormatter


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
