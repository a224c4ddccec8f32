"""The OS walls a freshly forked worker puts up around itself before it reads a program.

They do not care how a program got where it is: a program that escaped the compile-time
policy and the restricted runtime, with the real builtins in hand, still meets them.

In order: new namespaces (network with no interface at all, mount, IPC; a user namespace
when the server is not root), a chroot into an empty directory, a dedicated unprivileged
uid/gid when the server is root, no capabilities, `PR_SET_NO_NEW_PRIVS`, not dumpable (so
other processes of the same uid cannot read its memory or /proc files), resource limits,
and last the seccomp allow-list (`syscalls.py`). Each wall that could not be put up is left
out of the returned list; the pool decides whether that is acceptable
(`LOOPAI_SANDBOX_REQUIRE`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal

import msgspec

from loopai.config import WALLS
from loopai.core.sandbox import syscalls

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522
_CAP_LAST = 63

_libc = ctypes.CDLL(None, use_errno=True)


class WallConfig(msgspec.Struct, frozen=True):
    """What the pool asks of each worker."""

    memory_mb: int
    uid: int
    gid: int
    root_dir: str
    max_fds: int = 8


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _call(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare(flags: int) -> bool:
    try:
        _call(_libc.unshare(flags))
    except OSError:
        return False
    return True


def _prctl(option: int, value: int) -> None:
    _call(_libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)))


def _drop_capabilities() -> bool:
    """Empties the bounding set (where allowed) and every capability set; True when the
    process holds no capability afterwards."""
    for cap in range(_CAP_LAST + 1):
        with contextlib.suppress(OSError):
            _prctl(_PR_CAPBSET_DROP, cap)
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    with contextlib.suppress(OSError):
        _call(_libc.capset(ctypes.byref(header), data))
    check = (_CapData * 2)()
    try:
        _call(_libc.capget(ctypes.byref(header), check))
    except OSError:
        return False
    return all(d.effective == 0 and d.permitted == 0 for d in check)


def _limits(config: WallConfig) -> None:
    mem = config.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (config.max_fds, config.max_fds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def put_up(config: WallConfig) -> list[str]:
    """Shuts this process in; returns the walls that are up. Runs in the forked worker."""
    up: list[str] = []
    root = os.geteuid() == 0
    if root:
        if _unshare(_CLONE_NEWNET):
            up.append("netns")
        if _unshare(_CLONE_NEWNS):
            up.append("mountns")
        if _unshare(_CLONE_NEWIPC):
            up.append("ipcns")
    elif _unshare(_CLONE_NEWUSER):
        up.append("userns")
        for flag, name in ((_CLONE_NEWNET, "netns"), (_CLONE_NEWNS, "mountns"),
                           (_CLONE_NEWIPC, "ipcns")):
            if _unshare(flag):
                up.append(name)
    try:
        os.chroot(config.root_dir)
        os.chdir("/")
        up.append("chroot")
    except OSError:
        with contextlib.suppress(OSError):
            os.chdir(config.root_dir)
    if root and config.uid > 0:
        try:
            os.setgroups([])
            os.setresgid(config.gid, config.gid, config.gid)
            os.setresuid(config.uid, config.uid, config.uid)
            up.append("uid")
        except OSError:
            pass
    if _drop_capabilities():
        up.append("capabilities")
    try:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        up.append("no_new_privs")
    except OSError:
        pass
    with contextlib.suppress(OSError):
        _prctl(_PR_SET_DUMPABLE, 0)
        # A uid change clears the parent-death signal: set it afterwards, so a worker never
        # outlives the zygote that forked it.
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        _limits(config)
        up.append("rlimits")
    except (OSError, ValueError):
        pass
    try:
        syscalls.install()
        up.append("seccomp")
    except (OSError, ImportError, RuntimeError):
        pass
    return [w for w in WALLS if w in up]
