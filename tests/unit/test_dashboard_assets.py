"""The dashboard's static files: the JS client copies never drift from clients/js/src, the
vendored libraries keep their licences, and no script builds HTML from strings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from loopai.app import create_app
from loopai.config import Settings

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "loopai" / "dashboard" / "static"
CLIENT_SRC = ROOT / "clients" / "js" / "src"


def test_the_served_js_client_is_an_exact_copy_of_clients_js_src() -> None:
    source = {p.name: p.read_bytes() for p in CLIENT_SRC.glob("*.js")}
    copy = {p.name: p.read_bytes() for p in (STATIC / "client").glob("*.js")}
    assert source, "clients/js/src has no modules"
    stale = sorted(n for n in source.keys() | copy.keys() if source.get(n) != copy.get(n))
    assert not stale, (f"src/loopai/dashboard/static/client differs from clients/js/src in "
                       f"{stale}: cp clients/js/src/*.js src/loopai/dashboard/static/client/")


@pytest.mark.parametrize("name", ["uplot", "swagger-ui"])
def test_vendored_libraries_keep_their_licence(name: str) -> None:
    assert (STATIC / "vendor" / name / "LICENSE").stat().st_size > 100


def test_no_dashboard_script_parses_html() -> None:
    pattern = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(")
    found = [f"{p.relative_to(STATIC)}:{n}"
             for p in (STATIC / "js").rglob("*.js")
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"HTML built from strings: {found}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:  # type: ignore[type-arg]
    db = tmp_path_factory.mktemp("dash") / "loopai.db"
    settings = Settings.from_env({}, database_url=f"sqlite:///{db}", metrics_interval_ms=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/", "/tasks", "/tasks/abc", "/errors"])
def test_pages_carry_a_strict_csp_and_no_inline_script(client: TestClient,  # type: ignore[type-arg]
                                                       path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    html = response.text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline handler
    assert "<style" not in html and "style=" not in html


def test_a_task_id_in_the_path_is_escaped(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get('/tasks/"><img src=x>')
    assert "<img" not in response.text


def test_the_api_docs_load_their_assets_from_this_server(
        client: TestClient) -> None:  # type: ignore[type-arg]
    html = client.get("/schema/swagger").text
    assert "cdn." not in html and "https://" not in html
    for asset in re.findall(r'(?:src|href)=["\'](/dashboard/static/[^"\']+)', html):
        assert client.get(asset).status_code == 200, asset


def test_whoami_without_auth_is_anonymous_admin(
        client: TestClient) -> None:  # type: ignore[type-arg]
    body = client.get("/api/v1/auth/whoami").json()
    assert body["auth_enabled"] is False and body["scopes"] == ["admin"]
