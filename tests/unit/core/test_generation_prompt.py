"""The chat prompt and taking the program out of a model's reply (pure functions)."""

from __future__ import annotations

from loopai.core.generation.base import Case, CheckReport, FailedCase, GenerationRequest
from loopai.core.generation.prompt import (
    MAX_CASES,
    build_messages,
    extract_code,
    follow_up,
)

RUN = "def run(input):\n    return len(input)\n"


def test_a_python_block_wins_over_other_blocks() -> None:
    reply = ("Example input:\n```json\n{\"a\": 1}\n```\nThe program:\n```python\nimport re\n"
             f"{RUN}```\nUsage:\n```python\nprint(run('x'))\n```")
    assert extract_code(reply) == f"import re\n{RUN}"


def test_an_untagged_block_and_an_unclosed_block() -> None:
    assert extract_code(f"```\n{RUN}```") == RUN
    assert extract_code(f"Here:\n```py\n{RUN}") == RUN


def test_a_reply_that_is_code() -> None:
    assert extract_code(RUN) == RUN
    assert extract_code(f"import math\n\n{RUN}") == f"import math\n\n{RUN}"


def test_code_embedded_in_prose() -> None:
    reply = (f"Sure. The idea is simple.\n\nimport math\n\n{RUN}\n"
             "This returns the length. Let me know!")
    assert extract_code(reply) == f"import math\n\n{RUN}"


def test_no_program() -> None:
    assert extract_code("I can't help with that.") is None
    assert extract_code("```python\nprint('hi')\n```") is None
    assert extract_code("") is None


def test_known_cases_are_bounded_and_values_cut() -> None:
    cases = [Case(input="x" * 5000, output=i) for i in range(MAX_CASES + 30)]
    request = GenerationRequest(task_id="t", task_name="n", description="d",
                                input_schema={}, output_schema={}, cases=cases)
    system, user = build_messages(request)
    assert system["role"] == "system" and user["role"] == "user"
    assert f"({MAX_CASES} of {MAX_CASES + 30})" in user["content"]
    assert "truncated" in user["content"]
    assert len(user["content"]) < 40_000


def test_follow_ups() -> None:
    rejected = follow_up(CheckReport(passed=0, total=2, rejected="line 1: import of 'os'"))
    assert "rejected" in rejected and "'os'" in rejected
    wrong = follow_up(CheckReport(passed=1, total=2, failures=[
        FailedCase(input="a", expected=1, error="ZeroDivisionError")]))
    assert "passed 1 of 2" in wrong and "ZeroDivisionError" in wrong
