"""The dashboard in a real headless Chromium (Debian's, /usr/bin/chromium) against real
`loopai serve` processes: pages load clean, executions, generations and validations appear live,
a restart and a lost instance behind a proxy show *reconnecting* and lose no row, data is
rendered as text, auth asks for a key and refuses a wrong one, and the rate it keeps up with.

Screenshots go to $LOOPAI_DASHBOARD_SHOTS (default: <tmp>/loopai-dashboard-shots).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.api.conftest import make_active_task, make_task
from tests.support import datasets
from tests.support.hub_process import HubProcess, free_port, reap, spawn
from tests.support.postgres import postgres_database
from tests.support.redis_server import RedisServer
from tests.support.tcp_proxy import TcpProxy

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = Path(os.environ.get("LOOPAI_DASHBOARD_SHOTS",
                            Path(tempfile.gettempdir()) / "loopai-dashboard-shots"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: "
                       "`apt-get install chromium` (scripts/test-deps.sh does it when root)"),
]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package: pip install -e '.[test]'")

XSS = "<img src=x onerror=alert(1)>"
BOOM = """def run(input):
    if input["text"] == "boom":
        raise ValueError("boom")
    return "positive" if "love" in input["text"] else "negative"
"""


@dataclass
class Tab:
    """A page plus everything it complained about."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def goto(self, url: str) -> Tab:
        self.page.goto(url)
        return self

    def wait_live(self, timeout: float = 20) -> None:
        self.page.wait_for_selector('#conn[data-state="live"]', timeout=timeout * 1000)

    def states(self) -> list[str]:
        result: list[str] = self.page.evaluate("() => [...__dashboard.states]")
        return result

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def clean(self, outage: bool = False) -> None:
        """`outage`: the browser's own messages about a server that is down are expected."""
        errors = [e for e in self.errors if not (outage and (
            "WebSocket connection to" in e or "ERR_CONNECTION" in e
            or "Failed to load resource" in e))]
        assert errors == [], f"console errors: {errors}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.foreign == [], f"requests off this machine: {self.foreign}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Callable[..., Tab]]:
    contexts: list[Any] = []

    def open_tab(width: int = 1280, height: int = 900) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page)

        def route(r: Any) -> None:
            if urlparse(r.request.url).hostname not in ("127.0.0.1", "localhost"):
                tab.foreign.append(r.request.url)
                r.abort()
            else:
                r.continue_()

        context.route("**/*", route)
        page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
        page.on("websocket", lambda ws: tab.sockets.append(ws.url))

        def dialog(d: Any) -> None:
            tab.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.set_default_timeout(20_000)
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    server = HubProcess(env={"LOOPAI_METRICS_INTERVAL_MS": "1000"}).start()
    yield server
    server.stop()


def execute(api: httpx.Client, task_id: str, text: str) -> dict[str, Any]:
    response = api.post(f"/api/v1/tasks/{task_id}/execute", json={"input": {"text": text}})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def row_keys(tab: Tab) -> set[str]:
    keys: list[str] = tab.page.eval_on_selector_all(
        "#app table.live tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)")
    return set(keys)


def wait_rows(tab: Tab, ids: set[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ids <= row_keys(tab):
        if time.monotonic() > deadline:
            missing = ids - row_keys(tab)
            raise AssertionError(f"{len(missing)} of {len(ids)} rows never appeared: "
                                 f"{sorted(missing)[:5]}; states {tab.states()}")
        time.sleep(0.1)


@contextlib.contextmanager
def in_thread(manager: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    """Enter and leave `manager` in another thread: it runs asyncio.run, and Playwright's sync
    API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        value = pool.submit(manager.__enter__).result()
        try:
            yield value
        finally:
            pool.submit(manager.__exit__, None, None, None).result()


# ---- pages ----------------------------------------------------------------------------------


def test_every_page_loads_clean_from_this_server_only(hub: HubProcess,
                                                      tab: Callable[..., Tab]) -> None:
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_active_task(api)
        for i in range(5):
            execute(api, task["id"], f"I love it {i}")
        page = api.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
    t = tab()
    for name, path in [("overview", "/"), ("tasks", "/tasks"), ("task", f"/tasks/{task['id']}"),
                       ("errors", "/errors")]:
        t.goto(hub.http + path).wait_live()
        time.sleep(1.5)  # a few render passes and a metrics snapshot
        t.shot(name)
    t.goto(hub.http + "/schema/swagger")
    t.page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)  # vendored, no CDN
    t.shot("swagger")
    t.clean()


def test_the_overview_fills_from_history_and_lists_the_instance(hub: HubProcess,
                                                                tab: Callable[..., Tab]) -> None:
    t = tab().goto(hub.http + "/")
    t.wait_live()
    t.page.wait_for_selector("#instances tbody tr[data-instance]")
    # Metrics snapshots published before the page opened are in the charts at once.
    t.page.wait_for_function("() => document.getElementById('rate-events').textContent !== '—'")
    t.clean()


def test_a_phone_sized_screen_has_no_horizontal_page_scroll(hub: HubProcess,
                                                            tab: Callable[..., Tab]) -> None:
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_active_task(api)
        execute(api, task["id"], "a phone")
    t = tab(width=390, height=844)
    for path in ["/", f"/tasks/{task['id']}"]:
        t.goto(hub.http + path).wait_live()
        time.sleep(1)
        overflow = t.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
    t.shot("task-phone")
    t.clean()


# ---- live data --------------------------------------------------------------------------------


def test_an_execution_through_the_api_appears_in_the_tasks_stream(
        hub: HubProcess, tab: Callable[..., Tab]) -> None:
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_active_task(api)
        before = execute(api, task["id"], "from history")
        t = tab().goto(f"{hub.http}/tasks/{task['id']}")
        t.wait_live()
        wait_rows(t, {before["execution_id"]})  # filled from history
        run = execute(api, task["id"], "I love it, live")
        wait_rows(t, {run["execution_id"]})
    row = t.page.locator(f'tr[data-key="{run["execution_id"]}"]')
    text = row.inner_text()
    assert "I love it, live" in text and "success" in text and "v1" in text
    # Filters: an `error` filter hides it, search finds it.
    t.page.select_option('select[name="status"]', "error")
    t.page.wait_for_selector(f'tr[data-key="{run["execution_id"]}"]', state="detached")
    t.page.select_option('select[name="status"]', "")
    t.page.fill('input[type="search"]', "history")
    t.page.wait_for_selector(f'tr[data-key="{run["execution_id"]}"]', state="detached")
    assert before["execution_id"] in row_keys(t)
    t.clean()


def test_a_generation_and_a_validation_appear_in_their_views(hub: HubProcess,
                                                             tab: Callable[..., Tab]) -> None:
    tickets_in, tickets_out = datasets.schemas("tickets")
    cases = datasets.dataset("tickets", 60, seed=3)
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_task(api, input_schema=tickets_in, output_schema=tickets_out,
                         examples=[{"input": i, "output": o} for i, o in cases])
        t = tab().goto(f"{hub.http}/tasks/{task['id']}")
        t.wait_live()
        t.page.click('button[data-action="generate"]')
        t.page.click('dialog button[data-action="confirm"]')  # the confirmation
        t.page.wait_for_selector('#generation-status[data-type="generation.completed"]',
                                 timeout=60_000)
        t.page.wait_for_selector('#versions li.active[data-version="1"]')
        assert "generated" in t.page.inner_text('#versions li[data-version="1"]')
        t.page.wait_for_function(
            "() => document.getElementById('active-version').textContent === 'v1'")
        (good_in, good_out), (bad_in, bad_out) = cases[0], cases[1]
        runs = [api.post(f"/api/v1/tasks/{task['id']}/execute", json={"input": x}).json()
                for x in (good_in, bad_in)]
        right = api.post(f"/api/v1/executions/{runs[0]['execution_id']}/feedback",
                         json={"expected_output": runs[0]["output"]}).json()
        wrong_label = next(label for label in datasets.labels("tickets")
                           if label != runs[1]["output"])
        wrong = api.post(f"/api/v1/executions/{runs[1]['execution_id']}/feedback",
                         json={"expected_output": wrong_label}).json()
        wait_rows(t, {right["validation"]["id"], wrong["validation"]["id"]})
        mismatch = t.page.inner_text(f'tr[data-key="{wrong["validation"]["id"]}"]')
        assert "mismatch" in mismatch and wrong_label in mismatch
        t.page.wait_for_selector('#accuracy tr[data-version="1"]')
        t.page.wait_for_function(
            "() => document.getElementById('task-accuracy').textContent.includes('n=2')")
        assert good_out is not None and bad_out is not None
    t.shot("task-after-generation")
    t.clean()


def test_a_failed_execution_shows_in_the_errors_feed(hub: HubProcess,
                                                     tab: Callable[..., Tab]) -> None:
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_active_task(api, code=BOOM)
        t = tab().goto(hub.http + "/errors")
        t.wait_live()
        run = api.post(f"/api/v1/tasks/{task['id']}/execute", json={"input": {"text": "boom"}})
        execution_id = run.json()["execution_id"]
    shown = ("id => [...document.querySelectorAll('#app tbody tr')]"
             ".some(r => r.innerText.includes(id))")
    t.page.wait_for_function(shown, arg=execution_id)
    t.page.select_option('select[name="source"]', "server")
    t.page.wait_for_function(f"id => !({shown})(id)", arg=execution_id)
    t.clean()


# ---- continuity -------------------------------------------------------------------------------


def test_a_restart_shows_reconnecting_and_no_row_goes_missing(tab: Callable[..., Tab]) -> None:
    db = f"sqlite:///{tempfile.mkdtemp()}/loopai.db"
    server = HubProcess(env={"LOOPAI_DATABASE_URL": db}).start()
    try:
        with httpx.Client(base_url=server.http, timeout=30) as api:
            task = make_active_task(api)
            ids = {execute(api, task["id"], f"before {i}")["execution_id"] for i in range(3)}
            t = tab().goto(f"{server.http}/tasks/{task['id']}")
            t.wait_live()
            wait_rows(t, ids)
            server.terminate()
            t.page.wait_for_function("() => __dashboard.states.includes('reconnecting')")
            # The badge shows it (read in the page: between attempts; the first one, after
            # the drain's `reconnect`, comes within a few hundred ms, and the state with it).
            t.page.wait_for_selector('#conn[data-state="reconnecting"]', timeout=15_000)
            t.shot("reconnecting")
            server.start()
            # An in-memory hub restarted: its history is gone, so the page says so (a gap)
            # and refetches the executions; live from then on.
            t.page.wait_for_selector('#conn[data-state="live"], #conn[data-state="gap"]')
            ids |= {execute(api, task["id"], f"after {i}")["execution_id"] for i in range(3)}
            wait_rows(t, ids)
            assert len(row_keys(t)) == len(ids)  # none twice
    finally:
        server.stop()
    t.clean(outage=True)


@pytest.mark.redis
@pytest.mark.postgres
def test_losing_the_instance_behind_a_proxy_resumes_on_the_other_with_nothing_missing(
        tab: Callable[..., Tab]) -> None:
    redis = RedisServer().start()
    proxy = TcpProxy(backend=0).start()
    hubs: list[HubProcess] = []
    try:
        with in_thread(postgres_database()) as url:
            env = {"LOOPAI_REDIS_URL": redis.url, "LOOPAI_DATABASE_URL": url,
                   "LOOPAI_SANDBOX_WORKERS": "2",
                   "LOOPAI_ALLOWED_ORIGINS": json.dumps([proxy.http])}
            hubs = [HubProcess(env=env, instance_id=f"dash-{i}").start() for i in range(2)]
            a, b = hubs
            proxy.switch(a.port)
            with httpx.Client(base_url=proxy.http, timeout=30) as api, \
                    httpx.Client(base_url=b.http, timeout=30) as api_b:
                task = make_active_task(api)
                t = tab().goto(f"{proxy.http}/tasks/{task['id']}")
                t.wait_live()
                ids = {execute(api_b, task["id"], f"via b {i}")["execution_id"]
                       for i in range(3)}
                wait_rows(t, ids)
                first = set(ids)
                proxy.switch(b.port)
                a.kill()
                t.page.wait_for_function("() => __dashboard.states.includes('reconnecting')")
                during = {execute(api_b, task["id"], f"during {i}")["execution_id"]
                          for i in range(3)}
                ids |= during
                t.page.wait_for_selector('#conn[data-state="live"]', timeout=30_000)
                wait_rows(t, first | during)
                ids |= {execute(api, task["id"], f"after {i}")["execution_id"]
                        for i in range(3)}
                wait_rows(t, ids)
                assert len(row_keys(t)) == len(ids)
                states = t.states()
                assert "gap" not in states, states
                assert t.page.evaluate("() => __dashboard.gaps") == 0
            t.clean(outage=True)
            for server in hubs:
                if server.proc is not None and server.proc.poll() is None:
                    server.stop()
    finally:
        for server in hubs:
            server.kill()
        proxy.stop()
        redis.stop()


# ---- security ---------------------------------------------------------------------------------


def test_data_is_rendered_as_text(hub: HubProcess, tab: Callable[..., Tab]) -> None:
    with httpx.Client(base_url=hub.http, timeout=30) as api:
        task = make_active_task(api, name=XSS, description=f"desc {XSS}")
        run = execute(api, task["id"], "<script>alert(2)</script><b>bold</b>")
        t = tab().goto(hub.http + "/tasks")
        t.wait_live()
        link = t.page.locator(f'tr[data-task="{task["id"]}"] .task-name')
        assert link.text_content() == XSS
        t.goto(f"{hub.http}/tasks/{task['id']}").wait_live()
        assert t.page.text_content("#task-name") == XSS
        wait_rows(t, {run["execution_id"]})
        assert "<b>bold</b>" in t.page.inner_text(f'tr[data-key="{run["execution_id"]}"]')
        assert t.page.locator("main img, main script, main b").count() == 0
    t.shot("xss-as-text")
    t.clean()


def test_with_auth_on_the_page_asks_for_a_key_refuses_a_wrong_one_and_respects_scopes(
        tab: Callable[..., Tab]) -> None:
    admin, reader = "dash-admin-key-0123456789", "dash-reader-key-0123456789"
    keys = [{"key": admin, "scopes": ["admin"], "name": "ops"},
            {"key": reader, "scopes": ["read", "subscribe"], "name": "viewer"}]
    server = HubProcess(env={"LOOPAI_API_KEYS": json.dumps(keys),
                             "LOOPAI_TOKEN_SECRET": "dash-secret-0123456789abcdef"}).start()
    try:
        with httpx.Client(base_url=server.http, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"}) as api:
            task = make_active_task(api)
            run = execute(api, task["id"], "signed in")
        t = tab().goto(f"{server.http}/tasks/{task['id']}")
        t.page.wait_for_selector("#login:not([hidden])")
        t.page.fill("#login-key", "not-a-key")
        t.page.click('#login-form button[type="submit"]')
        t.page.wait_for_function(
            "() => document.getElementById('login-error').textContent.includes('refused')")
        assert "refused" in t.page.text_content("#login-error")
        t.shot("auth-wrong-key")
        t.page.fill("#login-key", reader)
        t.page.click('#login-form button[type="submit"]')
        t.wait_live()
        wait_rows(t, {run["execution_id"]})
        generate = t.page.locator('button[data-action="generate"]')
        assert generate.is_disabled()
        assert "write" in (generate.get_attribute("title") or "")
        assert "viewer" in t.page.text_content("#whoami")
        storage = t.page.evaluate(
            "() => [sessionStorage.getItem('loopai.apiKey'), localStorage.length, document.cookie]")
        assert storage == [reader, 0, ""]
        assert t.sockets and all("token=lt1." in u and reader not in u for u in t.sockets)
        # A reload keeps the key for this tab; the stored key works without asking again.
        t.page.reload()
        t.wait_live()
        assert t.page.is_hidden("#login")
    finally:
        server.stop()
    # The refused key's 401 is the only console error the browser logs (a failed fetch).
    t.errors = [e for e in t.errors if "401" not in e]
    t.clean()


# ---- rate -------------------------------------------------------------------------------------

MEASURE_JS = """async (seconds) => {
  const d = globalThis.__dashboard;
  const e0 = d.events, r0 = d.renders, ms0 = d.renderMs;
  const frames = [];
  let last = performance.now();
  const t0 = last;
  await new Promise((resolve) => {
    const tick = (now) => {
      frames.push(now - last);
      last = now;
      if (now - t0 < seconds * 1000) requestAnimationFrame(tick); else resolve();
    };
    requestAnimationFrame(tick);
  });
  const elapsed = (performance.now() - t0) / 1000;
  frames.sort((a, b) => a - b);
  return {
    seconds: elapsed,
    events_per_s: (d.events - e0) / elapsed,
    renders_per_s: (d.renders - r0) / elapsed,
    render_ms_avg: (d.renderMs - ms0) / Math.max(1, d.renders - r0),
    frames: frames.length,
    fps: frames.length / elapsed,
    long_frames: frames.filter((f) => f > 50).length,
    frame_p99_ms: frames[Math.floor(frames.length * 0.99)],
    rows: document.querySelectorAll('#app tbody tr[data-key]').length,
    gaps: d.gaps,
  };
}"""


@pytest.mark.timeout(180)
def test_the_task_and_overview_pages_keep_up_with_1000_events_per_second(
        tab: Callable[..., Tab]) -> None:
    rate = int(os.environ.get("LOOPAI_DASHBOARD_RATE", "1000"))
    port = free_port()
    task_file = Path(tempfile.mkdtemp()) / "task"
    env = {**os.environ, "LOOPAI_PORT": str(port), "LOOPAI_METRICS_INTERVAL_MS": "1000",
           "LOOPAI_DATABASE_URL": f"sqlite:///{task_file.parent}/loopai.db",
           "LOAD_RATE": str(rate), "LOAD_TASK_FILE": str(task_file)}
    proc = spawn([sys.executable, "-m", "tests.support.synthetic_load"], env=env,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, Any] = {"rate": rate}
    try:
        deadline = time.monotonic() + 30
        while not task_file.exists():
            assert proc.poll() is None, "the load server exited"
            assert time.monotonic() < deadline, "the load server did not start"
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        for name, path in [("task", f"/tasks/{task_file.read_text()}"), ("overview", "/")]:
            t = tab().goto(base + path)
            t.wait_live()
            time.sleep(3)  # history replayed, steady state
            measured = t.page.evaluate(MEASURE_JS, 10)
            results[name] = measured
            t.shot(f"rate-{name}")
            t.clean()
            t.page.close()
    finally:
        reap(proc)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "rate.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    task = results["task"]
    # The task page gets `rate` events/s; the overview that many executions plus metrics.
    assert task["events_per_s"] >= 0.9 * rate, results
    assert results["overview"]["events_per_s"] >= 0.9 * rate, results
    assert task["rows"] <= 200
    # Long frames (and renders per second) are in the printed results and docs/dashboard.md:
    # a figure, measured, not asserted (they vary with whatever else shares the machine).
