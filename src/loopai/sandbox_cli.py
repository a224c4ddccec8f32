"""`loopai sandbox check` and `loopai sandbox run`: the sandbox, used from a shell.

Both start a real pool with the settings from `LOOPAI_*` (uid, memory, required walls), so
what they show is what the server's workers get on this host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import msgspec

from loopai.config import Settings
from loopai.core.sandbox import audit
from loopai.core.sandbox.pool import SandboxPool, SandboxUnavailable
from loopai.errors import ConfigurationError


def _pool(settings: Settings) -> SandboxPool:
    return SandboxPool(workers=2, memory_mb=settings.sandbox_memory_mb,
                       cpu_seconds=settings.sandbox_cpu_s, task_concurrency=2,
                       uid=settings.sandbox_uid, gid=settings.sandbox_uid,
                       require=settings.sandbox_walls_required)


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:///"):
        return None
    return os.path.abspath(url.removeprefix("sqlite:///"))


async def _check(settings: Settings) -> dict[str, Any]:
    pool = _pool(settings)
    await pool.start()
    try:
        findings = await audit.check(pool, settings.port, _sqlite_path(settings.database_url))
    finally:
        await pool.close()
    return {"walls": pool.walls, "missing": pool.missing_walls,
            "all_blocked": all(f.blocked for f in findings),
            "findings": msgspec.to_builtins(findings)}


async def _run(settings: Settings, code: str, value: Any, policy: bool,
               timeout_ms: int) -> dict[str, Any]:
    pool = _pool(settings)
    await pool.start()
    try:
        result = await pool.run("cli", code, value, timeout_ms, policy=policy)
    finally:
        await pool.close()
    out: dict[str, Any] = msgspec.to_builtins(result)
    out["walls"] = pool.walls
    out["policy"] = policy
    return out


def _print_check(report: dict[str, Any]) -> None:
    print(f"walls up: {', '.join(report['walls']) or 'none'}")
    print(f"missing:  {', '.join(report['missing']) or 'none'}")
    width = max(len(f["action"]) for f in report["findings"])
    print(f"{'action'.ljust(width)}  result   detail")
    for f in report["findings"]:
        verdict = "blocked" if f["blocked"] else "ALLOWED"
        print(f"{f['action'].ljust(width)}  {verdict:<7}  {f['detail']}")
    print("every action was blocked" if report["all_blocked"]
          else "SOME ACTIONS WERE NOT BLOCKED")


def sandbox_command(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"loopai: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.sandbox_command == "check":
            report = asyncio.run(_check(settings))
            if args.json:
                sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
            else:
                _print_check(report)
            return 0 if report["all_blocked"] else 1
        try:
            with open(args.file, encoding="utf-8") as fh:
                code = fh.read()
            value = msgspec.json.decode(args.input)
        except (OSError, msgspec.DecodeError) as exc:
            print(f"loopai: {exc}", file=sys.stderr)
            return 2
        out = asyncio.run(_run(settings, code, value, not args.no_policy, args.timeout_ms))
    except SandboxUnavailable as exc:
        print(f"loopai: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
    elif out["status"] == "success":
        sys.stdout.write(msgspec.json.encode(out["output"]).decode() + "\n")
    else:
        print(f"{out['status']}: {out['error_message']}", file=sys.stderr)
    return 0 if out["status"] == "success" else 1
