"""The log scan every test server gets at stop: keys, the token secret and tokens are found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hub_process import HubProcess, SecretLeaked, leaks_in, secrets_of

KEY = "scan-key-0123456789"
ENV = {"LOOPAI_API_KEYS": json.dumps([{"key": KEY, "scopes": ["admin"]}]),
       "LOOPAI_TOKEN_SECRET": "scan-secret-0123456789"}


def test_keys_secrets_and_tokens_are_found() -> None:
    secrets = secrets_of(ENV)
    assert secrets == [KEY, "scan-secret-0123456789"]
    assert leaks_in('{"message":"GET /ws?token=[redacted]"}', secrets) == []
    assert len(leaks_in(f'{{"message":"Bearer {KEY}"}}', secrets)) == 1
    token = "lt1.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXBhcnQ"
    assert leaks_in(f"GET /ws?token={token}", []) == ["lt1.eyJzdWIi… (a connection token)"]


def test_a_leaky_log_fails_the_stop(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(f"authorization: Bearer {KEY}\n")
    hub = HubProcess(env=ENV, log_path=log)
    with pytest.raises(SecretLeaked, match="holds credentials") as info:
        hub.stop()
    assert KEY not in str(info.value)  # the report itself does not repeat the secret
