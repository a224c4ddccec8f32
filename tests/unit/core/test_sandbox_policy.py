"""The compile-time rules: what a program may contain, and the metrics of what it is."""

from __future__ import annotations

import pytest

from loopai.core.sandbox import ProgramRejected, check_program


def rejected(code: str) -> list[str]:
    with pytest.raises(ProgramRejected) as info:
        check_program(code)
    return info.value.details


def test_a_plain_program_passes_with_its_metrics() -> None:
    code = (
        "import re\n"
        "from collections import Counter\n"
        "\n"
        "# counts words\n"
        "def run(input):\n"
        "    words = [w for w in re.findall(r'\\w+', input['text']) if len(w) > 2]\n"
        "    if not words or input.get('empty'):\n"
        "        return {'top': None}\n"
        "    return {'top': Counter(words).most_common(1)[0][0]}\n"
    )
    info = check_program(code)
    assert info.entrypoint == "run"
    assert info.lines_of_code == 7
    # 1 + comprehension + its if + the if + the `or`
    assert info.cyclomatic_complexity == 5


def test_classify_is_an_entry_point() -> None:
    assert check_program("def classify(text):\n    return 'spam'\n").entrypoint == "classify"


@pytest.mark.parametrize(("code", "needle"), [
    ("import os\ndef run(x):\n    return os.fork()\n", "import of 'os'"),
    ("import socket\ndef run(x):\n    return 1\n", "import of 'socket'"),
    ("from subprocess import run as r\ndef run(x):\n    return 1\n", "import from 'subprocess'"),
    ("import json.decoder\ndef run(x):\n    return 1\n", "import of 'json.decoder'"),
    ("from . import x\ndef run(x):\n    return 1\n", "relative imports"),
    ("def run(x):\n    return open('/etc/passwd').read()\n", "use of 'open'"),
    ("def run(x):\n    return ().__class__.__base__.__subclasses__()\n", "'__class__'"),
    ("def run(x):\n    return __import__('os').system('id')\n", "'__import__'"),
    ("def run(x):\n    return __builtins__\n", "'__builtins__'"),
    ("def run(x):\n    return getattr(x, '__class__')\n", "use of 'getattr'"),
    ("def run(x):\n    return eval('1')\n", "use of 'eval'"),
    ("def run(x):\n    g = (i for i in [])\n    return g.gi_frame.f_back\n", "'gi_frame'"),
    ("def run(x):\n    return x._private\n", "'_private'"),
    ("async def run(x):\n    return 1\n", "async functions"),
])
def test_hostile_constructs_are_refused_with_the_line(code: str, needle: str) -> None:
    details = rejected(code)
    assert any(needle in d and d.startswith("line ") for d in details), details


def test_every_problem_is_reported_not_just_the_first() -> None:
    details = rejected("import os\nimport sys\ndef run(x):\n    return open(x)\n")
    assert len(details) == 3


def test_syntax_errors_and_missing_entry_points_say_so() -> None:
    assert rejected("def run(x) return 1")[0].startswith("line 1:")
    assert "run(input) or classify(text)" in rejected("def main(x):\n    return 1\n")[0]


@pytest.mark.parametrize(("code", "needle"), [
    # string.Formatter resolves "0.__globals__" to the function's real globals.
    ("import string\ndef run(x):\n    return string.Formatter().get_field("
     "'0.__globals__', [string.Formatter.get_field], {})[0]['__builtins__']\n", "'Formatter'"),
    ("from string import Formatter\ndef run(x):\n"
     "    return Formatter().get_field('0.__class__', [x], {})\n", "'get_field'"),
    ("import string\ndef run(x):\n    f = string.Formatter\n"
     "    return f().vformat('{0}', [x], {})\n", "'Formatter'"),
    # Class patterns read attributes without an attribute node.
    ("def run(x):\n    match x:\n        case object(__class__=c):\n            return c\n",
     "matching on attribute '__class__'"),
])
def test_known_bypasses_are_refused_at_upload(code: str, needle: str) -> None:
    details = rejected(code)
    assert any(needle in d for d in details), details
