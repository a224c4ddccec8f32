"""Throwaway `redis-server` processes on free ports (never the machine's shared 6379)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from tests.support.hub_process import exited, free_port, reap, spawn, stop_gracefully


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server not found: install it with `apt-get install redis-server` "
                    "(make test does this when run as root)")
    return path


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    persist: bool = False
    """Append-only file, fsynced on every write, in `dir`: a restart keeps the data."""
    debug: bool = False
    """Allow DEBUG (Redis 7 refuses it by default), for fault injection."""
    dir: str = field(default_factory=tempfile.mkdtemp)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Starts redis-server and waits for PONG. Restarting (start after stop) is fine;
        starting a running one is a bug in the test."""
        if self.proc is not None and not exited(self.proc):
            raise RuntimeError(f"redis-server on {self.port} is already running")
        binary = require_redis_server()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.debug:
            args += ["--enable-debug-command", "yes"]
        self.proc = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if exited(self.proc):
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        died = exited(self.proc)
        code = reap(self.proc)  # never left running by a start that failed
        raise TimeoutError(f"redis-server on {self.port} did not start"
                           + (f" (exited {code})" if died else ""))

    def stop(self) -> None:
        if self.proc is not None:
            stop_gracefully(self.proc, timeout=5)

    def restart(self, *, keep_data: bool) -> RedisServer:
        """Stop and start again on the same port; `keep_data` needs `persist`. Without it,
        the data directory is replaced, so nothing survives."""
        assert not keep_data or self.persist, "keep_data needs persist=True"
        self.stop()
        if not keep_data:
            self.dir = tempfile.mkdtemp()
        return self.start()
