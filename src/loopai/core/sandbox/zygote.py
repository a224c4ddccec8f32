"""The zygote: a warm parent that forks one worker per program.

Started by the pool as `python -I -m loopai.core.sandbox.zygote <config json> <cmd fd>
<report fd>` with an empty environment, in an empty directory. It imports everything a
worker needs (the allowed modules, msgspec, libseccomp) once, then waits for `Spawn`
commands: each carries the worker's end of a socket pair, and the forked child puts up its
walls and serves on it. The zygote never runs program code. It reaps its children and reports
each exit to the pool, kills a child when asked (only its own, not yet reaped children, so a
recycled pid is never hit), and when the pool goes away it kills every child and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import sys

import msgspec

from loopai.core.sandbox import worker
from loopai.core.sandbox.protocol import Exited, Kill, Spawn, command_decoder, frame
from loopai.core.sandbox.walls import WallConfig

_PR_SET_PDEATHSIG = 1
MAX_COMMAND = 4096


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Zygote:
    def __init__(self, config: WallConfig, commands: socket.socket, reports: int) -> None:
        self.config = config
        self.commands = commands
        self.reports = reports
        self.children: set[int] = set()
        self.devnull = os.open(os.devnull, os.O_RDWR)

    def _report(self, message: msgspec.Struct) -> None:
        data = memoryview(frame(message))
        while data:
            data = data[os.write(self.reports, data):]

    def _fork(self, spawn: Spawn, fd: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker; never returns into the zygote's loop
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.dup2(fd, 3)
                for target in (0, 1, 2):
                    os.dup2(self.devnull, target)
                os.closerange(4, 1 << 16)
                config = msgspec.structs.replace(self.config, memory_mb=spawn.memory_mb)
                worker.serve(3, config, spawn.cpu_s, spawn.max_output_bytes)
                code = 0
            finally:
                os._exit(code)
        os.close(fd)
        self.children.add(pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._report(Exited(pid=pid, status=os.waitstatus_to_exitcode(status)))

    def _command(self) -> bool:
        """Handles one command; False when the pool has gone."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.commands, MAX_COMMAND, 4)
        except (ConnectionError, OSError):
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            command = command_decoder.decode(data)
        except msgspec.DecodeError:
            for fd in fds:
                os.close(fd)
            return True
        if isinstance(command, Spawn) and fds:
            for extra in fds[1:]:
                os.close(extra)
            self._fork(command, fds[0])
        elif isinstance(command, Kill) and command.pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(command.pid, signal.SIGKILL)
        return True

    def run(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        selector = selectors.DefaultSelector()
        selector.register(self.commands, selectors.EVENT_READ, "command")
        selector.register(wake_r, selectors.EVENT_READ, "signal")
        try:
            while True:
                for key, _ in selector.select():
                    if key.data == "signal":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 512)
                        self._reap()
                    elif not self._command():
                        return
        finally:
            for pid in list(self.children):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def main() -> None:
    _die_with_parent()
    config = msgspec.json.decode(sys.argv[1], type=WallConfig)
    commands = socket.socket(fileno=int(sys.argv[2]))
    Zygote(config, commands, int(sys.argv[3])).run()


if __name__ == "__main__":
    main()
