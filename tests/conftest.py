"""Shared fixtures: a real hub server process per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hub_process import HubProcess


@pytest.fixture(scope="module")
def hub_server() -> Iterator[HubProcess]:
    """A `loopai serve` process with embedded defaults (in-memory backplane, SQLite)."""
    server = HubProcess().start()
    yield server
    server.stop()
