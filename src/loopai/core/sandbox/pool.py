"""The sandbox as the server sees it: warm workers, one program each, driven from asyncio.

A worker serves one program (one artifact version) for its whole life, so no program can
see or change another's inputs, outputs or code. Workers are forked by the zygote and kept
warm after a call; the coldest idle ones are stopped when too many live or the idle ones use
too much memory. Calls are admitted fairly: each tenant (a task) may run at most
`task_concurrency` calls at once and everyone shares `max_running` slots, so one task's
runaway programs cannot starve the others. Time spent queued counts against the call's
timeout. A call that outlives its timeout (the program swallowed the timer, or is stuck in
C) gets its worker killed; a worker that dies for any reason answers its call with why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections import OrderedDict, deque
from typing import Any

import msgspec

from loopai.config import WALLS
from loopai.core.sandbox.idle import IdleWorkers
from loopai.core.sandbox.protocol import (
    HEADER,
    MAX_FRAME,
    Exited,
    Kill,
    Load,
    Request,
    Response,
    Spawn,
    encoder,
    exited_decoder,
    frame,
    ready_decoder,
    response_decoder,
)
from loopai.core.sandbox.walls import WallConfig

log = logging.getLogger("loopai.sandbox")

KILL_GRACE_S = 0.5
"""Time a worker gets beyond the call's timeout to answer on its own before it is killed."""
START_TIMEOUT_S = 20.0
MAX_BATCH = 64
"""Calls one round trip to a worker carries at most (they run one after another there)."""
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""And their inputs' size at most (a larger single input still goes, alone)."""
EXIT_REPORT_WAIT_S = 1.0


class RunResult(msgspec.Struct):
    status: str
    output: Any = None
    error_message: str | None = None
    latency_ms: float = 0.0
    memory_usage_mb: float | None = None
    cache_hit: bool = False
    output_bytes: int = 0
    """Size of the output as JSON, as the worker sent it (no need to encode it again)."""


class SandboxClosed(Exception):
    pass


class SandboxUnavailable(Exception):
    """A wall that `require` names could not be put up on this host."""


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "worker stopped answering"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        hint = " (CPU time limit)" if name == "SIGXCPU" else ""
        return f"worker died (signal {name}){hint}"
    return f"worker died (exit code {status})"


class _Worker:
    def __init__(self, key: str, pid: int, walls: list[str], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.pid = pid
        self.walls = walls
        self.reader = reader
        self.writer = writer
        self.memory_mb = 0.0

    async def read_frame(self) -> bytes:
        (size,) = HEADER.unpack(await self.reader.readexactly(HEADER.size))
        if size > MAX_FRAME:
            raise ValueError(f"worker frame of {size} bytes")
        return await self.reader.readexactly(size)

    def send(self, message: msgspec.Struct) -> None:
        self.writer.write(frame(message))

    def send_batch(self, requests: list[Request]) -> None:
        self.writer.write(frame(requests))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Zygote:
    """The server's handle on the zygote process: spawn, kill, and exit reports."""

    KEEP_EXITS = 1024

    def __init__(self, proc: asyncio.subprocess.Process, commands: socket.socket,
                 reports: asyncio.StreamReader, reports_writer: asyncio.StreamWriter) -> None:
        self.proc = proc
        self.commands = commands
        self.reports = reports
        self._reports_writer = reports_writer  # dropping it would close the socket
        self._exits: OrderedDict[int, int] = OrderedDict()
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self.reader_task = asyncio.get_running_loop().create_task(self._read_reports())

    async def _read_reports(self) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await self.reports.readexactly(HEADER.size))
                report: Exited = exited_decoder.decode(await self.reports.readexactly(size))
                waiter = self._waiting.pop(report.pid, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(report.status)
                    continue
                self._exits[report.pid] = report.status
                while len(self._exits) > self.KEEP_EXITS:
                    self._exits.popitem(last=False)
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError):
            return

    async def exit_status(self, pid: int, wait_s: float) -> int | None:
        """How child `pid` ended, waiting up to `wait_s` for the zygote's report."""
        if pid in self._exits:
            return self._exits.pop(pid)
        waiter = self._waiting.setdefault(pid, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(waiter, wait_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(pid, None)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader_task.done()

    def spawn(self, child: socket.socket, spawn: Spawn) -> None:
        socket.send_fds(self.commands, [encoder.encode(spawn)], [child.fileno()])

    def kill(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            self.commands.send(encoder.encode(Kill(pid=pid)))

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self.commands.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self.reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader_task
        self._reports_writer.close()


class _Call:
    """One `run` call: its input, when it was queued and must be answered by, its answer."""

    __slots__ = ("abandoned", "deadline", "future", "input_json", "queued_at", "taken",
                 "timeout_ms")

    def __init__(self, input_json: bytes, queued_at: float, deadline: float, timeout_ms: int,
                 future: asyncio.Future[RunResult]) -> None:
        self.input_json = input_json
        self.queued_at = queued_at
        self.deadline = deadline
        self.timeout_ms = timeout_ms
        self.future = future
        self.taken = False
        self.abandoned = False

    def settle(self, result: RunResult) -> None:
        if not self.future.done():
            self.future.set_result(result)


class _Lane:
    """The calls of one program waiting for a round trip, and how many senders serve them.

    Coalescing: a worker round trip costs two process switches and a few system calls on
    each side whatever it carries; under load, the calls that queued while the workers
    were busy go together."""

    def __init__(self, key: str, code: str, policy: bool, tenant: str) -> None:
        self.key = key
        self.code = code
        self.policy = policy
        self.tenant = tenant
        self.waiting: deque[_Call] = deque()
        self.senders = 0
        self.expiry: asyncio.TimerHandle | None = None
        """One timer for the lane's waiting calls, at the earliest deadline among them
        (a timer per call cost more than the round trip's own bookkeeping)."""

    def _drop_settled(self) -> None:
        while self.waiting and (self.waiting[0].future.done() or self.waiting[0].abandoned):
            self.waiting.popleft()

    def pending(self) -> bool:
        self._drop_settled()
        return bool(self.waiting)

    def take(self, limit: int, max_bytes: float) -> list[_Call]:
        """Up to `limit` waiting calls (and `max_bytes` of input, but at least one)."""
        batch: list[_Call] = []
        size = 0
        while self.waiting and len(batch) < limit:
            call = self.waiting[0]
            if call.future.done() or call.abandoned:
                self.waiting.popleft()
                continue
            size += len(call.input_json)
            if batch and size > max_bytes:
                break
            self.waiting.popleft()
            call.taken = True
            batch.append(call)
        return batch

    def retry(self, calls: list[_Call]) -> None:
        """Calls a round trip did not get to (its worker died or hung) go first again."""
        for call in reversed(calls):
            call.taken = False
            if not call.future.done():
                self.waiting.appendleft(call)


class _Watch:
    """A round trip's kill timer: the call being waited for gets until its deadline (or
    the previous answer, if that came later) plus `KILL_GRACE_S`, then `limit` expires.

    One timer serves the whole batch and moves only when it fires early; rescheduling an
    `asyncio.timeout` for every answer cost a timer handle each."""

    __slots__ = ("batch", "done", "limit", "loop", "since", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: asyncio.Timeout,
                 batch: list[_Call]) -> None:
        self.loop, self.limit, self.batch = loop, limit, batch
        self.done = 0
        self.since = loop.time()
        self.timer = loop.call_at(self._due(), self._check)

    def _due(self) -> float:
        return max(self.batch[self.done].deadline, self.since) + KILL_GRACE_S

    def answered(self, done: int) -> None:
        """`done` calls have answered; the next one's wait starts now."""
        self.done = done
        self.since = self.loop.time()
        if self.done < len(self.batch) and self._due() < self.timer.when():
            self.timer.cancel()  # a call with an earlier deadline than the one before it
            self.timer = self.loop.call_at(self._due(), self._check)

    def _check(self) -> None:
        if self.done >= len(self.batch):
            return
        now, due = self.loop.time(), self._due()
        if now >= due:
            self.limit.reschedule(now)
        else:
            self.timer = self.loop.call_at(due, self._check)

    def stop(self) -> None:
        self.timer.cancel()


class _Gate:
    """A tenant's share: at most `limit` of its calls hold a slot at once."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class SandboxPool:
    def __init__(self, workers: int = 8, memory_mb: int = 256, cpu_seconds: int = 10,
                 max_output_bytes: int = 1_000_000, task_concurrency: int = 2,
                 warm_workers: int = 32, warm_memory_mb: float = 2048,
                 uid: int = 64900, gid: int = 64900,
                 require: frozenset[str] = frozenset()) -> None:
        self.max_running = workers
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.max_output_bytes = max_output_bytes
        self.task_concurrency = task_concurrency
        self.warm_workers = max(warm_workers, workers)
        self.warm_memory_mb = warm_memory_mb
        self.uid, self.gid = uid, gid
        self.require = require
        self.walls: list[str] = []
        self._running = asyncio.Semaphore(workers)
        self._gates: dict[str, _Gate] = {}
        self._lanes: dict[str, _Lane] = {}
        self._senders: set[asyncio.Task[None]] = set()
        self._idle: IdleWorkers[_Worker] = IdleWorkers()
        self._live = 0
        self._zygote: _Zygote | None = None
        self._zygote_lock = asyncio.Lock()
        self._root = ""
        self._closed = False
        self._stats = {"restarts": 0, "cache_hits": 0, "cache_misses": 0, "timeouts": 0,
                       "busy": 0, "spawned": 0, "evicted": 0, "round_trips": 0}

    @property
    def missing_walls(self) -> list[str]:
        return [w for w in WALLS if w not in self.walls]

    # --- the zygote

    async def _start_zygote(self) -> _Zygote:
        if not self._root:
            self._root = tempfile.mkdtemp(prefix="loopai-sandbox-")
            os.chmod(self._root, 0o555)
        commands, commands_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        reports, reports_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = WallConfig(memory_mb=self.memory_mb, uid=self.uid, gid=self.gid,
                            root_dir=self._root)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-m", "loopai.core.sandbox.zygote",
                msgspec.json.encode(config).decode(), str(commands_child.fileno()),
                str(reports_child.fileno()),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=None, env={}, cwd=self._root, start_new_session=True,
                pass_fds=(commands_child.fileno(), reports_child.fileno()),
            )
        finally:
            commands_child.close()
            reports_child.close()
        commands.settimeout(5.0)
        reader, writer = await asyncio.open_unix_connection(sock=reports)
        return _Zygote(proc, commands, reader, writer)

    async def _zygote_handle(self) -> _Zygote:
        async with self._zygote_lock:
            if self._zygote is None or not self._zygote.alive:
                if self._zygote is not None:
                    log.warning("the sandbox zygote died; starting another")
                    await self._zygote.close()
                self._zygote = await self._start_zygote()
            return self._zygote

    # --- workers

    async def _spawn(self, key: str, code: str, policy: bool) -> _Worker:
        zygote = await self._zygote_handle()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            zygote.spawn(theirs, Spawn(memory_mb=self.memory_mb, cpu_s=self.cpu_seconds,
                                       max_output_bytes=self.max_output_bytes))
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=2**26)
        try:
            (size,) = HEADER.unpack(await asyncio.wait_for(reader.readexactly(HEADER.size),
                                                           START_TIMEOUT_S))
            ready = ready_decoder.decode(await reader.readexactly(size))
        except BaseException:
            writer.close()
            raise
        worker = _Worker(key, ready.pid, ready.walls, reader, writer)
        worker.send(Load(code=code, policy=policy))
        self._stats["spawned"] += 1
        return worker

    def _retire(self, worker: _Worker, kill: bool = False) -> None:
        if kill and self._zygote is not None:
            self._zygote.kill(worker.pid)
        worker.close()
        self._live -= 1

    async def _worker_for(self, key: str, code: str, policy: bool) -> _Worker:
        while (worker := self._idle.take(key)) is not None:
            if not worker.reader.at_eof():
                return worker
            self._retire(worker)  # died while idle (its zygote went away, say)
        for cold in self._idle.evictions(self._live + 1, self.warm_workers, float("inf")):
            self._stats["evicted"] += 1
            self._retire(cold)
        self._live += 1
        try:
            return await self._spawn(key, code, policy)
        except BaseException:
            self._live -= 1
            raise

    def _release(self, worker: _Worker) -> None:
        if self._closed:
            self._retire(worker)
            return
        self._idle.put(worker)
        for cold in self._idle.evictions(self._live, self.warm_workers, self.warm_memory_mb):
            self._stats["evicted"] += 1
            self._retire(cold)

    async def _death(self, worker: _Worker) -> str:
        zygote = self._zygote
        status = (await zygote.exit_status(worker.pid, EXIT_REPORT_WAIT_S)
                  if zygote is not None else None)
        return _describe_exit(status)

    # --- lifecycle

    async def start(self) -> None:
        """Starts the zygote and one probe worker, which tells which walls this host allows."""
        probe = await self._spawn("probe", "def run(input):\n    return input\n", True)
        self.walls = probe.walls
        self._live += 1
        self._retire(probe)
        log.info("sandbox walls up: %s; missing: %s", ", ".join(self.walls) or "none",
                 ", ".join(self.missing_walls) or "none")
        missing = sorted(self.require - set(self.walls))
        if missing:
            await self.close()
            raise SandboxUnavailable(
                f"required sandbox walls missing on this host: {', '.join(missing)}"
                " (see docs/sandbox.md for what each needs)")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        senders = list(self._senders)
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        for worker in list(self._idle):
            self._idle.remove(worker)
            self._retire(worker)
        if self._zygote is not None:
            await self._zygote.close()
        if self._root:
            shutil.rmtree(self._root, ignore_errors=True)

    def stats(self) -> dict[str, int]:
        return {"workers": self._live, "idle": len(self._idle), **self._stats}

    # --- calls

    async def run(self, key: str, code: str, input: Any, timeout_ms: int,
                  tenant: str | None = None, policy: bool = True) -> RunResult:
        """Runs `code`'s entry point on `input`; `timeout_ms` covers the wait for a slot too.

        Calls of one program that arrive while its workers are busy wait in its lane, and
        the next round trip takes them together (`_Lane`)."""
        if self._closed:
            raise SandboxClosed("the sandbox pool is closed")
        try:
            input_json = msgspec.json.encode(input)
        except (TypeError, ValueError) as exc:
            return RunResult("error", error_message=f"input is not JSON: {exc}")
        loop = asyncio.get_running_loop()
        now = loop.time()
        call = _Call(input_json, now, now + timeout_ms / 1000, timeout_ms, loop.create_future())
        lane_key = key if policy else f"no-policy:{key}"
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = _Lane(lane_key, code, policy, tenant or key)
        lane.waiting.append(call)
        if lane.expiry is None or lane.expiry.when() > call.deadline:
            if lane.expiry is not None:
                lane.expiry.cancel()
            lane.expiry = loop.call_at(call.deadline, self._expire, lane)
        if lane.senders < self.task_concurrency:
            lane.senders += 1
            sender = loop.create_task(self._send(lane))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        try:
            return await call.future
        finally:
            call.abandoned = True  # taken calls finish anyway; waiting ones are skipped

    def _expire(self, lane: _Lane) -> None:
        """The earliest deadline among the lane's waiting calls is due: those past theirs
        time out; the timer moves to the next deadline, if any call still waits."""
        lane.expiry = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        later = float("inf")
        for call in lane.waiting:
            if call.taken or call.future.done() or call.abandoned:
                continue
            if call.deadline <= now:
                call.future.set_result(self._queued_timeout(call.timeout_ms,
                                                            call.deadline - call.queued_at))
            else:
                later = min(later, call.deadline)
        if later != float("inf"):
            lane.expiry = loop.call_at(later, self._expire, lane)

    def _queued_timeout(self, timeout_ms: int, waited_s: float) -> RunResult:
        self._stats["timeouts"] += 1
        return RunResult("timeout", error_message=f"timed out after {timeout_ms} ms waiting"
                         " for a sandbox slot", latency_ms=round(waited_s * 1000, 3))

    def _gate(self, tenant: str) -> _Gate:
        gate = self._gates.get(tenant)
        if gate is None:
            gate = self._gates[tenant] = _Gate(self.task_concurrency)
        return gate

    async def _send(self, lane: _Lane) -> None:
        """One of a lane's senders (at most `task_concurrency`): while calls wait, take a
        tenant slot and a pool slot, then as many waiting calls as one round trip carries."""
        gate = self._gate(lane.tenant)
        gate.users += 1
        batch: list[_Call] = []
        try:
            while lane.pending():
                async with gate.semaphore, self._running:
                    batch = lane.take(MAX_BATCH, MAX_BATCH_BYTES)
                    if batch:
                        await self._round_trip(lane, batch)
                    batch = []
        except BaseException as exc:  # the pool closing (cancelled), or a bug: none hangs
            why = "the sandbox pool is closed" if self._closed else f"sandbox error: {exc!r}"
            for call in [*batch, *lane.take(len(lane.waiting), float("inf"))]:
                call.settle(RunResult("error", error_message=why))
            if not isinstance(exc, Exception):
                raise
            log.exception("sandbox sender failed")
        finally:
            lane.senders -= 1
            gate.users -= 1
            if gate.users == 0:
                del self._gates[lane.tenant]
            if lane.senders == 0 and not lane.waiting:
                if lane.expiry is not None:
                    lane.expiry.cancel()
                if self._lanes.get(lane.key) is lane:
                    del self._lanes[lane.key]

    async def _round_trip(self, lane: _Lane, batch: list[_Call]) -> None:
        """Sends `batch` to one worker and settles each call as its answer comes back. Calls
        after one that killed or hung the worker did not run: they wait again."""
        loop = asyncio.get_running_loop()
        try:
            worker = await self._worker_for(lane.key, lane.code, lane.policy)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, msgspec.DecodeError) as exc:
            log.warning("could not start a sandbox worker: %s", type(exc).__name__)
            for call in batch:
                call.settle(RunResult("error", error_message="could not start a sandbox worker"))
            return
        now = loop.time()
        self._stats["busy"] += 1
        self._stats["round_trips"] += 1
        done = 0
        keep = False
        try:
            worker.send_batch([Request(input_json=c.input_json,
                                       timeout_ms=max(1, int((c.deadline - now) * 1000)))
                               for c in batch])
            await worker.writer.drain()
            async with asyncio.timeout(None) as limit:
                watch = _Watch(loop, limit, batch)
                try:
                    for call in batch:
                        response = response_decoder.decode(await worker.read_frame())
                        worker.memory_mb = response.memory_mb
                        call.settle(self._result(response, call.timeout_ms))
                        done += 1
                        watch.answered(done)
                finally:
                    watch.stop()
            keep = True
        except TimeoutError:
            self._stats["timeouts"] += 1
            call = batch[done]
            call.settle(RunResult("timeout", error_message=f"timed out after {call.timeout_ms}"
                                  " ms (worker replaced)",
                                  latency_ms=float(max(1, int((call.deadline - now) * 1000)))))
            done += 1
        except (ConnectionError, asyncio.IncompleteReadError, ValueError,
                msgspec.DecodeError):
            self._stats["restarts"] += 1
            batch[done].settle(RunResult("error", error_message=await self._death(worker)))
            done += 1
        finally:
            self._stats["busy"] -= 1
            if keep:
                self._release(worker)
            else:
                self._retire(worker, kill=True)
        lane.retry(batch[done:])

    def _result(self, response: Response, timeout_ms: int) -> RunResult:
        self._stats["cache_hits" if response.cache_hit else "cache_misses"] += 1
        error = response.error
        if response.status == "timeout":
            self._stats["timeouts"] += 1
            error = f"timed out after {timeout_ms} ms"
        output = (msgspec.json.decode(response.output_json)
                  if response.output_json is not None else None)
        return RunResult(response.status, output=output, error_message=error,
                         output_bytes=len(response.output_json or b""),
                         latency_ms=response.latency_ms, memory_usage_mb=response.memory_mb,
                         cache_hit=response.cache_hit)
