"""Start real `loopai serve` processes on free ports for tests and load tools."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# Every process started here, so none outlives the test run: a test that fails (or forgets)
# before its own cleanup still has its servers killed at exit, or when the run is SIGTERMed.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def spawn(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` in a process group of its own (`kill_group` takes all it forked),
    registered to be killed when the test run ends."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    with _live_lock:
        _live.add(proc)
    return proc


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """`sig` to the process and everything in its group. Only while the process is not
    reaped: until then its pid is its group's id and cannot be anyone else's."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (see `kill_group`)."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
    except ChildProcessError:
        return True


def reap(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Kills the process and what is left of its group, waits for it, forgets it; its exit
    code (negative: the signal)."""
    kill_group(proc)
    code = proc.wait(timeout)
    with _live_lock:
        _live.discard(proc)
    return code


def stop_gracefully(proc: subprocess.Popen[bytes], timeout: float,
                    sig: int = signal.SIGTERM) -> int:
    """`sig`, up to `timeout` s to exit, then `reap` (SIGKILL for it or its leftovers)."""
    if not exited(proc):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while not exited(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
    return reap(proc)


def kill_all() -> None:
    """Kills every process started here that is still running (at exit, on SIGTERM)."""
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for proc in procs:
        kill_group(proc)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    kill_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(kill_all)
if (threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _on_sigterm)

TEST_TOKEN_SECRET = "test-token-secret-0123456789abcdef"
TOKEN_PATTERN = re.compile(r"lt1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


class SecretLeaked(AssertionError):
    """A server wrote a configured key, its token secret or a connection token to its log."""


def secrets_of(env: Mapping[str, str]) -> list[str]:
    """The credentials a server started with `env` knows: every key and the token secret."""
    found: list[str] = []
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        found += [k["key"] for k in json.loads(env.get("LOOPAI_API_KEYS", "[]"))]
    if env.get("LOOPAI_TOKEN_SECRET"):
        found.append(env["LOOPAI_TOKEN_SECRET"])
    return [s for s in found if len(s) >= 8]


def leaks_in(log: str, secrets: list[str]) -> list[str]:
    """Which secrets (and connection tokens) appear in `log`, each shortened for the report."""
    out = [f"{s[:4]}… (a configured secret)" for s in secrets if s in log]
    out += [f"{t[:12]}… (a connection token)" for t in TOKEN_PATTERN.findall(log)]
    return out


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
    cpu: int | str | None = None
    """Pin the process to a core or a list of cores (taskset: 0, or "0,1"), for benchmarks."""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> HubProcess:
        env = {**os.environ, "LOOPAI_METRICS_INTERVAL_MS": "0", **self.env}
        env.setdefault("LOOPAI_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/loopai.db")
        # A known secret on every test server, so the log scan at stop looks for it too (and
        # instances of one cluster accept each other's tokens).
        env.setdefault("LOOPAI_TOKEN_SECRET", TEST_TOKEN_SECRET)
        self._secrets = secrets_of(env)
        cmd = [sys.executable, "-m", "loopai.cli", "serve", "--port", str(self.port),
               "--log-level", "warning"]
        if self.instance_id:
            cmd += ["--instance-id", self.instance_id]
        cmd += self.args
        if self.cpu is not None:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        fd, name = tempfile.mkstemp(prefix="loopai-", suffix=".log")
        self.log_path = Path(name)
        self.proc = spawn(cmd, env=env, stdout=fd, stderr=subprocess.STDOUT)
        os.close(fd)
        try:
            self.wait_ready(timeout)
        except BaseException:
            reap(self.proc)  # never left running by a start that failed
            raise
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
        """SIGTERM (graceful drain) and wait; SIGKILL after `timeout`. The exit code."""
        if self.proc is None:
            return None
        return stop_gracefully(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: the instance dies mid-stream."""
        if self.proc is not None:
            reap(self.proc)

    def stop(self) -> None:
        """Stops the server, then fails (SecretLeaked) if its log holds any credential: every
        test that starts a server this way is also a log-secrets test."""
        self.terminate(timeout=10)
        self.check_log_for_secrets()

    def check_log_for_secrets(self) -> None:
        if self.log_path is None or not self.log_path.exists():
            return
        known = getattr(self, "_secrets", None) or secrets_of(self.env)
        leaks = leaks_in(self.log_path.read_text(errors="replace"), known)
        if leaks:
            raise SecretLeaked(f"server log {self.log_path} holds credentials: {leaks}")


@contextlib.contextmanager
def running_hub(**kwargs: object) -> Iterator[HubProcess]:
    hub = HubProcess(**kwargs)  # type: ignore[arg-type]
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
