"""The CLI refuses bad configuration with a clear message and exit code 2."""

from __future__ import annotations

import pytest

from loopai.cli import main


def test_bad_port_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_bad_env_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOOPAI_API_KEYS", "not json")
    assert main(["serve"]) == 2
    assert "LOOPAI_API_KEYS" in capsys.readouterr().err
