"""The offline examples generator: learned programs pass the policy, generalise, and say no
to tasks they cannot learn."""

from __future__ import annotations

from typing import Any

import pytest

from loopai.core.generation.examples import NEEDED, LearnedProgram, UnsupportedTask, learn
from loopai.core.sandbox.policy import check_program
from loopai.core.sandbox.worker import Program
from tests.support import datasets

TRAIN_SMALL = 5
TRAIN_LARGE = 200
HELD_OUT = 200


def run_of(code: str) -> Any:
    scope: dict[str, Any] = {}
    exec(code, scope)
    return scope["run"]


def accuracy(code: str, cases: list[tuple[Any, str]]) -> float:
    run = run_of(code)
    return sum(run(value) == label for value, label in cases) / len(cases)


@pytest.fixture(scope="module")
def learned() -> dict[tuple[str, int], tuple[LearnedProgram, list[Any], list[Any]]]:
    out = {}
    for name in datasets.NAMES:
        train, held = datasets.split(name, TRAIN_LARGE, HELD_OUT, seed=0)
        input_schema, output_schema = datasets.schemas(name)
        for size in (TRAIN_SMALL, TRAIN_LARGE):
            out[name, size] = (learn(train[:size], input_schema, output_schema),
                               train[:size], held)
    return out


@pytest.mark.parametrize("name", datasets.NAMES)
def test_generalises_from_a_couple_of_hundred_cases(name: str, learned: Any) -> None:
    small, _, held = learned[name, TRAIN_SMALL]
    large, train, _ = learned[name, TRAIN_LARGE]
    assert not {value["text"] for value, _ in train} & {value["text"] for value, _ in held}
    few, many = accuracy(small.code, held), accuracy(large.code, held)
    print(f"\n{name}: {TRAIN_SMALL} cases -> {few:.3f}, {TRAIN_LARGE} cases -> {many:.3f} "
          f"({large.strategy}, {large.features} features)")
    assert many >= 0.9
    assert few < many - 0.2


@pytest.mark.parametrize("name", datasets.NAMES)
@pytest.mark.parametrize("size", [TRAIN_SMALL, TRAIN_LARGE])
def test_programs_pass_the_policy_and_reproduce_training_accuracy(
        name: str, size: int, learned: Any) -> None:
    program, train, held = learned[name, size]
    info = check_program(program.code)
    assert info.entrypoint == "run"
    assert accuracy(program.code, train) == program.training_accuracy
    assert program.features <= 300
    assert program.code.startswith("# Learned offline")
    # Under the worker's restricted builtins and module proxies, the same answers.
    sandboxed, run = Program(program.code), run_of(program.code)
    assert all(sandboxed(value) == run(value) for value, _ in held[:50])


def test_same_cases_same_code() -> None:
    cases = datasets.dataset("tickets", 80, seed=3)
    schemas = datasets.schemas("tickets")
    first, second = learn(cases, *schemas), learn(list(cases), *schemas)
    assert first.code == second.code
    assert first.metadata == second.metadata


def test_string_inputs_and_object_inputs() -> None:
    cases = datasets.dataset("language", 120, seed=4)
    held = datasets.dataset("language", 100, seed=5)
    _, output_schema = datasets.schemas("language")
    as_strings = learn([(value["text"], label) for value, label in cases],
                       {"type": "string"}, output_schema)
    assert as_strings.metadata["input_field"] is None
    assert accuracy(as_strings.code, [(v["text"], label) for v, label in held]) >= 0.9
    assert run_of(as_strings.code)({"text": "hola"}) in as_strings.labels  # no crash
    # The text in a property named like text, next to another string property.
    schema = {"type": "object", "properties": {"body": {"type": "string"},
                                               "customer": {"type": "string"},
                                               "priority": {"type": "integer"}}}
    as_objects = learn([({"body": v["text"], "customer": "c1", "priority": 2}, label)
                        for v, label in cases], schema, output_schema)
    assert as_objects.metadata["input_field"] == "body"
    assert accuracy(as_objects.code, [({"body": v["text"]}, label) for v, label in held]) >= 0.9
    assert run_of(as_objects.code)({"customer": "x"}) in as_objects.labels
    # Plain string outputs (no enum) work the same; labels are the outputs seen.
    plain = learn(cases, {"type": "object", "properties": {"text": {"type": "string"}}},
                  {"type": "string"})
    assert sorted(plain.labels) == plain.labels == sorted(datasets.labels("language"))


def test_enum_labels_never_seen_are_never_predicted() -> None:
    cases = [c for c in datasets.dataset("tickets", 150, seed=6) if c[1] != "shipping"]
    input_schema, output_schema = datasets.schemas("tickets")
    program = learn(cases, input_schema, output_schema)
    assert program.labels == ["billing", "technical", "account"]
    assert program.metadata["unseen_labels"] == ["shipping"]
    assert "'shipping'" not in program.code.split("# Never answered")[1].split("\n", 1)[1]
    run = run_of(program.code)
    shipping = [v for v, label in datasets.dataset("tickets", 200, seed=7)
                if label == "shipping"]
    assert {run(value) for value in shipping} <= set(program.labels)


def test_ties_go_to_the_first_label() -> None:
    cases = [("good day", "yes"), ("bad day", "no"), ("good", "yes"), ("bad", "no")]
    program = learn(cases, {"type": "string"}, {"enum": ["yes", "no"]})
    run = run_of(program.code)
    assert run("") == run("zzz unknown words") == max(
        program.labels, key=lambda label: (run_of(program.code).__globals__["BIAS"][label],
                                           -program.labels.index(label)))
    assert run("good") == "yes" and run("bad") == "no"


TEXT = {"type": "object", "properties": {"text": {"type": "string"}}}
LABELS = {"enum": ["a", "b"]}
AB = [({"text": "alpha"}, "a"), ({"text": "beta"}, "b")]


@pytest.mark.parametrize(("cases", "input_schema", "output_schema", "says"), [
    ([({"text": "x"}, 1.5), ({"text": "y"}, 2.0)], TEXT, {"type": "number"}, "number"),
    ([({"text": "x"}, {"a": 1}), ({"text": "y"}, {"a": 2})], TEXT, {"type": "object"},
     "object"),
    ([({"text": f"question {i}"}, f"a long, different answer {i}") for i in range(10)],
     TEXT, {"type": "string"}, "free text"),
    ([({"text": "x"}, "a"), ({"text": "y"}, "a")], TEXT, LABELS, "single label"),
    ([({"n": 1}, "a"), ({"n": 2}, "b")],
     {"type": "object", "properties": {"n": {"type": "integer"}}}, LABELS, "no string"),
    ([(1, "a"), (2, "b")], {"type": "integer"}, LABELS, "integer"),
    ([({"title": "x", "note": "y"}, "a"), ({"title": "z", "note": "w"}, "b")],
     {"type": "object", "properties": {"title": {"type": "string"},
                                       "note": {"type": "string"}}}, LABELS, "several"),
    (AB, TEXT, {"type": "boolean"}, "boolean"),
    (AB, TEXT, {"enum": [1, 2]}, "string labels"),
    (AB, TEXT, {"const": "a"}, "constant"),
])
def test_unsupported_shapes_say_what_they_need(cases: Any, input_schema: Any,
                                              output_schema: Any, says: str) -> None:
    with pytest.raises(UnsupportedTask) as info:
        learn(cases, input_schema, output_schema)
    assert info.value.needed == NEEDED
    assert "LLM backend" in str(info.value)
    assert says in info.value.message


def test_cases_that_break_the_schema_are_errors_not_guesses() -> None:
    with pytest.raises(ValueError, match="outside the output schema's enum"):
        learn([*AB, ({"text": "gamma"}, "c")], TEXT, LABELS)
    with pytest.raises(ValueError, match="not an object with a string 'text'"):
        learn([*AB, ({"text": 3}, "a")], TEXT, LABELS)
