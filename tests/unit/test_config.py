"""Settings parse from the environment, reject nonsense, and match the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loopai.config import Settings
from loopai.errors import ConfigurationError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `(LOOPAI_[A-Z_]+)`", README.read_text(), re.M))
    assert documented == set(Settings.env_names())


def test_from_env_types_and_overrides() -> None:
    s = Settings.from_env(
        {"LOOPAI_PORT": "9001", "LOOPAI_PUBLISH_RATE": "5.5",
         "LOOPAI_API_KEYS": '[{"key":"0123456789abcdef","scopes":["publish"]}]'},
        host="0.0.0.0",
    )
    assert s.port == 9001 and s.publish_rate == 5.5 and s.host == "0.0.0.0"
    assert s.auth_enabled and s.api_keys[0].scopes == ["publish"]


@pytest.mark.parametrize(
    "env",
    [{"LOOPAI_PORT": "0"}, {"LOOPAI_PORT": "x"}, {"LOOPAI_HEARTBEAT_MS": "-1"},
     {"LOOPAI_REDIS_URL": "http://x"}, {"LOOPAI_API_KEYS": "not json"},
     {"LOOPAI_API_KEYS": '[{"key":"short","scopes":["admin"]}]'},
     {"LOOPAI_API_KEYS": '[{"key":"0123456789abcdef","scopes":["root"]}]'}],
)
def test_bad_settings_raise(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)
