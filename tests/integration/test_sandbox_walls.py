"""The OS walls, tested as if the compile-time policy were broken: every program here runs
with `policy=False` (real builtins, any preloaded module), the way a program that found a
bypass would. Each hostile action must be refused, the worker replaced if it died, and a
bystander program must keep answering correctly beside it."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopai.core.sandbox import SandboxPool, audit

ROOT = os.geteuid() == 0
ECHO = "def run(input):\n    return input\n"
ROOT_WALLS = {"seccomp", "uid", "netns", "mountns", "ipcns", "chroot", "capabilities",
              "no_new_privs", "rlimits"}


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    sandbox = SandboxPool(workers=4, task_concurrency=2, memory_mb=256, cpu_seconds=5)
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listening port standing in for the server's: no worker may reach it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


@pytest.fixture
def secrets_db(tmp_path: Path) -> Path:
    """A database file with another tenant's input, readable by anyone."""
    path = tmp_path / "loopai.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE executions (input TEXT)")
        db.execute("INSERT INTO executions VALUES ('secret input of another task')")
    tmp_path.chmod(0o777)
    path.chmod(0o666)
    return path


async def test_a_root_server_gets_every_wall(pool: SandboxPool) -> None:
    if not ROOT:
        pytest.skip("the uid, namespace and chroot walls need the server to run as root "
                    "(CI runs as root; see docs/sandbox.md for containers)")
    assert set(pool.walls) >= ROOT_WALLS, pool.walls


async def test_seccomp_is_up_wherever_libseccomp_is(pool: SandboxPool) -> None:
    assert "seccomp" in pool.walls and "no_new_privs" in pool.walls


@pytest.mark.parametrize("action", list(audit.ACTIONS))
async def test_each_hostile_action_is_refused_with_the_policy_off(
        pool: SandboxPool, listener: socket.socket, secrets_db: Path, tmp_path: Path,
        action: str) -> None:
    scratch = tmp_path / "victim"
    scratch.write_text("untouched")
    scratch.chmod(0o666)
    context: dict[str, Any] = {
        "server_pid": os.getpid(), "server_uid": os.getuid(),
        "server_port": listener.getsockname()[1], "database": str(secrets_db),
        "scratch": str(scratch), "sys": audit._syscall_numbers(),
        "userns": "userns" in pool.walls,
    }
    bystander = asyncio.create_task(pool.run("bystander", ECHO, {"n": 1}, 5000))
    result = await pool.run(f"hostile-{action}", audit.program(action), context, 3000,
                            policy=False)
    assert result.status == "success", result
    assert result.output["blocked"], result.output
    assert (await bystander).output == {"n": 1}
    assert scratch.read_text() == "untouched"
    assert not (tmp_path / "victim.new").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()


async def test_killing_the_parent_and_the_server_is_refused(pool: SandboxPool) -> None:
    code = (
        "import os, signal\n"
        "def run(input):\n"
        "    out = []\n"
        "    for pid in (os.getppid(), input):\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "            out.append('killed')\n"
        "        except OSError as exc:\n"
        "            out.append(exc.errno)\n"
        "    return out\n"
    )
    result = await pool.run("killer", code, os.getpid(), 3000, policy=False)
    assert result.output == [1, 1], result  # EPERM twice
    # The zygote is alive: a new program still gets a fresh worker.
    assert (await pool.run("after-killer", ECHO, "alive", 3000)).output == "alive"


async def test_a_forked_child_cannot_outlive_its_worker(pool: SandboxPool) -> None:
    code = ("import os\n"
            "def run(input):\n"
            "    try:\n"
            "        pid = os.fork()\n"
            "    except OSError as exc:\n"
            "        return exc.errno\n"
            "    if pid == 0:\n"
            "        while True:\n"
            "            pass\n"
            "    return pid\n")
    result = await pool.run("forker", code, None, 3000, policy=False)
    assert result.output == 1, result


async def test_patching_the_worker_changes_no_other_program(pool: SandboxPool) -> None:
    """A program rewrites its worker's request handler: only its own process is forged."""
    patcher = ("import sys\n"
               "def run(input):\n"
               "    worker = sys.modules['loopai.core.sandbox.worker']\n"
               "    forged = worker.Response('success', output_json=b'\"forged\"')\n"
               "    worker.Worker.handle = lambda self, *request: forged\n"
               "    return 'patched'\n")
    assert (await pool.run("patcher", patcher, None, 3000, policy=False)).output == "patched"
    others = [await pool.run(f"victim-{i}", ECHO, i, 3000) for i in range(3)]
    assert [r.output for r in others] == [0, 1, 2]
    assert (await pool.run("patcher", patcher, None, 3000, policy=False)).output == "forged"


async def test_a_worker_that_dies_is_replaced_and_bystanders_answer(pool: SandboxPool) -> None:
    crash = "import os\ndef run(input):\n    os.abort()\n"
    bystander = asyncio.create_task(pool.run("calm", ECHO, "calm", 5000))
    result = await pool.run("crash", crash, None, 3000, policy=False)
    assert result.status == "error" and "worker died (signal SIGABRT)" in (
        result.error_message or ""), result
    assert (await bystander).output == "calm"
    assert (await pool.run("crash", ECHO, None, 3000)).status in ("error", "success")
    assert (await pool.run("calm", ECHO, "still", 3000)).output == "still"


async def test_the_environment_is_empty_even_with_secrets_in_the_servers(
        pool: SandboxPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPAI_TOKEN_SECRET", "server-secret-value")
    fresh = SandboxPool(workers=1)
    await fresh.start()
    try:
        code = "import os\ndef run(input):\n    return dict(os.environ)\n"
        assert (await fresh.run("env", code, None, 3000, policy=False)).output == {}
    finally:
        await fresh.close()


async def test_the_known_policy_bypass_meets_the_walls(pool: SandboxPool) -> None:
    """The string.Formatter bypass, run past the policy: real builtins, then nothing."""
    code = ("import string\n"
            "def run(input):\n"
            "    b = string.Formatter().get_field('0.__globals__',"
            " [string.Formatter.get_field], {})[0]['__builtins__']\n"
            "    imp = b['__import__'] if isinstance(b, dict) else b.__import__\n"
            "    os = imp('os')\n"
            "    try:\n"
            "        return open('/etc/passwd').read()\n"
            "    except OSError as exc:\n"
            "        return ['refused', exc.errno, os.getuid() == input]\n")
    result = await pool.run("bypass", code, os.getuid(), 3000, policy=False)
    assert result.status == "success", result
    assert result.output[:2] == ["refused", 1]
    if ROOT:
        assert result.output[2] is False  # and it is not the server's uid either
