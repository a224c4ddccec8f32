"""Start real `loopai serve` processes on free ports for tests and load tools."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class HubProcess:
    """One server process. `env` adds LOOPAI_* settings; stdout/stderr go to a log file."""

    port: int = field(default_factory=free_port)
    env: Mapping[str, str] = field(default_factory=dict)
    instance_id: str = ""
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    cpu: int | None = None
    """Pin the process to one core (taskset), for benchmarks."""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> HubProcess:
        env = {**os.environ, "LOOPAI_METRICS_INTERVAL_MS": "0", **self.env}
        env.setdefault("LOOPAI_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/loopai.db")
        cmd = [sys.executable, "-m", "loopai.cli", "serve", "--port", str(self.port),
               "--log-level", "warning"]
        if self.instance_id:
            cmd += ["--instance-id", self.instance_id]
        cmd += self.args
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        fd, name = tempfile.mkstemp(prefix="loopai-", suffix=".log")
        self.log_path = Path(name)
        self.proc = subprocess.Popen(cmd, env=env, stdout=fd, stderr=subprocess.STDOUT)
        os.close(fd)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0, path: str = "/api/v1/health/live") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                self.http + path, timeout=1
            ) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"server on {self.port} not ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful drain) and wait."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the instance dies mid-stream."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self.terminate(timeout=10)


@contextlib.contextmanager
def running_hub(**kwargs: object) -> Iterator[HubProcess]:
    hub = HubProcess(**kwargs)  # type: ignore[arg-type]
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
