"""Smoke run of every `python -m loadtests` scenario at tiny scale (tens of subscribers, a few
seconds each): it asserts correctness only — nothing lost, repeated or out of order, every
started process stopped — never speed. The load client needs uvloop and picows (in the
`test` extra, so CI has them); python-socketio and the Node baseline are checked when they
are installed (`python -m loadtests setup`) and skipped otherwise."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redis_server import require_redis_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]

if importlib.util.find_spec("uvloop") is None or importlib.util.find_spec("picows") is None:
    pytest.skip("the load tool's client needs uvloop and picows: pip install -e '.[test]' "
                "or python -m loadtests setup", allow_module_level=True)


def run_scenario(tmp_path: Path, *args: str, timeout: float = 90) -> dict:
    require_redis_server()
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) not found")
    proc = subprocess.run([sys.executable, "-m", "loadtests", *args, "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / "report.md").exists()
    data = json.loads((folder / "results.json").read_text())
    assert data["machine"]["cores"] and data["command"].startswith("python -m loadtests")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data


def assert_steps_correct(steps: list[dict]) -> None:
    assert steps
    for step in steps:
        assert step["deliveries"] == step["expected_deliveries"] > 0, step
        assert (step["lost"], step["duplicates"], step["reordered"]) == (0, 0, 0), step


def test_fanout_hub_baselines_and_ceiling(tmp_path: Path) -> None:
    systems = ["ceiling", "hub", "channels"]
    if importlib.util.find_spec("socketio") is not None:
        systems.append("pysio")
    if shutil.which("node") and (ROOT / "loadtests/baselines/node/node_modules").is_dir():
        systems.append("node")
    data = run_scenario(tmp_path, "fanout", "--systems", ",".join(systems), "--subscribers",
                        "20", "--rates", "20", "--step-duration", "1", "--keep-going")
    for name in systems:
        (run,) = data["systems"][name]["runs"]
        assert_steps_correct(run["steps"])


def test_connections(tmp_path: Path) -> None:
    data = run_scenario(tmp_path, "connections", "--systems", "hub", "--subscribers", "50",
                        "--rates", "5", "--step-duration", "1", "--settle", "0.5")
    hub = data["systems"]["hub"]
    assert hub["kib_per_connection"] > 0
    assert_steps_correct(hub["steps"])


def test_cluster(tmp_path: Path) -> None:
    data = run_scenario(tmp_path, "cluster", "--instances", "2", "--subscribers", "20",
                        "--rates", "50", "--step-duration", "1")
    assert_steps_correct(data["systems"]["2 instance(s)"]["steps"])


def test_chaos(tmp_path: Path) -> None:
    data = run_scenario(tmp_path, "chaos", "--instances", "3", "--subscribers", "12",
                        "--rate", "50", "--duration", "8")
    result = data["result"]
    assert result["received"] == result["expected_deliveries"] > 0, result
    assert (result["lost"], result["duplicates"], result["reordered"], result["gaps"]) == (
        0, 0, 0, 0), result
    assert result["reconnects"] > 0  # the faults did reach the subscribers
    assert result["correct"]


def test_api(tmp_path: Path) -> None:
    data = run_scenario(tmp_path, "api", "--duration", "1", "--concurrency", "4",
                        "--workers", "1", "--rounds", "2")
    for case in data["cases"].values():
        assert case["requests"] > 0 and case["errors"] == 0, case
    assert len(data["rounds"]) == 2
    for one in data["rounds"]:
        assert set(one["ratios"]) == {"health_vs_bare_get", "execute_vs_bare_echo"}, one
        for case in one["cases"].values():
            assert case["requests"] > 0 and case["errors"] == 0, case
