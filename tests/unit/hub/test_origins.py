"""The Origin policy: normalisation, the default (this server's own origin), `*`, bad entries."""

from __future__ import annotations

import pytest

from loopai.config import Settings
from loopai.errors import ConfigurationError
from loopai.hub.origins import OriginPolicy, normalize_origin


def policy(settings: Settings) -> OriginPolicy:
    return OriginPolicy.from_settings(settings.allowed_origins, settings.public_url,
                                      settings.host, settings.port)


def test_normalize() -> None:
    assert normalize_origin("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert normalize_origin("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for bad in ("app.example.com", "ftp://x", "http://x/path", "http://x?q", "http://u@x"):
        with pytest.raises(ValueError):
            normalize_origin(bad)


def test_default_is_the_servers_own_origin() -> None:
    p = policy(Settings(port=8123))
    assert p.allows(None)
    assert p.allows("http://127.0.0.1:8123") and p.allows("http://localhost:8123")
    assert not p.allows("http://127.0.0.1:8124") and not p.allows("https://evil.example")
    assert not p.allows("null") and not p.allows("garbage")


def test_default_behind_a_public_url() -> None:
    p = policy(Settings(host="0.0.0.0", public_url="https://hub.example.com/base"))
    assert p.cors_origins() == ["https://hub.example.com"]
    assert p.allows("https://hub.example.com:443")


def test_listed_and_star_from_the_environment() -> None:
    s = Settings.from_env({"LOOPAI_ALLOWED_ORIGINS": '["https://App.example.com"]'})
    assert policy(s).allows("https://app.example.com")
    assert not policy(s).allows("http://127.0.0.1:8000")
    star = policy(Settings.from_env({"LOOPAI_ALLOWED_ORIGINS": '["*"]'}))
    assert star.allows("https://anything.example") and star.cors_origins() == ["*"]


def test_a_bad_entry_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="allowed_origins"):
        Settings(allowed_origins=["https://app.example.com/login"])
