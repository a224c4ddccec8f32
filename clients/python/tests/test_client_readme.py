"""The README's ten-line example works as written, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.hub_process import HubProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_as_written() -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    example = code.group(1)
    assert len([line for line in example.splitlines() if line.strip()]) <= 14
    server = HubProcess().start()
    try:
        example = example.replace("http://127.0.0.1:8000", server.http).replace(
            "ws://127.0.0.1:8000/ws", server.ws)
        result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                                timeout=60)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "execution.completed hi ada"
