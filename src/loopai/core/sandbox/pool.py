"""A pool of sandbox worker processes, driven from asyncio.

Each worker runs one call at a time; callers queue for an idle one. A call that outlives
its timeout (the worker's own timer failed: the program swallowed it, or is stuck in C)
gets its worker killed; a worker that dies for any reason is replaced in the background.
Either way the caller gets a RunResult, and nobody else's call is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

import msgspec

from loopai.core.sandbox.protocol import (
    HEADER,
    MAX_FRAME,
    Request,
    frame,
    ready_decoder,
    response_decoder,
)

log = logging.getLogger("loopai.sandbox")

# Time a worker gets beyond the call's timeout to answer on its own before it is killed.
KILL_GRACE_S = 0.5
START_TIMEOUT_S = 20.0


class RunResult(msgspec.Struct):
    status: str
    output: Any = None
    error_message: str | None = None
    latency_ms: float = 0.0
    memory_usage_mb: float | None = None
    cache_hit: bool = False


class SandboxClosed(Exception):
    pass


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    async def read_frame(self) -> bytes:
        (size,) = HEADER.unpack(await self.stdout.readexactly(HEADER.size))
        if size > MAX_FRAME:
            raise ValueError(f"worker frame of {size} bytes")
        return await self.stdout.readexactly(size)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def death(self) -> str:
        code = self.proc.returncode
        if code is None:
            return "worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = " (CPU time limit)" if name == "SIGXCPU" else ""
            return f"worker died (signal {name}){hint}"
        return f"worker died (exit code {code})"


class SandboxPool:
    def __init__(self, workers: int = 2, memory_mb: int = 256, cpu_seconds: int = 10,
                 max_output_bytes: int = 1_000_000, max_cached_programs: int = 256) -> None:
        self.size = workers
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.max_output_bytes = max_output_bytes
        self.max_cached_programs = max_cached_programs
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._closed = False
        self._stats = {"restarts": 0, "cache_hits": 0, "cache_misses": 0, "timeouts": 0,
                       "busy": 0}

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-m", "loopai.core.sandbox.worker", str(self.memory_mb),
            str(self.cpu_seconds), str(self.max_output_bytes), str(self.max_cached_programs),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            limit=2**26,
        )
        worker = _Worker(proc)
        try:
            ready_decoder.decode(await asyncio.wait_for(worker.read_frame(), START_TIMEOUT_S))
        except BaseException:
            worker.kill()
            await proc.wait()
            raise
        self._all.add(worker)
        return worker

    async def start(self) -> None:
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill `worker` and start another in the background."""
        worker.kill()
        self._all.discard(worker)
        self._stats["restarts"] += 1
        if self._closed:
            return

        async def respawn() -> None:
            await worker.proc.wait()
            delay = 0.1
            while not self._closed:
                try:
                    fresh = await self._spawn()
                except Exception:
                    log.exception("could not start a sandbox worker; retrying")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if self._closed:
                    fresh.kill()
                    return
                self._idle.put_nowait(fresh)
                return

        task = asyncio.get_running_loop().create_task(respawn())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def run(self, key: str, code: str, input: Any, timeout_ms: int) -> RunResult:
        if self._closed:
            raise SandboxClosed("the sandbox pool is closed")
        try:
            input_json = msgspec.json.encode(input)
        except (TypeError, ValueError) as exc:
            return RunResult("error", error_message=f"input is not JSON: {exc}")
        request = frame(Request(key=key, code=code, input_json=input_json,
                                timeout_ms=timeout_ms))
        worker = await self._idle.get()
        self._stats["busy"] += 1
        keep = False
        try:
            worker.stdin.write(request)
            await worker.stdin.drain()
            raw = await asyncio.wait_for(worker.read_frame(), timeout_ms / 1000 + KILL_GRACE_S)
            response = response_decoder.decode(raw)
            keep = True
        except TimeoutError:
            self._stats["timeouts"] += 1
            return RunResult("timeout", error_message=f"timed out after {timeout_ms} ms"
                             " (worker replaced)", latency_ms=float(timeout_ms))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError,
                msgspec.DecodeError):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.proc.wait(), 1.0)
            return RunResult("error", error_message=worker.death())
        finally:
            self._stats["busy"] -= 1
            if keep:
                self._idle.put_nowait(worker)
            else:
                self._replace(worker)
        self._stats["cache_hits" if response.cache_hit else "cache_misses"] += 1
        if response.status == "timeout":
            self._stats["timeouts"] += 1
        output = (msgspec.json.decode(response.output_json)
                  if response.output_json is not None else None)
        return RunResult(response.status, output=output, error_message=response.error,
                         latency_ms=response.latency_ms, memory_usage_mb=response.memory_mb,
                         cache_hit=response.cache_hit)

    def stats(self) -> dict[str, int]:
        return {"workers": len(self._all), "idle": self._idle.qsize(), **self._stats}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._spawning):
            task.cancel()
        for worker in list(self._all):
            with contextlib.suppress(Exception):
                worker.stdin.close()
            worker.kill()
        for worker in list(self._all):
            with contextlib.suppress(Exception):
                await worker.proc.wait()
        self._all.clear()
