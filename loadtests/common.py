"""What every scenario shares: processes started and always stopped, CPU pinning, /proc
readings, machine and version facts, percentiles, the fixed event payload."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.hub_process import (  # noqa: E402
    HubProcess,
    free_port,
    reap,
    spawn,
    stop_gracefully,
)
from tests.support.redis_server import RedisServer  # noqa: E402

__all__ = ["ROOT", "HubProcess", "RedisServer", "free_port"]

NODE_DIR = ROOT / "loadtests" / "baselines" / "node"
SERVER_CPU = 0
CLIENT_CPU = 1 % (os.cpu_count() or 1)
"""Servers under test on core 0; clients, Redis and the publisher on core 1."""


def payload_pad(size: int, seq: int = 10**7, t: int = 10**16) -> str:
    """Padding so `{"i":…,"t":…,"p":"…"}` is `size` bytes for typical seq/time widths."""
    base = len(json.dumps({"i": seq, "t": t, "p": ""}, separators=(",", ":")))
    return "x" * max(0, size - base)


def event_data(seq: int, t_us: int, pad: str) -> bytes:
    """The event body every system carries: sequence number, send time (µs), padding.
    `i` comes first and `t` second so clients find both with one regex."""
    return b'{"i":%d,"t":%d,"p":"%s"}' % (seq, t_us, pad.encode())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (threads included), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int | str = "self") -> dict[int, float]:
    """CPU seconds of each thread of a process, to the nanosecond (schedstat), where
    `cpu_seconds` counts clock ticks."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                out[int(tid)] = int(fh.read().split()[0]) / 1e9
        except OSError:
            continue
    return out


def children_cpu(pid: int | str = "self") -> float:
    """CPU seconds of every live descendant of a process (sandbox workers, say)."""
    total = 0.0
    todo = [str(pid)]
    while todo:
        parent = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{tid}/children") as fh:
                    kids = fh.read().split()
                todo += kids
                total += sum(sum(thread_cpu(kid).values()) for kid in kids)
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    """Resident set size (KiB) from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pin(pid: int, cpu: int) -> None:
    """Pins a running process and all its threads to one core."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 20.0, path: str | None = None) -> None:
    """Until the port accepts (and `path`, if given, answers HTTP 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            if path is None:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            else:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                    if r.status == 200:
                        return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


class Service:
    """A started process: name, pid, core, how to stop it."""

    def __init__(self, name: str, pid: int, cpu: int | None, stop: Callable[[], Any],
                 url: str = "", port: int = 0, obj: Any = None) -> None:
        self.name, self.pid, self.cpu, self._stop = name, pid, cpu, stop
        self.url, self.port, self.obj = url, port, obj
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            with contextlib.suppress(Exception):
                self._stop()


class Services:
    """Every process a scenario starts, stopped in reverse order by `close` (always: the
    scenario runs inside `with Services() as svc`, and Ctrl-C or SIGTERM unwind through it).
    Also remembers which process ran on which core, for the report."""

    def __init__(self) -> None:
        self.started: list[Service] = []
        self.layout: list[dict[str, Any]] = []

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()

    def _add(self, service: Service) -> Service:
        self.started.append(service)
        entry = {"process": service.name, "pid": service.pid, "core": service.cpu}
        if entry not in self.layout:
            self.layout.append(entry)
        return service

    def redis(self, *, persist: bool = False) -> Service:
        server = RedisServer(persist=persist).start()
        assert server.proc is not None
        pin(server.proc.pid, CLIENT_CPU)
        return self._add(Service("redis-server", server.proc.pid, CLIENT_CPU, server.stop,
                                 url=server.url, port=server.port, obj=server))

    def hub(self, env: dict[str, str], name: str = "loopai hub", instance_id: str = "",
            cpu: int = SERVER_CPU) -> Service:
        hub = HubProcess(env=env, cpu=cpu, instance_id=instance_id).start()
        assert hub.proc is not None
        return self._add(Service(name, hub.proc.pid, cpu, lambda: hub.terminate(10),
                                 url=hub.ws, port=hub.port, obj=hub))

    def process(self, name: str, cmd: list[str], *, cpu: int | None = SERVER_CPU,
                ready_path: str | None = None, env: dict[str, str] | None = None,
                cwd: Path | None = None, url: str = "", port: int = 0) -> Service:
        full = ["taskset", "-c", str(cpu), *cmd] if cpu is not None else cmd
        log = open(os.devnull, "wb")  # noqa: SIM115
        proc = spawn(full, env={**os.environ, **(env or {})}, cwd=cwd, stdout=log,
                     stderr=subprocess.STDOUT)
        log.close()
        try:
            if port:
                wait_port(port, proc, path=ready_path)
        except BaseException:
            reap(proc)
            raise
        return self._add(Service(name, proc.pid, cpu, lambda: stop_gracefully(proc, 5),
                                 url=url, port=port, obj=proc))


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` and `Services.close` runs."""
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _raise)
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGHUP, _raise)


def raise_fd_limit(want: int = 65536) -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def node_available() -> str | None:
    """Why the Node baseline cannot run, or None when it can."""
    if shutil.which("node") is None:
        return "node not found"
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return "loadtests/baselines/node/node_modules missing: run `python -m loadtests setup`"
    return None


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    return out.strip().splitlines()[0] if out.strip() else "absent"


def machine() -> dict[str, Any]:
    """The facts a figure needs to be read: CPU model and cores, memory, versions."""
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    packages = {}
    for name in ("loopai", "litestar", "uvicorn", "websockets", "msgspec", "redis", "hiredis",
                 "uvloop", "picows", "python-socketio", "python-engineio", "matplotlib"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "absent"
    node_packages = {}
    lock = NODE_DIR / "package-lock.json"
    if lock.exists():
        deps = json.loads(lock.read_text()).get("packages", {})
        for name in ("socket.io", "@socket.io/redis-adapter", "redis"):
            node_packages[name] = deps.get(f"node_modules/{name}", {}).get("version", "absent")
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "node": _version(["node", "--version"]),
        "node_packages": node_packages,
        "redis_server": _version(["redis-server", "--version"]),
        "git_commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def load_average() -> str:
    with contextlib.suppress(OSError), open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])
    return "?"


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    out = [0.0]
    start = time.perf_counter()
    try:
        yield out
    finally:
        out[0] = time.perf_counter() - start


CURSOR_RE = re.compile(rb'"cursor":"([^"]+)"')
