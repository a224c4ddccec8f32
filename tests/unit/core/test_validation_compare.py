"""Comparing an oracle's expected output with a program's: every method and failure type."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopai.core.validation.compare import CompareOptions, Comparison, Method, compare

EXACT = CompareOptions()
STRUCTURED = CompareOptions(method=Method.STRUCTURED)
NORMALIZED = CompareOptions(method=Method.NORMALIZED)
SET = CompareOptions(method=Method.SET)

NAN = float("nan")
INF = float("inf")


def structured(**kwargs: Any) -> CompareOptions:
    return CompareOptions(method=Method.STRUCTURED, **kwargs)


def deep(leaf: Any, depth: int, wrap: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if wrap == "list" else {"a": value}
    return value


# --- options ------------------------------------------------------------------------


def test_defaults_are_exact_without_tolerance() -> None:
    assert EXACT.method is Method.EXACT
    assert (EXACT.numeric_tolerance, EXACT.relative_tolerance) == (0.0, 0.0)
    assert EXACT.ignore_keys == () and EXACT.case_sensitive is False


def test_methods_are_strings_on_the_wire() -> None:
    assert [m.value for m in Method] == ["exact", "normalized", "structured", "set"]
    assert isinstance(Method.SET, str)
    raw = msgspec.json.encode(CompareOptions(method=Method.SET, ignore_keys=["id"]))
    decoded = msgspec.json.decode(raw, type=CompareOptions)
    assert decoded.method is Method.SET and decoded.ignore_keys == ("id",)


def test_options_refuse_unknown_fields_and_bad_tolerances() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"method": "exact", "tolerance": 1}', type=CompareOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"method": "fuzzy"}', type=CompareOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"numeric_tolerance": -1}', type=CompareOptions)
    for bad in (-0.1, NAN, INF):
        with pytest.raises(ValueError):
            CompareOptions(numeric_tolerance=bad)
        with pytest.raises(ValueError):
            CompareOptions(relative_tolerance=bad)


def test_default_options_compare_exactly() -> None:
    assert compare(1, 1).match
    assert not compare(" a", "a").match


# --- exact --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, True, False, 0, -3, 2.5, "", "text", [], {}, [1, [2, {"a": None}]],
    {"a": {"b": [True, "x", 1.5]}, "c": []}, 10**30,
])
def test_exact_equal_values_match(value: Any) -> None:
    assert compare(value, value) == Comparison(match=True, score=1.0)


def test_exact_int_and_float_of_equal_value_are_equal() -> None:
    assert compare(1, 1.0).match
    assert compare({"n": [2.0]}, {"n": [2]}).match
    assert compare(10**20, 1e20).match
    assert not compare(1, 1.0000001).match


@pytest.mark.parametrize(("expected", "actual"), [
    (True, 1), (1, True), (False, 0), (0, False), (1.0, True), ([True], [1]),
    ({"ok": True}, {"ok": 1}),
])
def test_exact_bools_are_not_numbers(expected: Any, actual: Any) -> None:
    result = compare(expected, actual)
    assert not result.match and result.failure_type == "type_mismatch"
    assert result.score == 0.0


def test_exact_key_order_does_not_matter_but_list_order_does() -> None:
    assert compare({"a": 1, "b": 2}, {"b": 2, "a": 1}).match
    result = compare([1, 2], [2, 1])
    assert result.failure_type == "value_mismatch"
    assert result.detail == "$[0]: expected 1, got 2"


def test_exact_mismatch_scores_zero_and_names_the_path() -> None:
    expected = {"items": [{"price": 1}, {"price": 2}, {"price": 3.5}]}
    actual = {"items": [{"price": 1}, {"price": 2}, {"price": 4}]}
    result = compare(expected, actual)
    assert result == Comparison(match=False, score=0.0, failure_type="value_mismatch",
                                detail="$.items[2].price: expected 3.5, got 4")


def test_exact_ignores_nothing_and_has_no_tolerance() -> None:
    options = CompareOptions(numeric_tolerance=1.0, ignore_keys=["id"])
    assert not compare(1.0, 1.5, options).match
    assert compare({"id": 1}, {"id": 2}, options).failure_type == "value_mismatch"


def test_exact_strings_are_case_and_space_sensitive() -> None:
    assert compare("Yes", "yes").failure_type == "value_mismatch"
    assert compare("yes", "yes ").detail == '$: expected "yes", got "yes "'


# --- failure types ------------------------------------------------------------------


@pytest.mark.parametrize("method", list(Method))
def test_missing_output(method: Method) -> None:
    options = CompareOptions(method=method)
    for actual in (None, msgspec.UNSET):
        result = compare({"label": "spam"}, actual, options)
        assert result.failure_type == "missing_output" and result.score == 0.0
        assert result.detail is not None and result.detail.startswith("$: no output")
    assert compare(None, None, options).match
    assert compare(None, msgspec.UNSET, options).failure_type == "missing_output"


def test_nested_null_is_a_type_mismatch_not_missing_output() -> None:
    result = compare({"a": 1}, {"a": None}, STRUCTURED)
    assert result.failure_type == "type_mismatch"
    assert result.detail == "$.a: expected number 1, got null"
    assert compare({"a": None}, {"a": 0}).failure_type == "type_mismatch"
    assert compare(None, 0).failure_type == "type_mismatch"


@pytest.mark.parametrize(("expected", "actual", "failure", "detail"), [
    ({"a": 1, "b": 2}, {"a": 1}, "missing_key", "$.b: missing (expected 2)"),
    ({"a": 1}, {"a": 1, "z": True}, "extra_key", "$.z: unexpected key (got true)"),
    ([1, 2, 3], [1, 2], "length_mismatch", "$: expected 3 items, got 2"),
    ([1], [1, 2], "length_mismatch", "$: expected 1 item, got 2"),
    ({"n": 1}, {"n": "1"}, "type_mismatch", '$.n: expected number 1, got string "1"'),
    ({"n": [1]}, {"n": {}}, "type_mismatch",
     "$.n: expected array [1 item], got object {0 keys}"),
    ("a", "b", "value_mismatch", '$: expected "a", got "b"'),
    ({"weird key": 1}, {"weird key": 2}, "value_mismatch",
     '$["weird key"]: expected 1, got 2'),
])
def test_each_failure_type(expected: Any, actual: Any, failure: str, detail: str) -> None:
    for options in (EXACT, STRUCTURED):
        result = compare(expected, actual, options)
        assert (result.match, result.failure_type, result.detail) == (False, failure, detail)


def test_the_first_difference_in_document_order_is_reported() -> None:
    expected = {"a": {"x": 1}, "b": 2, "c": 3}
    actual = {"a": {"x": 9}, "c": 3, "extra": 1}
    assert compare(expected, actual, STRUCTURED).detail == "$.a.x: expected 1, got 9"
    actual = {"a": {"x": 1}, "c": 3, "extra": 1}
    assert compare(expected, actual, STRUCTURED).failure_type == "missing_key"
    actual = {"a": {"x": 1}, "b": 2, "c": 3, "extra": 1}
    assert compare(expected, actual, STRUCTURED).failure_type == "extra_key"


def test_length_mismatch_is_reported_at_the_array_before_its_elements() -> None:
    result = compare({"xs": [1, 2, 3]}, {"xs": [9, 2]}, STRUCTURED)
    assert result.failure_type == "length_mismatch"
    assert result.detail == "$.xs: expected 3 items, got 2"


def test_long_values_are_shortened_in_the_detail() -> None:
    result = compare("x" * 1000, "y" * 1000)
    assert result.detail is not None and len(result.detail) < 200


# --- structured ---------------------------------------------------------------------


def test_structured_score_is_the_share_of_matching_leaves() -> None:
    expected = {"a": 1, "b": 2, "c": 3, "d": 4}
    assert compare(expected, {"a": 1, "b": 2, "c": 3, "d": 5}, STRUCTURED).score == 0.75
    # A missing key counts its expected leaves, an extra one the output's.
    assert compare({"a": 1, "b": [1, 2]}, {"a": 1}, STRUCTURED).score == pytest.approx(1 / 3)
    assert compare({"a": 1}, {"a": 1, "b": 1}, STRUCTURED).score == 0.5
    # A type mismatch counts the expected subtree's leaves as wrong.
    assert compare({"a": 1, "b": [1, 2, 3]}, {"a": 1, "b": "x"},
                   STRUCTURED).score == 0.25
    # Extra array items count as wrong leaves.
    assert compare([1, 2], [1, 2, 3, 4], STRUCTURED).score == 0.5
    assert compare([], [1], STRUCTURED).score == 0.0


def test_structured_empty_containers_are_leaves() -> None:
    assert compare({"a": [], "b": {}}, {"a": [], "b": {}}, STRUCTURED).match
    assert compare({"a": [], "b": 1}, {"a": [], "b": 2}, STRUCTURED).score == 0.5


def test_structured_scores_stay_in_range_and_below_one_on_mismatch() -> None:
    cases = [({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": 1}), ([1], []), ({}, {"a": 1}),
             ("a", 1), ([[1, 2]], [[1, 2], 3])]
    for expected, actual in cases:
        result = compare(expected, actual, STRUCTURED)
        assert not result.match and 0.0 <= result.score < 1.0


@pytest.mark.parametrize(("tolerance", "expected", "actual", "match"), [
    (0.01, 1.0, 1.01, True),
    (0.01, 1.0, 0.99, True),
    (0.01, 1.0, 1.0101, False),
    (0.5, 10, 10.5, True),
    (0.5, 10, 9.4, False),
    (0.0, 0.1 + 0.2, 0.3, False),
    (1e-9, 0.1 + 0.2, 0.3, True),
    (1, 10**20, 10**20 + 1, True),
    (1, 10**20, 10**20 + 2, False),
])
def test_absolute_tolerance(tolerance: float, expected: Any, actual: Any, match: bool) -> None:
    assert compare(expected, actual, structured(numeric_tolerance=tolerance)).match is match


@pytest.mark.parametrize(("tolerance", "expected", "actual", "match"), [
    (0.01, 100, 101, True),
    (0.01, 100, 98.9, False),
    (0.01, 1e-12, 1.01e-12, True),
    (0.1, 0, 0.0001, False),
    (0.0, 100, 100.0, True),
])
def test_relative_tolerance(tolerance: float, expected: Any, actual: Any, match: bool) -> None:
    assert compare(expected, actual, structured(relative_tolerance=tolerance)).match is match


def test_either_tolerance_is_enough() -> None:
    options = structured(numeric_tolerance=0.001, relative_tolerance=0.01)
    assert compare(0.0, 0.0005, options).match
    assert compare(1000, 1009, options).match
    assert compare(1.0, 1.01, options).match
    assert not compare(1.0, 1.02, options).match


def test_tolerance_applies_at_depth_and_never_to_bools() -> None:
    options = structured(numeric_tolerance=0.1)
    assert compare({"p": [{"x": 1.0}]}, {"p": [{"x": 1.05}]}, options).match
    assert compare(True, 1, options).failure_type == "type_mismatch"
    assert compare(1, True, options).failure_type == "type_mismatch"


def test_tolerance_detail_names_the_values() -> None:
    result = compare({"price": 3.5}, {"price": 4}, structured(numeric_tolerance=0.1))
    assert result.detail == "$.price: expected 3.5, got 4"


def test_nan_and_infinity() -> None:
    for options in (EXACT, STRUCTURED, structured(numeric_tolerance=1e9,
                                                   relative_tolerance=1.0)):
        assert compare(NAN, NAN, options).match
        assert compare([NAN], [NAN], options).match
        assert compare(INF, INF, options).match
        assert compare(-INF, -INF, options).match
        assert not compare(INF, -INF, options).match
        assert not compare(NAN, 1.0, options).match
        assert not compare(1.0, NAN, options).match
        assert not compare(INF, 1e308, options).match
        assert not compare(1e308, INF, options).match
        assert not compare(NAN, INF, options).match
    result = compare({"x": NAN}, {"x": 1})
    assert result.detail == "$.x: expected NaN, got 1"
    assert compare(INF, -INF).detail == "$: expected Infinity, got -Infinity"


def test_huge_integers_do_not_overflow() -> None:
    options = structured(relative_tolerance=0.5)
    assert not compare(10**400, 1.0, options).match
    assert compare(10**400, 10**400, options).match
    assert not compare(10**400, 10**400 + 1).match


def test_ignore_keys_at_every_depth() -> None:
    options = structured(ignore_keys=["id", "ts"])
    expected = {"id": 1, "rows": [{"id": 7, "v": 1, "meta": {"ts": 5, "k": "a"}}]}
    actual = {"id": 2, "rows": [{"v": 1, "meta": {"k": "a", "ts": 99}, "id": None}]}
    assert compare(expected, actual, options).match
    # Present on one side only: neither missing nor extra.
    assert compare({"ts": 1, "a": 1}, {"a": 1}, options).match
    assert compare({"a": 1}, {"a": 1, "ts": {"deep": [1]}}, options).match
    # Ignored keys are not counted in the score.
    result = compare({"id": 1, "a": 1, "b": 2}, {"id": 3, "a": 1, "b": 3}, options)
    assert result.score == 0.5
    # An object left empty by the ignored keys is an empty object.
    assert compare({"x": {"id": 1}}, {"x": {}}, options).match
    assert compare({"x": {"id": 1}}, {"x": []}, options).failure_type == "type_mismatch"
    # Not ignored: a key of that name in the values, and other keys.
    assert not compare({"k": "id"}, {"k": "ts"}, options).match
    assert compare({"idx": 1}, {"idx": 2}, options).failure_type == "value_mismatch"


def test_structured_lists_are_ordered() -> None:
    assert compare([1, 2, 3], [3, 2, 1], STRUCTURED).score == pytest.approx(1 / 3)


def test_other_python_values_compare_by_equality() -> None:
    assert compare((1, 2), [1, 2], STRUCTURED).match
    assert compare({"x": b"a"}, {"x": b"a"}, STRUCTURED).match
    result = compare({"x": b"a"}, {"x": b"b"}, STRUCTURED)
    assert result.failure_type == "value_mismatch"
    assert compare({"x": b"a"}, {"x": "a"}).failure_type == "type_mismatch"


# --- normalized ---------------------------------------------------------------------


@pytest.mark.parametrize(("expected", "actual"), [
    ("Hello World", "  hello   world \n"),
    ("a\tb", "A  B"),
    ("Straße", "STRASSE"),
    ("".join(chr(ord(c) + 0xFEE0) for c in "fullwidth"), "fullwidth"),
    ("\ufb01le", "file"),  # the fi ligature
    ("café", "cafe\u0301"),
    ("", "   "),
])
def test_normalized_strings_match(expected: str, actual: str) -> None:
    assert compare(expected, actual, NORMALIZED).match
    assert not compare(expected, actual).match


def test_normalized_case_sensitive() -> None:
    options = CompareOptions(method=Method.NORMALIZED, case_sensitive=True)
    assert compare(" Hello  World", "Hello World", options).match
    result = compare("Hello", "hello", options)
    assert result.failure_type == "value_mismatch"
    assert result.detail == '$: expected "Hello", got "hello"'


def test_normalized_string_score_is_the_difflib_ratio() -> None:
    result = compare("Hello", "help", NORMALIZED)
    assert not result.match and result.failure_type == "value_mismatch"
    assert result.score == pytest.approx(2 * 3 / 9)
    assert compare("abc", "xyz", NORMALIZED).score == 0.0


def test_normalized_long_strings_stay_below_one_and_fast() -> None:
    expected = "ab" * 20_000
    actual = "ba" * 20_000
    result = compare(expected, actual, NORMALIZED)
    assert not result.match and 0.0 <= result.score < 1.0


def test_normalized_applies_to_every_string_leaf() -> None:
    expected = {"labels": ["Spam", "Not  Spam"], "note": {"text": "OK"}, "n": 1}
    actual = {"labels": ["spam ", "not spam"], "note": {"text": " ok"}, "n": 1.0}
    assert compare(expected, actual, NORMALIZED).match
    result = compare({"a": "x", "b": "Y"}, {"a": "X", "b": "z"}, NORMALIZED)
    assert result.detail == '$.b: expected "Y", got "z"' and result.score == 0.5


def test_normalized_structured_fallback_keeps_tolerance_and_ignore_keys() -> None:
    options = CompareOptions(method=Method.NORMALIZED, numeric_tolerance=0.1,
                             ignore_keys=["id"])
    assert compare({"id": 1, "v": 1.0, "s": "A"}, {"id": 2, "v": 1.05, "s": "a"},
                   options).match


def test_normalized_does_not_turn_types_into_strings() -> None:
    assert compare("1", 1, NORMALIZED).failure_type == "type_mismatch"
    assert compare("true", True, NORMALIZED).failure_type == "type_mismatch"
    assert compare(1, "1", NORMALIZED).failure_type == "type_mismatch"


# --- set ----------------------------------------------------------------------------


def test_set_ignores_order_and_duplicates() -> None:
    assert compare([1, 2, 3], [3, 1, 2], SET).match
    assert compare([1, 2, 2, 3], [3, 3, 2, 1, 1], SET).match
    assert compare([], [], SET).match
    assert compare(["a", "a"], ["a"], SET).match


def test_set_elements_compare_structurally() -> None:
    expected = [{"a": 1, "b": [1, 2]}, {"c": {"d": None}}]
    actual = [{"c": {"d": None}}, {"b": [1, 2], "a": 1}, {"a": 1.0, "b": [1.0, 2]}]
    assert compare(expected, actual, SET).match
    # Nested arrays keep their order.
    assert not compare([{"b": [1, 2]}], [{"b": [2, 1]}], SET).match


def test_set_keeps_bools_apart_from_numbers_and_strings() -> None:
    assert not compare([True], [1], SET).match
    assert not compare([1], [True], SET).match
    assert not compare([1], ["1"], SET).match
    assert not compare([None], [0], SET).match
    assert compare([True, 1, "1"], ["1", 1.0, True], SET).match


def test_set_score_is_the_jaccard_index() -> None:
    result = compare([1, 2, 3], [2, 3, 4], SET)
    assert not result.match and result.score == 0.5
    assert result.failure_type == "value_mismatch"
    assert result.detail == "$[0]: expected element 1 not in output (1 missing, 1 unexpected)"
    assert compare([1, 1, 2], [2, 2, 5], SET).score == pytest.approx(1 / 3)
    assert compare([1], [2], SET).score == 0.0
    assert compare([], [1], SET).score == 0.0


def test_set_reports_unexpected_elements_when_none_are_missing() -> None:
    result = compare([1, 2], [2, 1, {"x": 1}], SET)
    assert result.failure_type == "value_mismatch"
    assert result.detail == "$[2]: unexpected element {1 key} (0 missing, 1 unexpected)"
    assert result.score == pytest.approx(2 / 3)


def test_set_honours_ignore_keys_in_elements() -> None:
    options = CompareOptions(method=Method.SET, ignore_keys=["id"])
    assert compare([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}],
                   [{"v": "b", "id": 9}, {"v": "a"}], options).match
    # The same element once its ignored keys are gone: a duplicate.
    assert compare([{"id": 1, "v": 1}, {"id": 2, "v": 1}], [{"v": 1}], options).match


def test_set_with_tolerance_pairs_what_is_left() -> None:
    options = CompareOptions(method=Method.SET, numeric_tolerance=0.01)
    assert compare([1.0, 2.0, {"p": 3.0}], [{"p": 3.001}, 2.005, 1.0], options).match
    result = compare([1.0, 2.0], [1.0, 2.5], options)
    assert not result.match and result.score == pytest.approx(1 / 3)
    assert not compare([1.0, 2.0], [1.0, 2.5], SET).match


def test_set_nan_elements() -> None:
    assert compare([NAN, 1], [1, NAN], SET).match
    assert not compare([NAN], [INF], SET).match


def test_set_falls_back_to_structured_for_non_arrays() -> None:
    assert compare({"a": [1, 2]}, {"a": [1, 2]}, SET).match
    assert compare({"a": [1, 2]}, {"a": [2, 1]}, SET).failure_type == "value_mismatch"
    assert compare([1, 2], {"a": 1}, SET).failure_type == "type_mismatch"
    assert compare({"a": 1}, [1], SET).failure_type == "type_mismatch"
    options = CompareOptions(method=Method.SET, numeric_tolerance=0.5, ignore_keys=["t"])
    assert compare({"v": 1, "t": 1}, {"v": 1.4}, options).match
    assert compare(1, 1.0, SET).match


# --- deep values --------------------------------------------------------------------


@pytest.mark.parametrize("wrap", ["list", "dict"])
@pytest.mark.parametrize("method", list(Method))
def test_deep_values_do_not_hit_the_recursion_limit(wrap: str, method: Method) -> None:
    depth = 50_000
    options = CompareOptions(method=method)
    assert compare(deep(1, depth, wrap), deep(1, depth, wrap), options).match
    result = compare(deep(1, depth, wrap), deep(2, depth, wrap), options)
    assert not result.match and result.failure_type == "value_mismatch"
    assert result.detail is not None and len(result.detail) < 300
    if not (method is Method.SET and wrap == "list"):  # a set names the top element
        assert "more)…" in result.detail


def test_deep_mismatched_subtrees_are_counted_without_recursion() -> None:
    result = compare({"a": deep(1, 50_000)}, {"a": "x"}, STRUCTURED)
    assert result.failure_type == "type_mismatch" and result.score == 0.0
    result = compare({"a": 1}, {"a": 1, "b": deep(1, 50_000, "dict")}, STRUCTURED)
    assert result.failure_type == "extra_key" and result.score == 0.5


def test_deep_path_rendering_keeps_both_ends() -> None:
    result = compare(deep({"price": 1}, 30), deep({"price": 2}, 30))
    assert result.detail == ("$[0][0][0][0][0][0][0][0]…(15 more)…[0][0][0][0][0][0][0]"
                             ".price: expected 1, got 2")


# --- properties ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
methods = st.sampled_from(list(Method))


@settings(max_examples=200, deadline=None)
@given(json_values, methods)
def test_every_value_matches_itself(value: Any, method: Method) -> None:
    assert compare(value, value, CompareOptions(method=method)) == Comparison(True, 1.0)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, methods)
def test_results_are_well_formed(expected: Any, actual: Any, method: Method) -> None:
    result = compare(expected, actual, CompareOptions(method=method))
    assert 0.0 <= result.score <= 1.0 and not math.isnan(result.score)
    if result.match:
        assert result.score == 1.0 and result.failure_type is None and result.detail is None
    else:
        assert result.score < 1.0
        assert result.failure_type in {"value_mismatch", "type_mismatch", "missing_key",
                                       "extra_key", "length_mismatch", "missing_output"}
        assert result.detail is not None and result.detail.startswith("$")


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_exact_and_set_matching_are_symmetric(a: Any, b: Any) -> None:
    if a is not None and b is not None:
        assert compare(a, b).match is compare(b, a).match
        assert compare(a, b, SET).match is compare(b, a, SET).match


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_exact_match_implies_every_looser_match(a: Any, b: Any) -> None:
    if compare(a, b).match:
        for method in (Method.STRUCTURED, Method.NORMALIZED, Method.SET):
            assert compare(a, b, CompareOptions(method=method)).match


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=6), st.randoms())
def test_set_matches_any_permutation_with_duplicates(items: list[Any], rnd: Any) -> None:
    shuffled = items + items[: len(items) // 2]
    rnd.shuffle(shuffled)
    assert compare(items, shuffled, SET).match
