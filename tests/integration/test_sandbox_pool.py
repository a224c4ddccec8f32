"""Real worker processes: programs run, hostile ones end as error or timeout, the pool heals,
and nobody else's call is disturbed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loopai.core.sandbox import SandboxPool
from loopai.core.sandbox.policy import check_program

CLASSIFY = (
    "import re\n"
    "def classify(text):\n"
    "    return 'positive' if re.search(r'good|love', text) else 'negative'\n"
)
ECHO = "def run(input):\n    return input\n"


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    sandbox = SandboxPool(workers=2, memory_mb=256, cpu_seconds=5, max_output_bytes=100_000)
    await sandbox.start()
    yield sandbox
    await sandbox.close()


async def test_runs_a_program_and_caches_it_per_worker(pool: SandboxPool) -> None:
    first = await pool.run("p1", CLASSIFY, {"text": "I love it"}, 1000)
    assert (first.status, first.output, first.cache_hit) == ("success", "positive", False)
    assert first.memory_usage_mb is not None and first.memory_usage_mb > 0
    results = [await pool.run("p1", CLASSIFY, "meh", 1000) for _ in range(3)]
    assert [r.output for r in results] == ["negative"] * 3
    assert any(r.cache_hit for r in results)  # two workers: by the third call, one has it


async def test_classify_needs_text(pool: SandboxPool) -> None:
    result = await pool.run("p1", CLASSIFY, {"words": 1}, 1000)
    assert result.status == "error" and "'text'" in (result.error_message or "")


async def test_allowed_modules_are_usable_but_hide_their_module_references(
        pool: SandboxPool) -> None:
    ok = await pool.run("stats", "import statistics\ndef run(x):\n    return statistics.mean(x)\n",
                        [1, 2, 3], 1000)
    assert (ok.status, ok.output) == ("success", 2)
    # statistics imports sys; the proxy a program gets has no `sys` on it.
    escape = ("import statistics\n"
              "def run(x):\n    return statistics.sys.modules['os'].getcwd()\n")
    result = await pool.run("esc", escape, None, 1000)
    assert result.status == "error" and "has no attribute 'sys'" in (result.error_message or "")


async def test_programs_get_the_whole_allow_list(pool: SandboxPool) -> None:
    code = (
        "import datetime, json, statistics, difflib, unicodedata, string, itertools, math\n"
        "import collections.abc\n"
        "from collections import Counter\n"
        "from collections.abc import Mapping\n"
        "from functools import reduce\n"
        "def run(input):\n"
        "    day = datetime.datetime.strptime(input['date'], '%Y-%m-%d').strftime('%A')\n"
        "    return [day, statistics.mean([1, 2, 6]), Counter('hello').most_common(1)[0][0],\n"
        "            isinstance({}, Mapping), isinstance({}, collections.abc.Mapping),\n"
        "            reduce(lambda a, b: a * b, range(1, 5)), unicodedata.category('a'),\n"
        "            round(difflib.SequenceMatcher(None, 'abc', 'abd').ratio(), 2),\n"
        "            json.loads('[1]'), string.digits[:3], list(itertools.islice('xyz', 2)),\n"
        "            math.floor(2.5)]\n"
    )
    result = await pool.run("allowed", code, {"date": "2026-11-24"}, 2000)
    assert result.output == ["Tuesday", 3, "l", True, True, 24, "Ll", 0.67, [1], "012",
                             ["x", "y"], 2], result


HOSTILE = {
    "infinite loop": ("def run(x):\n    while True:\n        pass\n", "timeout", "timed out"),
    "loop that swallows the timer": (
        "def run(x):\n    n = 0\n    while True:\n        try:\n            while True:\n"
        "                n += 1\n        except:\n            n = 0\n",
        "timeout", "worker replaced"),
    "memory bomb": ("def run(x):\n    return 'x' * (10 ** 10)\n", "error", "MemoryError"),
    "growing memory bomb": ("def run(x):\n    a = []\n    while True:\n"
                            "        a.append(' ' * 10 ** 6)\n", "error", "MemoryError"),
    "huge output": ("def run(x):\n    return 'x' * 10 ** 6\n", "error", "output too large"),
    "deep recursion": ("def run(x):\n    return run(x)\n", "error", "RecursionError"),
    "raises": ("def run(x):\n    raise ValueError('nope')\n", "error", "ValueError: nope"),
    "not JSON": ("def run(x):\n    return object()\n", "error", "output is not JSON"),
    "exits": ("def run(x):\n    raise SystemExit(3)\n", "error", "SystemExit"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_programs_end_cleanly_and_the_pool_heals(pool: SandboxPool,
                                                               name: str) -> None:
    code, status, needle = HOSTILE[name]
    check_program(code)  # these pass the compile-time rules: the runtime must stop them
    bystander = asyncio.create_task(pool.run("echo", ECHO, {"n": 1}, 5000))
    # Filling 256 MiB a megabyte at a time took over 400 ms on a slow VM.
    timeout_ms = 5000 if name == "growing memory bomb" else 400
    result = await pool.run(f"hostile-{name}", code, None, timeout_ms)
    assert result.status == status, result
    assert needle in (result.error_message or ""), result
    assert (await bystander).output == {"n": 1}
    after = [await pool.run("echo", ECHO, i, 5000) for i in range(4)]
    assert [r.output for r in after] == [0, 1, 2, 3]
    await asyncio.sleep(0)
    assert pool.stats()["workers"] + (1 if "replaced" in needle else 0) >= 2


async def test_runtime_refusals_when_a_program_skips_the_upload_check(pool: SandboxPool) -> None:
    """The worker checks again: code reaching it some other way gets the same rules."""
    for i, (code, needle) in enumerate([
        ("import os\ndef run(x):\n    return os.fork()\n", "import of 'os'"),
        ("def run(x):\n    return open('/etc/passwd').read()\n", "use of 'open'"),
        ("import socket\ndef run(x):\n    return socket.socket()\n", "import of 'socket'"),
        ("def run(x):\n    return ().__class__.__base__.__subclasses__()\n", "'__class__'"),
    ]):
        result = await pool.run(f"raw-{i}", code, None, 1000)
        assert result.status == "error" and needle in (result.error_message or ""), result


async def test_a_dead_worker_is_reported_and_replaced(pool: SandboxPool) -> None:
    """A program that kills its own worker (the one signal it may send) gets the death
    reported; the next call gets a fresh worker."""
    suicide = "import os\ndef run(x):\n    os.kill(os.getpid(), 9)\n"
    result = await pool.run("suicide", suicide, None, 2000, policy=False)
    assert result.status == "error" and "worker died (signal SIGKILL)" in (
        result.error_message or ""), result
    echo = await pool.run("suicide-echo", ECHO, "ok", 2000)
    assert echo.output == "ok"
    again = await pool.run("suicide", suicide, None, 2000, policy=False)
    assert "worker died" in (again.error_message or "")
    assert pool.stats()["restarts"] == 2


async def test_one_program_per_worker_and_warm_reuse(pool: SandboxPool) -> None:
    """Calls of one program reuse its warm worker; another program never shares it."""
    pid = "import os\ndef run(x):\n    return os.getpid()\n"
    a = [await pool.run("pid-a", pid, None, 2000, policy=False) for _ in range(3)]
    b = await pool.run("pid-b", pid, None, 2000, policy=False)
    assert len({r.output for r in a}) == 1 and [r.cache_hit for r in a] == [False, True, True]
    assert b.output != a[0].output


async def test_cold_workers_are_evicted() -> None:
    sandbox = SandboxPool(workers=2, warm_workers=3)
    await sandbox.start()
    try:
        for i in range(6):
            assert (await sandbox.run(f"p{i}", ECHO, i, 2000)).output == i
        stats = sandbox.stats()
        assert stats["workers"] <= 3 and stats["evicted"] >= 3, stats
    finally:
        await sandbox.close()


async def test_many_timeouts_in_a_row_leave_a_working_pool(pool: SandboxPool) -> None:
    loop = "def run(x):\n    n = 0\n    while True:\n        try:\n            n += 1\n" \
           "        except BaseException:\n            pass\n"
    results = await asyncio.gather(*(pool.run("loop", loop, None, 200) for _ in range(4)))
    assert {r.status for r in results} == {"timeout"}
    assert (await pool.run("echo", ECHO, [1], 5000)).output == [1]


async def test_calls_that_queue_share_round_trips_and_each_gets_its_own_answer() -> None:
    sandbox = SandboxPool(workers=2, memory_mb=256, cpu_seconds=5, task_concurrency=1)
    await sandbox.start()
    try:
        results = await asyncio.gather(*(sandbox.run("echo", ECHO, i, 5000, tenant="t")
                                         for i in range(40)))
        assert [r.output for r in results] == list(range(40))
        assert all(r.status == "success" for r in results)
        # One slot for the tenant: the 39 calls that queued behind the first went together.
        assert sandbox.stats()["round_trips"] < 10
    finally:
        await sandbox.close()


HANG_ON_7 = (
    "def run(n):\n"
    "    if n == 7:\n"
    "        while True:\n"
    "            try:\n"
    "                pass\n"
    "            except BaseException:\n"
    "                pass\n"
    "    return n\n"
)


async def test_a_call_that_hangs_its_worker_times_out_alone_and_the_rest_still_run() -> None:
    sandbox = SandboxPool(workers=2, memory_mb=256, cpu_seconds=5, task_concurrency=1)
    await sandbox.start()
    try:
        first = asyncio.ensure_future(sandbox.run("h", HANG_ON_7, 0, 5000, tenant="t"))
        results = await asyncio.gather(*(sandbox.run("h", HANG_ON_7, i,
                                                     1000 if i == 7 else 10_000, tenant="t")
                                         for i in range(1, 12)))
        assert (await first).output == 0
        by_input = dict(zip(range(1, 12), results, strict=True))
        assert by_input[7].status == "timeout"
        assert {i: r.output for i, r in by_input.items() if i != 7} == {
            i: i for i in range(1, 12) if i != 7}
    finally:
        await sandbox.close()


async def test_closing_the_pool_answers_every_waiting_call() -> None:
    sandbox = SandboxPool(workers=1, memory_mb=256, cpu_seconds=5, task_concurrency=1)
    await sandbox.start()
    slow = "def run(x):\n    n = 0\n    for i in range(10_000_000):\n        n += i\n    return x\n"
    calls = [asyncio.ensure_future(sandbox.run("s", slow, i, 10_000)) for i in range(5)]
    async with asyncio.timeout(10):  # until the first round trip is on a worker
        while sandbox.stats()["busy"] == 0:  # noqa: ASYNC110  (a poll with a deadline)
            await asyncio.sleep(0.01)
    await sandbox.close()
    results = await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert all(r.status == "error" and "closed" in (r.error_message or "") for r in results), \
        results


BURN = "def run(n):\n    return sum(i * i for i in range(n)) > 0\n"
SPIN_IN_C = ("import re\n"
             "def run(n):\n    return bool(re.match(r'(a+)+$', 'a' * n + 'b'))\n")


async def test_each_call_gets_its_cpu_budget_and_a_call_spinning_in_c_is_killed() -> None:
    """The kernel's CPU limit is renewed for every call (ten calls of ~0.2 s each use more
    than one budget), and it is what stops a call that the wall timer cannot interrupt (a
    regular expression backtracking in C, with a timeout far away)."""
    sandbox = SandboxPool(workers=1, memory_mb=256, cpu_seconds=1, task_concurrency=1)
    await sandbox.start()
    try:
        burns = [await sandbox.run("burn", BURN, 6_000_000, 10_000) for _ in range(10)]
        assert [(r.status, r.output) for r in burns] == [("success", True)] * 10
        assert sum(r.cache_hit for r in burns) == 9  # one worker ran them all
        started = asyncio.get_running_loop().time()
        spun = await sandbox.run("spin", SPIN_IN_C, 64, 30_000)
        assert spun.status == "error" and "SIGXCPU" in (spun.error_message or ""), spun
        assert asyncio.get_running_loop().time() - started < 15
    finally:
        await sandbox.close()
