"""Hostile and sloppy request bodies against a real server: remote schemas are never fetched,
deep nesting is a 400, every 400 has one shape, types are strict, bodies must be JSON and
task names printable. After each, the server still serves."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, SENTIMENT_INPUT, make_active_task, make_task
from tests.support.hub_process import HubProcess


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert set(body) <= {"code", "message", "details", "trace_id", "timestamp"}
    assert body["trace_id"] == response.headers["x-request-id"]
    for detail in body.get("details") or []:
        assert set(detail) == {"field", "message"}, body
        assert isinstance(detail["field"], str) and isinstance(detail["message"], str)
    return body


def assert_still_serving(api: httpx.Client) -> None:
    assert api.get("/api/v1/health/live").status_code == 200
    task = make_task(api)
    assert api.get(f"/api/v1/tasks/{task['id']}").status_code == 200


def unique() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class RecordingServer:
    """A real HTTP server on a free port that notes every request it gets."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = b'{"type": "object"}'
                self.send_response(200)
                self.send_header("content-type", "application/schema+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def remote() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


# --- remote schemas


def test_remote_schema_and_refs_are_refused_never_fetched(
    api: httpx.Client, remote: RecordingServer
) -> None:
    # The server is reachable: a client that fetched would get a valid schema.
    assert httpx.get(remote.url + "/probe").status_code == 200
    remote.hits.clear()
    schemas = [
        {"$schema": remote.url + "/meta"},
        {"$schema": remote.url + "/meta", "type": "object"},
        {"$ref": remote.url + "/ref"},
        {"type": "object", "properties": {"a": {"$ref": remote.url + "/nested#/x"}}},
        {"$id": remote.url + "/base", "$ref": "relative"},
    ]
    for schema in schemas:
        body = error_of(api.post("/api/v1/tasks", json={
            "name": unique(), "input_schema": schema, "output_schema": {},
        }), 400, "invalid_schema")
        assert remote.hits == [], schema
        assert body["details"][0]["field"] == "input_schema"
        assert "not fetched" in body["details"][0]["message"], body
    task = make_task(api)
    body = error_of(api.patch(f"/api/v1/tasks/{task['id']}", json={
        "output_schema": {"$schema": remote.url + "/meta"}}), 400, "invalid_schema")
    assert body["details"][0]["field"] == "output_schema"
    assert remote.hits == []
    assert_still_serving(api)


def test_known_meta_schemas_need_no_fetch(api: httpx.Client, remote: RecordingServer) -> None:
    for meta in ("http://json-schema.org/draft-07/schema#",
                 "https://json-schema.org/draft/2020-12/schema"):
        make_task(api, input_schema={"$schema": meta, **SENTIMENT_INPUT})
    assert remote.hits == []


# --- nesting


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_a_400(api: httpx.Client, depth: int) -> None:
    task = make_active_task(api)
    deep_array, deep_schema = nested(depth), '{"items":' * depth + "{}" + "}" * depth
    bodies = [
        ("/api/v1/tasks", '{"name": "deep", "input_schema": {}, "output_schema": {},'
                          ' "examples": [{"input": ' + deep_array + ', "output": 1}]}'),
        ("/api/v1/tasks", '{"name": "deep", "input_schema": ' + deep_schema
                          + ', "output_schema": {}}'),
        (f"/api/v1/tasks/{task['id']}/execute", '{"input": ' + deep_array + "}"),
        (f"/api/v1/tasks/{task['id']}/execute/batch", '{"inputs": [' + deep_array + "]}"),
    ]
    for path, text in bodies:
        body = error_of(api.post(path, content=text.encode(),
                                 headers={"content-type": "application/json"}),
                        400, "validation_error")
        assert body["details"] == [{"field": "body", "message": "nested deeper than 64 levels"}]
    assert_still_serving(api)


def test_nesting_up_to_the_limit_is_accepted(api: httpx.Client) -> None:
    # 64 levels: the body object, `examples`, one example object, then 61 arrays.
    text = ('{"name": "' + unique() + '", "input_schema": {}, "output_schema": {},'
            ' "examples": [{"input": ' + nested(61) + ', "output": 1}]}')
    response = api.post("/api/v1/tasks", content=text.encode(),
                        headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


# --- one error shape


def test_every_400_has_the_one_shape(api: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    empty = error_of(api.post("/api/v1/tasks", content=b"", headers=json_type),
                     400, "validation_error")
    assert empty["details"] == [{"field": "body", "message": "required"}]
    syntax = error_of(api.post("/api/v1/tasks", content=b'{"name": ', headers=json_type),
                      400, "validation_error")
    assert syntax["details"][0]["field"] == "body"
    typed = error_of(api.post("/api/v1/tasks", json={"name": 5, "input_schema": {},
                                                     "output_schema": {}}),
                     400, "validation_error")
    assert typed["details"] == [{"field": "name", "message": "Expected `str`, got `int`"}]
    missing = error_of(api.post("/api/v1/tasks", json={"name": "x"}), 400, "validation_error")
    assert missing["details"][0]["field"] == "input_schema"
    unknown = error_of(api.post("/api/v1/tasks", json={"name": "x", "input_schema": {},
                                                       "output_schema": {}, "colour": 1}),
                       400, "validation_error")
    assert unknown["details"][0]["field"] == "colour"
    nested_field = error_of(api.post("/api/v1/tasks", json={
        "name": "x", "input_schema": {}, "output_schema": {}, "examples": [{"input": 1}]}),
        400, "validation_error")
    assert nested_field["details"][0]["field"] == "examples[0].output"
    query = error_of(api.get("/api/v1/tasks", params={"limit": "lots"}), 400, "validation_error")
    assert query["details"] == [{"field": "limit", "message": "Expected `int`, got `str`"}]
    domain = error_of(api.post("/api/v1/tasks", json={
        "name": unique(), "input_schema": {"type": "nonsense"}, "output_schema": {}}),
        400, "invalid_schema")
    assert domain["details"][0]["field"] == "input_schema"
    task = make_active_task(api)
    bad_input = error_of(api.post(f"/api/v1/tasks/{task['id']}/execute",
                                  json={"input": {"text": 3}}), 400, "invalid_input")
    assert bad_input["details"][0]["field"] == "input/text"
    assert_still_serving(api)


# --- strict types


@pytest.mark.parametrize(("field", "value"), [
    ("timeout_ms", "5"), ("version", "1"), ("force_validation", "true"), ("timeout_ms", 5.0),
])
def test_numbers_and_booleans_as_strings_are_refused(api: httpx.Client, field: str,
                                                     value: Any) -> None:
    task = make_active_task(api)
    body = error_of(api.post(f"/api/v1/tasks/{task['id']}/execute",
                             json={"input": {"text": "good"}, field: value}),
                    400, "validation_error")
    assert body["details"][0]["field"] == field
    ok = api.post(f"/api/v1/tasks/{task['id']}/execute",
                  json={"input": {"text": "good"}, "timeout_ms": 5000})
    assert ok.status_code == 200, ok.text


def test_strict_task_fields(api: httpx.Client) -> None:
    for field, value in (("accuracy_target", "0.5"), ("latency_target_ms", "10"),
                         ("include_input_in_events", "false"), ("sampling_rate", "1")):
        body = error_of(api.post("/api/v1/tasks", json={
            "name": unique(), "input_schema": {}, "output_schema": {}, field: value}),
            400, "validation_error")
        assert body["details"][0]["field"] == field
    task = make_task(api)
    error_of(api.patch(f"/api/v1/tasks/{task['id']}", json={"sampling_rate": "0.5"}),
             400, "validation_error")
    assert_still_serving(api)


# --- media types


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", None,
])
def test_bodies_that_are_not_json_get_415(api: httpx.Client, content_type: str | None) -> None:
    task = make_active_task(api)
    headers = {"content-type": content_type} if content_type else {}
    text = b'{"name": "as-text", "input_schema": {}, "output_schema": {}}'
    error_of(api.post("/api/v1/tasks", content=text, headers=headers),
             415, "unsupported_media_type")
    error_of(api.post(f"/api/v1/tasks/{task['id']}/execute", content=b'{"input": {"text": "a"}}',
                      headers=headers), 415, "unsupported_media_type")
    assert_still_serving(api)


def test_json_media_types_with_parameters_and_suffixes(api: httpx.Client) -> None:
    task = make_task(api)
    for content_type in ("application/json; charset=utf-8", "Application/JSON",
                         "application/merge-patch+json"):
        response = api.patch(f"/api/v1/tasks/{task['id']}", content=b'{"sampling_rate": 0.2}',
                             headers={"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)


# --- task names


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "a\x00b", "line\nbreak", "tab\there",
                                  "bell\x07", "del\x7f", "\u00a0"])
def test_names_must_be_printable(api: httpx.Client, name: str) -> None:
    body = error_of(api.post("/api/v1/tasks", json={"name": name, "input_schema": {},
                                                    "output_schema": {}}),
                    400, "validation_error")
    assert body["details"][0]["field"] == "name", body
    task = make_task(api)
    error_of(api.patch(f"/api/v1/tasks/{task['id']}", json={"name": name}),
             400, "validation_error")
    assert_still_serving(api)


def test_names_are_trimmed(api: httpx.Client) -> None:
    name = unique()
    task = make_task(api, name=f"  {name}\t ")
    assert task["name"] == name
    conflict = api.post("/api/v1/tasks", json={"name": f" {name} ", "input_schema": {},
                                               "output_schema": {}})
    error_of(conflict, 409, "name_taken")
    renamed = api.patch(f"/api/v1/tasks/{task['id']}", json={"name": f"  {name} Ü ✓ "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == f"{name} Ü ✓"
    assert_still_serving(api)


# --- requests the HTTP parser refuses (uvicorn answers them, not the app)


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` as is, half-close, and read everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


HEAD = (b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + ADMIN.encode() + b"\r\n")


@pytest.mark.parametrize("framing", [
    b"Content-Length: abc\r\n\r\n{}",
    b"Content-Length: -1\r\n\r\n{}",
    b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b'Content-Length: 2\r\n\r\n{"name": "the rest is read as a next request"}',
])
def test_content_length_mismatch_gets_the_json_error(api_server: HubProcess, api: httpx.Client,
                                                     framing: bytes) -> None:
    response = raw_exchange(api_server.port, HEAD + framing)
    head, _, body = response.partition(b"\r\n\r\n")
    status, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status == "HTTP/1.1 400 Bad Request", response
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert set(error) == {"code", "message", "trace_id", "timestamp"}
    assert error["code"] == "bad_request" and error["message"].startswith("malformed HTTP")
    assert error["trace_id"] == headers["x-request-id"]
    assert_still_serving(api)


def test_body_shorter_than_its_content_length_then_hang_up(api_server: HubProcess,
                                                          api: httpx.Client) -> None:
    # Nobody is left to answer; the server just carries on (and logs no error).
    assert raw_exchange(api_server.port, HEAD + b"Content-Length: 100\r\n\r\n{}") == b""
    assert_still_serving(api)
    assert "client disconnected prematurely" not in api_server.log()


def test_pipelined_requests_are_answered_whole_and_in_order(api_server: HubProcess,
                                                            api: httpx.Client) -> None:
    # The protocol sends each event-loop turn's writes together (api/http_protocol.py):
    # answers that complete in the same turn must still come out whole and in order.
    live = b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    ready = b"GET /api/v1/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
    task = (b"GET /api/v1/tasks/nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN.encode() + b"\r\n\r\n")
    last = b"GET /api/v1/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api_server.port), timeout=10) as sock:
        sock.sendall(live + ready + task + live + last)
        response = b""
        while chunk := sock.recv(65536):  # until the server closes, after the last
            response += chunk
    answers = []
    rest = response
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        length = int(headers["content-length"])
        body, rest = rest[:length], rest[length:]
        answers.append((status.split(" ", 2)[1], json.loads(body)))
    assert [status for status, _ in answers] == ["200", "200", "404", "200", "200"], response
    assert answers[0][1] == answers[3][1] == answers[4][1] == {"status": "ok"}
    assert answers[1][1]["status"] == "ready"
    assert answers[2][1]["code"] == "not_found"
    assert_still_serving(api)
