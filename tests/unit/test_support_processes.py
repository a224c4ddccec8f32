"""The test-support process helpers leave nothing running: not when a test forgets to stop
what it started, not when the run is SIGTERMed, and not what a server forked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.hub_process import exited, reap, spawn, stop_gracefully

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie is dead, just not reaped
    except FileNotFoundError:
        return False


def gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_child(ending: str) -> list[int]:
    """A Python process that starts a process (which forks a grandchild) with `spawn`, prints
    both pids and ends with `ending`, never stopping it."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from tests.support.hub_process import spawn
        proc = spawn(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=-1)
        grandchild = int(proc.stdout.readline())
        print(proc.pid, grandchild, flush=True)
        {ending}
    """)
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                           text=True, timeout=30)
    pids = [int(p) for p in child.stdout.split()]
    assert len(pids) == 2, child.stderr
    return pids


@pytest.mark.parametrize("ending", ["sys.exit(1)", "raise AssertionError('a failing run')",
                                    "os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)"])
def test_what_a_run_leaves_running_is_killed_when_it_ends(ending: str) -> None:
    pids = run_child(ending)
    try:
        assert gone(pids), "a spawned process outlived the run"
    finally:
        for pid in pids:  # only ours, by pid, if the assertion failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_kill_takes_what_the_process_forked_and_keeps_the_exit_code() -> None:
    proc = spawn(["sh", "-c", "trap 'exit 7' TERM; sleep 300 & echo $!; wait"],
                 stdout=subprocess.PIPE)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    assert not exited(proc)
    assert stop_gracefully(proc, timeout=5) == 7  # its own exit code, not the SIGKILL's
    proc.stdout.close()
    assert gone([grandchild]), "the grandchild outlived its process group"
    assert reap(proc) == 7  # reaping again is harmless
