"""The seccomp-bpf allow-list a worker runs under once it has imported everything it needs.

A worker talks to the pool over one socket with read/write, allocates memory, reads clocks,
handles its own timer signal, and exits. Everything else — opening any file, exec, fork or
clone, sockets, signals to other processes, ptrace, namespaces, mounts, bpf,
process_vm_* — fails with EPERM, however the program reached the call.

The filter is built with libseccomp through `pyseccomp` (a ctypes binding with the same API
as libseccomp's own Python module): libseccomp resolves syscall names for the running
architecture and compiles argument checks, which a hand-written BPF program would have to
get right for every architecture by itself.
"""

from __future__ import annotations

import errno
import os

try:  # imported before the worker shuts itself in: loading libseccomp opens files
    import pyseccomp as seccomp
except (ImportError, OSError):  # no libseccomp on this host: the wall is reported missing
    seccomp = None

# Calls a worker makes after the filter is in: its pipe I/O, memory, time, its own signals,
# resource limits it lowers for itself, and exit. Anything not listed gets EPERM.
ALLOWED = (
    "read", "write", "readv", "writev", "close", "fstat", "newfstatat", "lseek",
    "brk", "mmap", "munmap", "mremap", "madvise", "mprotect",
    "futex", "sched_yield", "getrandom", "rseq", "membarrier",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "getrusage", "getrlimit", "setrlimit",
    "setitimer", "getitimer", "alarm",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getcwd",
    "exit", "exit_group",
)

# A few of the calls that must stay refused, for documentation and for `loopai sandbox check`.
REFUSED_EXAMPLES = (
    "open", "openat", "execve", "fork", "clone", "clone3", "socket", "connect", "ptrace",
    "setns", "unshare", "mount", "bpf", "process_vm_readv", "process_vm_writev", "kill (other)",
)


def install() -> None:
    """Loads the filter into this process (and every thread and child it would have).

    Raises OSError (or ImportError when libseccomp is missing) if the kernel or the library
    cannot do it; the caller reports the wall as missing.
    """
    if seccomp is None:
        raise ImportError("pyseccomp (libseccomp) is not available")
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    for name in ALLOWED:
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            continue  # a call this architecture does not have
    pid = os.getpid()
    f.add_rule(seccomp.ALLOW, "kill", seccomp.Arg(0, seccomp.EQ, pid))
    f.add_rule(seccomp.ALLOW, "tgkill", seccomp.Arg(0, seccomp.EQ, pid))
    f.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(0, seccomp.EQ, 0))
    f.load()
