"""Running untrusted programs: a compile-time policy, worker processes under OS limits,
and the pool the server talks to. See docs/sandbox.md."""

from loopai.core.sandbox.policy import ProgramInfo, ProgramRejected, check_program
from loopai.core.sandbox.pool import RunResult, SandboxClosed, SandboxPool, SandboxUnavailable

__all__ = [
    "ProgramInfo",
    "ProgramRejected",
    "RunResult",
    "SandboxClosed",
    "SandboxPool",
    "SandboxUnavailable",
    "check_program",
]
