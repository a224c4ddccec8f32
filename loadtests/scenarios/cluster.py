"""cluster: not written yet."""

from __future__ import annotations

import argparse
from typing import Any

from loadtests.common import Services


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    return []


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return []
