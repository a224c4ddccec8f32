"""A sandbox worker: the process that runs one program, for its whole life.

Forked by the zygote (`zygote.py`) from a parent that has already imported everything
programs may use, it puts up its OS walls (`walls.py`: namespaces, chroot, its own uid, no
capabilities, rlimits, seccomp), greets the pool with `Ready`, takes its program in one
`Load`, then answers `Request`s one at a time. Programs run with restricted builtins and
module proxies that hide every module reference (`statistics.sys`, `re.enum.sys` …); the
walls hold even when a program gets past those.
"""

from __future__ import annotations

import ast
import builtins
import collections
import collections.abc
import ctypes  # noqa: F401  (preloaded: raw system calls must meet the walls, not ImportError)
import datetime
import difflib
import functools
import importlib
import itertools
import json
import math
import os
import re
import resource
import signal
import statistics
import string
import sys
import time
import types
import unicodedata
from typing import Any, BinaryIO

import msgspec

from loopai.core.sandbox import walls
from loopai.core.sandbox.policy import (
    ALLOWED_MODULES,
    ALLOWED_SUBMODULES,
    ProgramRejected,
    check_program,
    entrypoint_of,
)
from loopai.core.sandbox.protocol import (
    HEADER,
    Load,
    Ready,
    Request,
    Response,
    frame,
    load_decoder,
    request_decoder,
)

_PRELOADED = (collections, collections.abc, datetime, difflib, functools, itertools, json,
              math, re, statistics, string, unicodedata)

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex", "dict",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hasattr", "hex",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "object", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "tuple", "type", "zip", "True", "False", "None", "Ellipsis",
    "NotImplemented", "ArithmeticError", "AssertionError", "AttributeError", "Exception",
    "IndexError", "KeyError", "LookupError", "NameError", "NotImplementedError",
    "OverflowError", "RecursionError", "RuntimeError", "StopIteration", "TypeError",
    "UnicodeError", "ValueError", "ZeroDivisionError",
)


class CallTimeout(BaseException):
    """Raised by the interval timer inside a program that runs too long."""


HIDDEN_NAMES = frozenset({"Formatter"})
"""Public names programs never get: `string.Formatter().get_field` turns a string such as
"0.__globals__" into the object it names."""


def proxy(module: types.ModuleType) -> types.SimpleNamespace:
    """A module's public names without any module among them (but allowed submodules)."""
    names: dict[str, Any] = {}
    for name in dir(module):
        if name.startswith("_") or name in HIDDEN_NAMES:
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            if f"{module.__name__}.{name}" in ALLOWED_SUBMODULES:
                names[name] = proxy(value)
            continue
        names[name] = value
    return types.SimpleNamespace(**names)


PROXIES = {name: proxy(importlib.import_module(name)) for name in ALLOWED_MODULES}


# Modules the standard library's C code imports lazily through the current `__import__`
# (`datetime.strptime` needs `_strptime`, `strftime` needs `time`). Programs cannot name
# them: the policy refuses the import statement and `__import__` itself.
STDLIB_INTERNAL = {name: importlib.import_module(name) for name in ("_strptime", "time")}


def guarded_import(name: str, globals: Any = None, locals: Any = None,
                   fromlist: Any = (), level: int = 0) -> Any:
    if name in STDLIB_INTERNAL and not level:
        return STDLIB_INTERNAL[name]
    if level or (name not in ALLOWED_MODULES and name not in ALLOWED_SUBMODULES):
        raise ImportError(f"import of {name!r} is not allowed")
    top, *rest = name.split(".")
    module: Any = PROXIES[top]
    if not fromlist:
        return module  # `import a.b` binds `a`
    for part in rest:  # `from a.b import c` reads `c` from `a.b`
        module = getattr(module, part)
    return module


def _no_print(*args: Any, **kwargs: Any) -> None:
    """Programs may print while debugging; it goes nowhere."""


def restricted_builtins() -> dict[str, Any]:
    table = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    table["__import__"] = guarded_import
    table["__build_class__"] = builtins.__build_class__
    table["print"] = _no_print
    return table


class Program:
    """One program, compiled once. With `policy` off (the `--no-policy` audit mode) it gets
    the real builtins and no compile-time check: only the OS walls stand."""

    def __init__(self, code: str, policy: bool = True) -> None:
        if policy:
            entrypoint = check_program(code).entrypoint
            table: Any = restricted_builtins()
        else:
            found = entrypoint_of(ast.parse(code))
            if found is None:
                raise ProgramRejected("the program has no entry point",
                                      ["define a top-level run(input) or classify(text)"])
            entrypoint, table = found, builtins
        scope: dict[str, Any] = {"__builtins__": table, "__name__": "program"}
        exec(compile(code, "<program>", "exec"), scope)
        self.entrypoint = entrypoint
        self.function = scope[entrypoint]

    def __call__(self, value: Any) -> Any:
        if self.entrypoint == "classify":
            if isinstance(value, dict) and isinstance(value.get("text"), str):
                value = value["text"]
            elif not isinstance(value, str):
                raise TypeError("classify(text) needs a string input or an object with 'text'")
        return self.function(value)


class CpuBudget:
    """The kernel's CPU limit, kept at least `cpu_s` seconds ahead of every call and at
    most `2 * cpu_s + 1`: past it the kernel kills the worker (SIGXCPU).

    Measuring the CPU used and moving the limit are two system calls; a call of a few
    microseconds would pay them every time. The worker is one thread (the policy lets no
    program start another), so the CPU it used since the last measurement is at most the
    wall time since: the limit moves only when that bound comes within `cpu_s` of it.
    """

    __slots__ = ("_at", "_cpu_s", "_limit", "_used")

    def __init__(self, cpu_s: int) -> None:
        self._cpu_s = cpu_s
        self._limit = 0
        self._used = 0.0
        self._at = 0.0

    def renew(self) -> None:
        now = time.perf_counter()
        if self._used + (now - self._at) + self._cpu_s <= self._limit:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._used, self._at = usage.ru_utime + usage.ru_stime, now
        self._limit = int(self._used) + 1 + 2 * self._cpu_s
        resource.setrlimit(resource.RLIMIT_CPU, (self._limit, resource.RLIM_INFINITY))


class Alarm:
    """The wall-clock deadline of the call running now, as one interval timer.

    Requests of a frame count their timeouts from when it was read, so they mostly share
    one deadline: the timer is set when the deadline changes and cleared once a frame is
    done, not twice per call. It interrupts program code only (`running`); firing anywhere
    else (encoding an answer, writing it) it is ignored, and the next call finds its time
    already up before it starts.
    """

    __slots__ = ("_deadline", "_fired", "running")

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._fired = False
        self.running = False
        signal.signal(signal.SIGALRM, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.running:
            self.running = False
            raise CallTimeout()
        self._fired = True

    def set(self, deadline: float, now: float) -> None:
        if deadline != self._deadline:
            signal.setitimer(signal.ITIMER_REAL, deadline - now)
            self._deadline, self._fired = deadline, False

    def enter(self) -> None:
        """Program code starts: from here the timer interrupts it, and if it already
        fired, the call's time is up."""
        self.running = True
        if self._fired:
            self.running = False
            raise CallTimeout()

    def clear(self) -> None:
        if self._deadline is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._deadline = None


class PeakMemory:
    """The worker's peak RSS (MB) for its answers, read at most once a millisecond unless
    the call took longer: `getrusage` is a system call through the seccomp filter, a good
    part of a call of a few microseconds. A call under a millisecond can touch only a few MB,
    and the next reading counts them (the figure is the worker's peak so far, never one
    call's own)."""

    __slots__ = ("_at", "_mb")

    EVERY_S = 0.001

    def __init__(self) -> None:
        self._mb = 0.0
        self._at = float("-inf")

    def read(self, now: float, call_s: float) -> float:
        if call_s >= self.EVERY_S or now - self._at >= self.EVERY_S:
            self._mb, self._at = _memory_mb(), now
        return self._mb


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "MemoryError: the program ran out of its memory limit"
    if isinstance(exc, RecursionError):
        return "RecursionError: maximum recursion depth exceeded"
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:2000] if text else type(exc).__name__


class Worker:
    def __init__(self, load: Load, cpu_s: int, max_output_bytes: int) -> None:
        self.load = load
        self.budget = CpuBudget(cpu_s)
        self.alarm = Alarm()
        self.memory = PeakMemory()
        self.max_output_bytes = max_output_bytes
        self.program: Program | None = None

    def _program(self) -> tuple[Program, bool]:
        if self.program is not None:
            return self.program, True
        self.program = Program(self.load.code, self.load.policy)
        return self.program, False

    def handle(self, request: Request, received: float) -> Response:
        """Runs one request of a frame read at `received` (its timeout counts from then)."""
        started = time.perf_counter()
        hit = False
        deadline = received + request.timeout_ms / 1000
        if deadline <= started:
            return Response("timeout", error=f"timed out after {request.timeout_ms} ms"
                            " waiting for the calls before it", cache_hit=self.program is not None)
        try:
            value = msgspec.json.decode(request.input_json)
            self.budget.renew()
            self.alarm.set(deadline, started)
            try:
                self.alarm.enter()
                # Defining the program runs its top level, which is program code too.
                program, hit = self._program()
                output = program(value)
            finally:
                self.alarm.running = False
            done = time.perf_counter()
            elapsed = (done - started) * 1000
            try:
                encoded = msgspec.json.encode(output)
            except (TypeError, ValueError, OverflowError) as exc:
                return self._error(f"output is not JSON: {exc}", started, hit)
            if len(encoded) > self.max_output_bytes:
                return self._error(f"output too large ({len(encoded)} bytes >"
                                   f" {self.max_output_bytes})", started, hit)
            return Response("success", output_json=encoded, latency_ms=elapsed,
                            memory_mb=self.memory.read(done, done - started), cache_hit=hit)
        except CallTimeout:
            return Response("timeout", error=f"timed out after {request.timeout_ms} ms",
                            latency_ms=(time.perf_counter() - started) * 1000,
                            memory_mb=_memory_mb(), cache_hit=hit)
        except ProgramRejected as exc:
            return self._error(f"{exc.message}: {'; '.join(exc.details)}", started, hit)
        except BaseException as exc:  # the program's own failure, whatever it raised
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                return self._error(f"{type(exc).__name__} is not allowed", started, hit)
            return self._error(_describe(exc), started, hit)

    def _error(self, message: str, started: float, hit: bool) -> Response:
        return Response("error", error=message,
                        latency_ms=(time.perf_counter() - started) * 1000,
                        memory_mb=_memory_mb(), cache_hit=hit)


def _write_all(stream: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = stream.write(view)
        view = view[written or 0:]


def _memory_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 2)


def serve(sock: int, config: walls.WallConfig, cpu_s: int, max_output: int) -> None:
    """The worker's life, in the forked child: walls, greeting, one program, calls."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.clear()
    up = walls.put_up(config)
    sys.setrecursionlimit(400)
    proto_in = os.fdopen(sock, "rb", buffering=0, closefd=False)
    proto_out = os.fdopen(sock, "wb", buffering=0, closefd=False)
    _write_all(proto_out, frame(Ready(pid=os.getpid(), walls=up)))
    try:
        (size,) = HEADER.unpack(_read_exact(proto_in, HEADER.size))
        worker = Worker(load_decoder.decode(_read_exact(proto_in, size)), cpu_s, max_output)
        while True:
            (size,) = HEADER.unpack(_read_exact(proto_in, HEADER.size))
            requests = request_decoder.decode(_read_exact(proto_in, size))
            received = time.perf_counter()
            for request in requests:
                _write_all(proto_out, frame(worker.handle(request, received)))
            worker.alarm.clear()
    except EOFError:
        return
