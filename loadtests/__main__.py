"""`python -m loadtests <scenario>`: setup, fanout, connections, cluster, chaos, api.

Each scenario starts what it needs (Redis on a free port, servers pinned to core 0 with
taskset, this client and the publisher on core 1), stops all of it afterwards (also on
Ctrl-C and errors), and writes `loadtests/results/<date>-<scenario>/` (report.md,
results.json, PNG plots)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtests.common import CLIENT_CPU, NODE_DIR, ROOT

SCENARIOS = ["fanout", "connections", "cluster", "chaos", "api"]


def setup() -> int:
    """Installs what the load tool needs, beside the project: the `loadtests` extra into
    this Python's environment, and the Node baseline's packages from its lock file."""
    code = subprocess.call([sys.executable, "-m", "pip", "install", "-q", "-e",
                            f"{ROOT}[loadtests]"])
    if code:
        return code
    return subprocess.call(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    sub.add_parser("setup", help="pip install '.[loadtests]' and npm install the Node baseline")
    modules = {}
    for name in SCENARIOS:
        module = importlib.import_module(f"loadtests.scenarios.{name}")
        modules[name] = module
        p = sub.add_parser(name, help=module.__doc__.split("\n")[0],
                           description=module.__doc__)
        module.add_arguments(p)
        p.add_argument("--out", type=Path, default=None,
                       help="results folder (default loadtests/results)")
    args = parser.parse_args(argv)
    if args.scenario == "setup":
        return setup()
    try:
        import uvloop
    except ImportError:
        print("uvloop/picows missing: run `python -m loadtests setup`", file=sys.stderr)
        return 2
    from loadtests import report
    from loadtests.common import Services, install_signal_handlers, raise_fd_limit
    install_signal_handlers()
    raise_fd_limit()
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    logging.getLogger("picows").setLevel(logging.CRITICAL)
    module = modules[args.scenario]
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    data = report.base_data(args.scenario, params)
    began = time.monotonic()
    with Services() as svc:
        os.sched_setaffinity(0, {CLIENT_CPU})
        body = uvloop.run(module.run(args, svc, data))
        data["layout"] = svc.layout
    data["elapsed_s"] = round(time.monotonic() - began, 1)
    path = report.write(args.scenario, data, args.out, body, module.plots(data))
    print(f"report: {path / 'report.md'}")
    return 0 if data.get("correct", True) else 1


if __name__ == "__main__":
    sys.exit(main())
