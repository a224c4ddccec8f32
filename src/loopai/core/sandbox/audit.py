"""Hostile actions tried inside real, fully walled workers with the compile-time policy off.

`loopai sandbox check` runs this battery and prints what was blocked, so an operator (or a
test, or an auditor) sees that the OS walls hold by themselves, without the policy's help.
Each action is its own program in its own worker and reports `blocked` and why. Probes that
would do harm if they got through use harmless forms (signal 0, a read of one byte), except
where the harm is the point and lands only on the worker itself.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import textwrap
from typing import Any

import msgspec

from loopai.core.sandbox.pool import SandboxPool

_PRELUDE = """\
import ctypes, os, resource, socket, sys
libc = ctypes.CDLL(None, use_errno=True)


def checked(rc):
    if rc == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


def run(input):
    try:
{body}
    except (OSError, ValueError, ImportError) as exc:
        return {{"blocked": True, "detail": type(exc).__name__ + ": " + str(exc)}}
    return {{"blocked": False, "detail": str(result)[:200]}}
"""

ACTIONS: dict[str, str] = {
    "read /etc/passwd": "result = open('/etc/passwd').read(64)",
    "read the server's environment (/proc/<pid>/environ)":
        "result = open('/proc/%d/environ' % input['server_pid'], 'rb').read(64)",
    "read the database file": "result = open(input['database'], 'rb').read(16)",
    "list the root directory": "result = os.listdir('/')",
    "write a file": "result = open(input['scratch'] + '.new', 'w').write('x')",
    "truncate a file": "result = os.truncate(input['scratch'], 0)",
    "fork a process": "pid = os.fork()\nif pid == 0:\n    os._exit(0)\nresult = pid",
    "exec a program": "result = os.execv('/bin/sh', ['/bin/sh', '-c', 'true'])",
    "open a socket": "result = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
    "connect to the server's port": (
        "s = socket.socket()\ns.settimeout(1)\n"
        "result = s.connect(('127.0.0.1', input['server_port']))"),
    "signal the parent (zygote)": "result = os.kill(os.getppid(), 0)",
    "signal the server": "result = os.kill(input['server_pid'], 0)",
    "ptrace the parent": "result = checked(libc.ptrace(16, os.getppid(), 0, 0))",
    "join the server's network namespace (setns)":
        "result = checked(libc.setns(0, 0x40000000))",
    "create namespaces (unshare)": "result = checked(libc.unshare(0x10000000))",
    "mount a filesystem": "result = checked(libc.mount(b'none', b'/', b'tmpfs', 0, None))",
    "load a BPF program (bpf)": "result = checked(libc.syscall(input['sys']['bpf'], 0, 0, 0))",
    "read the parent's memory (process_vm_readv)":
        "result = checked(libc.syscall(input['sys']['process_vm_readv'], os.getppid(), 0, 0,"
        " 0, 0, 0))",
    "raise its own memory limit":
        "result = resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)",
    "find credentials in its environment": (
        "found = [k for k in os.environ if 'LOOPAI' in k or 'KEY' in k or 'SECRET' in k]\n"
        "if not found:\n    raise OSError(0, 'environment is empty (%d variables)'"
        " % len(os.environ))\nresult = found"),
    "run as the server's uid": (
        "if os.getuid() != input['server_uid']:\n"
        "    raise OSError(0, 'runs as uid %d' % os.getuid())\n"
        "if input['userns']:\n"
        "    raise OSError(0, 'same uid outside, but in its own user namespace with no'\n"
        "                  ' capabilities over the server')\n"
        "result = os.getuid()"),
    "use a descriptor it was not given": (
        "extra = [fd for fd in range(4, 64) if not _closed(fd)]\n"
        "if not extra:\n    raise OSError(0, 'only its own pipe (fds 0-3) is open')\n"
        "result = extra"),
}
_HELPERS = """

def _closed(fd):
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False
"""

PATCH_NAME = "patch the worker to change another program's call"
_PATCHER = """\
import sys


def run(input):
    worker = sys.modules['loopai.core.sandbox.worker']
    forged = worker.Response('success', output_json=b'"forged"')
    worker.Worker.handle = lambda self, *request: forged
    return 'patched'
"""
_UNTOUCHED = "do not touch"
_ECHO = "def run(input):\n    return input\n"


class Finding(msgspec.Struct):
    action: str
    blocked: bool
    detail: str


def program(action: str) -> str:
    body = textwrap.indent(ACTIONS[action], " " * 8)
    return _PRELUDE.format(body=body) + _HELPERS


def _syscall_numbers() -> dict[str, int]:
    try:
        import pyseccomp
    except (ImportError, OSError):
        return {"bpf": -1, "process_vm_readv": -1}
    arch = pyseccomp.system_arch()
    return {name: pyseccomp.resolve_syscall(arch, name)
            for name in ("bpf", "process_vm_readv")}


def _scratch_file(folder: str) -> str:
    """A file anyone may write: only the walls stand between it and a worker."""
    path = pathlib.Path(folder, "victim")
    path.write_text(_UNTOUCHED)
    os.chmod(folder, 0o777)
    os.chmod(path, 0o666)
    return str(path)


def _untouched(path: str) -> bool:
    return pathlib.Path(path).read_text() == _UNTOUCHED


async def check(pool: SandboxPool, server_port: int, database: str | None) -> list[Finding]:
    """Runs every action in its own walled worker, policy off."""
    with tempfile.TemporaryDirectory(prefix="loopai-check-") as scratch_dir:
        scratch = _scratch_file(scratch_dir)
        context: dict[str, Any] = {
            "server_pid": os.getpid(), "server_uid": os.getuid(), "server_port": server_port,
            "database": database or scratch, "scratch": scratch, "sys": _syscall_numbers(),
            "userns": "userns" in pool.walls,
        }
        findings = [await _one(pool, action, context) for action in ACTIONS]
        if not _untouched(scratch):
            findings = [Finding(f.action, False, "the scratch file was changed")
                        if "file" in f.action else f for f in findings]
    findings.append(await _patch(pool))
    return findings


async def _one(pool: SandboxPool, action: str, context: dict[str, Any]) -> Finding:
    result = await pool.run(f"audit:{action}", program(action), context, 3000, policy=False)
    if result.status == "success" and isinstance(result.output, dict):
        return Finding(action, bool(result.output.get("blocked")),
                       str(result.output.get("detail", "")))
    # The worker died or hung: the action did something the walls should have stopped.
    return Finding(action, False, f"{result.status}: {result.error_message}")


async def _patch(pool: SandboxPool) -> Finding:
    await pool.run("audit:patcher", _PATCHER, None, 3000, policy=False)
    victim = await pool.run("audit:victim", _ECHO, "untouched", 3000, policy=False)
    ok = victim.status == "success" and victim.output == "untouched"
    return Finding(PATCH_NAME, ok, "another program's call answered correctly" if ok
                   else f"another program's call answered {victim.output!r}")
