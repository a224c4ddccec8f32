"""What a chat model is told, and how its program is taken out of its reply (pure functions).

`build_messages(request)` is the conversation's start: a system prompt with the sandbox's
rules (from `sandbox.policy`, so the prompt and the check never disagree) and a user message
with the task, its schemas, its known cases (at most `MAX_CASES`, each value cut to
`MAX_VALUE_CHARS`) and, on regeneration, the cases the current program gets wrong and that
program. `follow_up(report)` is what is said after an attempt that broke the policy or got
cases wrong; `NO_CODE_FOLLOW_UP` after a reply with no program in it. `extract_code(reply)`
finds the program in a reply: a ```python block, another fenced block, a reply that is code,
or code in the middle of prose.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import msgspec

from loopai.core.generation.base import CheckReport, FailedCase, GenerationRequest
from loopai.core.sandbox.policy import ALLOWED_MODULES, ALLOWED_SUBMODULES, DENIED_NAMES

MAX_CASES = 50
"""Known cases shown to the model; the rest are still checked."""
MAX_FAILURES = 20
"""Failing cases shown on regeneration and after a failed attempt."""
MAX_VALUE_CHARS = 400
"""A case's input or output is cut to this many characters of JSON."""
MAX_SCHEMA_CHARS = 4000
MAX_CODE_CHARS = 12_000

_MODULES = ", ".join(sorted(ALLOWED_MODULES | ALLOWED_SUBMODULES))

SYSTEM_PROMPT = f"""\
You write small, deterministic Python 3.11 programs that replace calls to a language model.
The program runs in a sandbox, and a program that breaks any of these rules is rejected
before it runs:

- Define a top-level function `def run(input)`. It receives the task's input, already
  decoded from JSON (dict, list, str, int, float, bool or None), and returns a value that
  can be encoded as JSON and matches the task's output schema.
- Import only these standard-library modules: {_MODULES}.
  Nothing else (no third-party packages, no os, sys, io, subprocess, socket, random, time).
- No name or attribute may start with an underscore: no `_helper`, no `__init__`, no
  `__class__`, no dunder methods at all (so use plain functions, dicts and tuples rather
  than classes with special methods).
- Do not use: {", ".join(sorted(DENIED_NAMES))}; no async code, no `global` or `nonlocal`.
- No I/O of any kind: no files, network, environment, clock or console (no print or
  input). The same input must always give the same output.
- Keep it fast: a call has a few seconds of CPU and a few hundred MB of memory.

Reply with the complete program in a single ```python fenced block."""

NO_CODE_FOLLOW_UP = ("I could not find a program in your reply. Reply with the complete "
                     "program, defining `def run(input)`, in a single ```python fenced block.")


def build_messages(request: GenerationRequest) -> list[dict[str, str]]:
    """The chat messages that start a generation (system prompt, then the task)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task_message(request)}]


def task_message(request: GenerationRequest) -> str:
    parts = [f"Task: {request.task_name}",
             f"Description:\n{request.description.strip() or '(none)'}",
             f"Input schema (JSON Schema):\n{_json(request.input_schema, MAX_SCHEMA_CHARS)}",
             f"Output schema (JSON Schema):\n{_json(request.output_schema, MAX_SCHEMA_CHARS)}"]
    if request.constraints:
        parts.append(f"Constraints:\n{_json(request.constraints, MAX_SCHEMA_CHARS)}")
    cases = request.cases[:MAX_CASES]
    if cases:
        shown = (f"{len(cases)} of {len(request.cases)}" if len(cases) < len(request.cases)
                 else str(len(cases)))
        lines = [f"Known cases ({shown}); `run(input)` must return exactly `output`:"]
        for number, case in enumerate(cases, 1):
            lines.append(f"{number}. input: {_json(case.input)}\n   output: {_json(case.output)}")
        parts.append("\n".join(lines))
    else:
        parts.append("No known cases: follow the description and the output schema.")
    if request.failures or request.previous_code:
        if request.failures:
            parts.append("The current program gets these known cases wrong:\n"
                         + _failures(request.failures))
        if request.previous_code:
            parts.append("The current program:\n```python\n"
                         f"{_cut(request.previous_code.strip(), MAX_CODE_CHARS)}\n```")
        parts.append("Write a corrected program that keeps what the current one gets right.")
    else:
        parts.append("Write the program.")
    return "\n\n".join(parts)


def follow_up(report: CheckReport) -> str:
    """What the model is told after an attempt that was rejected or got cases wrong."""
    if report.rejected is not None:
        return ("Your program was rejected by the sandbox before it ran:\n"
                f"{_cut(report.rejected, 2000)}\n\n"
                "Fix every problem listed, keeping to the rules, and reply with the complete "
                "corrected program in a single ```python fenced block.")
    text = f"Your program passed {report.passed} of {report.total} known cases."
    if report.failures:
        text += " It got these wrong:\n" + _failures(report.failures)
    return (text + "\n\nReply with the complete corrected program in a single ```python "
            "fenced block.")


def _failures(failures: list[FailedCase]) -> str:
    lines = []
    for number, failure in enumerate(failures[:MAX_FAILURES], 1):
        line = f"{number}. input: {_json(failure.input)}\n   expected: {_json(failure.expected)}"
        if failure.error is not None:
            line += f"\n   error: {_cut(failure.error, MAX_VALUE_CHARS)}"
        else:
            line += f"\n   actual: {_json(failure.actual)}"
        lines.append(line)
    if len(failures) > MAX_FAILURES:
        lines.append(f"(and {len(failures) - MAX_FAILURES} more)")
    return "\n".join(lines)


def _json(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… (truncated, {len(text)} chars)"


# --- taking the program out of a reply

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)",
                    re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_RUN = re.compile(r"^\s*def\s+run\s*\(", re.MULTILINE)
_CODE_START = re.compile(r"^(?:def\s|import\s|from\s+[\w.]+\s+import\s|@|class\s|#)")


def extract_code(reply: str) -> str | None:
    """The program in a model's reply, or None: the first ```python block that defines
    `run`, else the first fenced block that does, else code found in the text itself (the
    whole reply, or the longest stretch that parses and defines `run`)."""
    blocks = [(tag.lower(), body) for _, tag, body in _FENCE.findall(reply)]
    with_run = [(tag, body) for tag, body in blocks if _RUN.search(body)]
    for tag, body in with_run:
        if tag in _PYTHON_TAGS:
            return _tidy(body)
    if with_run:
        return _tidy(with_run[0][1])
    text = reply.strip()
    if not _RUN.search(text):
        return None
    if _CODE_START.match(text) and _parses(text):
        return _tidy(text)
    return _code_in_prose(reply)


def _code_in_prose(reply: str) -> str | None:
    lines = reply.splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    run_lines = [i for i, line in enumerate(lines) if _RUN.match(line)]
    for start in starts:
        if not any(i >= start for i in run_lines):
            break
        for end in range(len(lines), start, -1):
            chunk = "\n".join(lines[start:end])
            if _RUN.search(chunk) and _parses(chunk):
                return _tidy(chunk)
    return None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _tidy(code: str) -> str:
    return textwrap.dedent(code).strip("\n") + "\n"
