"""Writes a run's results: `results.json`, `report.md` (machine, versions, CPU layout, the
exact command, the figures) and PNG plots, under `loadtests/results/<date>-<scenario>/`."""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from loadtests.common import ROOT, load_average

RESULTS = ROOT / "loadtests" / "results"


def out_dir(scenario: str, base: Path | None) -> Path:
    base = base or RESULTS
    stamp = dt.date.today().isoformat()
    path = base / f"{stamp}-{scenario}"
    n = 2
    while path.exists():
        path = base / f"{stamp}-{scenario}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def command_line() -> str:
    return "python -m loadtests " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(t for _, t in columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


STEP_COLUMNS = [("subscribers", "subs"), ("rate", "events/s"),
                ("offered_deliveries_per_s", "offered deliv/s"),
                ("deliveries_per_s", "deliv/s"), ("lost", "lost"), ("duplicates", "dup"),
                ("reordered", "reord"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
                ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("drain_s", "drain s"),
                ("server_cpu_pct", "server CPU %"), ("client_cpu_pct", "client CPU %"),
                ("saturated", "saturated")]


def header(scenario: str, data: dict[str, Any]) -> list[str]:
    m = data["machine"]
    lines = [f"# loadtests {scenario} — {data['started']}", "",
             f"Command: `{data['command']}`", "",
             f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
             f"kernel {m['kernel']}; load average at start {data.get('load_average', '?')}",
             "",
             f"Versions: Python {m['python']}, "
             + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
             + f"; node {m['node']} ("
             + ", ".join(f"{k} {v}" for k, v in m["node_packages"].items())
             + f"); {m['redis_server']}; commit {m['git_commit']}", "",
             "CPU layout (taskset):", ""]
    lines += [f"- core {e['core']}: {e['process']} (pid {e['pid']})" for e in data["layout"]]
    lines += ["- core 1: this load client (and the publisher processes)", ""]
    return lines


def write(scenario: str, data: dict[str, Any], base: Path | None, body: list[str],
          plots: list[tuple[str, Any]]) -> Path:
    path = out_dir(scenario, base)
    (path / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = header(scenario, data) + body
    for name, draw in plots:
        try:
            draw(path / name)
            lines += ["", f"![{name}]({name})"]
        except ImportError:
            lines += ["", f"({name}: matplotlib not installed)"]
    (path / "report.md").write_text("\n".join(lines) + "\n")
    return path


def latency_plot(systems: dict[str, list[dict[str, Any]]], title: str):
    def draw(file: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, steps in systems.items():
            if not steps:
                continue
            xs = [s["rate"] for s in steps]
            line, = ax.plot(xs, [s["p99_ms"] for s in steps], marker="o", label=f"{name} p99")
            ax.plot(xs, [s["p50_ms"] for s in steps], marker=".", linestyle="--",
                    color=line.get_color(), label=f"{name} p50")
            sat = [s for s in steps if s["saturated"]]
            ax.scatter([s["rate"] for s in sat], [s["p99_ms"] for s in sat], marker="x",
                       s=80, color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate, events/s (x = saturated)")
        ax.set_ylabel("publish-to-receive latency, ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(file, dpi=110)
        plt.close(fig)
    return draw


def deliveries_plot(points: dict[str, list[tuple[int, float]]], title: str):
    def draw(file: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 5))
        for name, pts in points.items():
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("subscribers")
        ax.set_ylabel("deliveries/s at the highest unsaturated rate")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(file, dpi=110)
        plt.close(fig)
    return draw


def base_data(scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    from loadtests.common import machine
    return {"scenario": scenario, "command": command_line(),
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "load_average": load_average(), "machine": machine(), "params": params,
            "layout": []}
