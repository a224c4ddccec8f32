"""Whether a program's output matches the oracle's expected output, and how closely.

`compare(expected, actual, options)` takes two decoded JSON values (None, bool, int, float,
str, list, dict; tuples count as arrays) and returns a `Comparison`: `match`, a partial
`score` in [0, 1], the `failure_type` of the first difference and a short `detail` naming
its JSON path (`$.items[2].price: expected 3.5, got 4`).

Methods:

- `exact`: JSON equality. Booleans are not numbers (`true` ≠ `1`); an int and a float of
  the same value are equal (`1` = `1.0`). Score 1 or 0.
- `structured`: a deep comparison where numbers within `numeric_tolerance` (absolute) or
  `relative_tolerance` (of the larger magnitude) match, bounds included (floats get a
  few ulps of slack for binary rounding), and object keys named in
  `ignore_keys` are dropped at every depth; arrays are compared in order. The score is
  the share of leaves (scalars and empty containers) that match, over the expected leaves
  plus any the output has in excess.
- `normalized`: strings are compared after Unicode NFKC, case folding (unless
  `case_sensitive`), trimming and collapsing whitespace runs; their score is difflib's
  ratio of the normalized strings. Other values are compared as `structured`, with every
  string leaf normalized the same way.
- `set`: a top-level array is compared as a set of JSON values: order and duplicates do
  not count, elements are keyed by their canonical JSON (sorted keys, `ignore_keys`
  dropped, `1.0` written as `1`). With a tolerance, elements left unpaired are paired
  when they match structurally (greedily, for small remainders). The score is the
  Jaccard index of the two sets. Nested arrays keep their order; a non-array falls back
  to `structured`.

NaN equals NaN and an infinity equals the same infinity (JSON cannot carry them, but
Python values can); neither is ever within a tolerance of anything else. Every walk is
iterative, so values of any depth compare without hitting Python's recursion limit;
values are taken to be acyclic, as decoded JSON always is.

Failure types: `missing_output` (the output is None, or `msgspec.UNSET`, where a value was
expected), `type_mismatch`, `value_mismatch` (also a set's missing or unexpected
elements), `missing_key`, `extra_key` and `length_mismatch` (arrays; reported at the
array, before any difference in its elements). The first difference in document order
(expected keys in their order, then the output's extra keys) names the failure.
"""

from __future__ import annotations

import difflib
import enum
import json
import math
import re
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["DEFAULT_OPTIONS", "CompareOptions", "Comparison", "Method", "compare"]


class Method(enum.StrEnum):
    EXACT = "exact"
    NORMALIZED = "normalized"
    STRUCTURED = "structured"
    SET = "set"


class CompareOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    method: Method = Method.EXACT
    numeric_tolerance: float = 0.0
    """Absolute: numbers at most this far apart match (structured, normalized, set)."""
    relative_tolerance: float = 0.0
    """Numbers at most this share of the larger magnitude apart match."""
    ignore_keys: tuple[str, ...] = ()
    """A tuple, so that the options (and the task default) stay hashable."""
    """Object keys left out at any depth (not in `exact`)."""
    case_sensitive: bool = False
    """`normalized` only: when false, strings are compared case-folded."""

    def __post_init__(self) -> None:
        for name in ("numeric_tolerance", "relative_tolerance"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")


class Comparison(msgspec.Struct, frozen=True):
    match: bool
    score: float
    """1.0 for a match, else the partial score in [0, 1] (see the module's docstring)."""
    failure_type: str | None = None
    """None on a match; else what the first difference is."""
    detail: str | None = None
    """The first difference and its JSON path, for people."""


MATCH = Comparison(match=True, score=1.0)
DEFAULT_OPTIONS = CompareOptions()

_ABSENT: Any = object()
"""Stands for the missing side of a missing or extra key."""

_PAIRING_LIMIT = 10_000
"""Structured comparisons a set's tolerant pairing may try."""

_DIFFLIB_MAX_CHARS = 20_000
"""Longer normalized strings are scored with difflib's (linear) quick ratio."""

_ULPS = 4 * sys.float_info.epsilon

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_Path = tuple[Any, str | int] | None
"""A linked path: (parent, key or index); None is the root. Rendered only when needed."""


def compare(expected: Any, actual: Any, options: CompareOptions = DEFAULT_OPTIONS) -> Comparison:
    if (actual is None or actual is msgspec.UNSET) and not (
            expected is None and actual is None):
        return Comparison(match=False, score=0.0, failure_type="missing_output",
                          detail=f"$: no output (expected {_describe(expected)})")
    method = options.method
    if method is Method.EXACT:
        result = _walk(expected, actual, _Rules(0.0, 0.0, frozenset(), None))
        return result if result.match else msgspec.structs.replace(result, score=0.0)
    ignore = frozenset(options.ignore_keys)
    if method is Method.NORMALIZED:
        case_sensitive = options.case_sensitive

        def normalize(text: str) -> str:
            return _normalize(text, case_sensitive)

        rules = _Rules(options.numeric_tolerance, options.relative_tolerance, ignore,
                       normalize)
        if isinstance(expected, str) and isinstance(actual, str):
            return _compare_strings(expected, actual, normalize)
        return _walk(expected, actual, rules)
    rules = _Rules(options.numeric_tolerance, options.relative_tolerance, ignore, None)
    if method is Method.SET and _is_array(expected) and _is_array(actual):
        return _compare_sets(expected, actual, rules)
    return _walk(expected, actual, rules)


class _Rules:
    __slots__ = ("abs_tol", "ignore", "normalize", "rel_tol")

    def __init__(self, abs_tol: float, rel_tol: float, ignore: frozenset[str],
                 normalize: Callable[[str], str] | None) -> None:
        self.abs_tol = abs_tol
        self.rel_tol = rel_tol
        self.ignore = ignore
        self.normalize = normalize


def _normalize(text: str, case_sensitive: bool) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not case_sensitive:
        text = text.casefold()
    return " ".join(text.split())


def _compare_strings(expected: str, actual: str, normalize: Callable[[str], str]) -> Comparison:
    e, a = normalize(expected), normalize(actual)
    if e == a:
        return MATCH
    matcher = difflib.SequenceMatcher(None, e, a)
    score = (matcher.quick_ratio() if len(e) + len(a) > _DIFFLIB_MAX_CHARS
             else matcher.ratio())
    # quick_ratio is an upper bound and can reach 1 (anagrams); a mismatch stays below.
    return Comparison(match=False, score=min(score, 0.999),
                      failure_type="value_mismatch",
                      detail=f"$: expected {_show(expected)}, got {_show(actual)}")


def _is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _numbers_match(e: int | float, a: int | float, rules: _Rules) -> bool:
    if e == a:
        return True
    if _is_nan(e) or _is_nan(a):
        return _is_nan(e) and _is_nan(a)
    if (isinstance(e, float) and math.isinf(e)) or (isinstance(a, float) and math.isinf(a)):
        return False
    if rules.abs_tol == 0 and rules.rel_tol == 0:
        return False
    try:
        diff = abs(e - a)
        magnitude = max(abs(e), abs(a))
        # Floats get a few ulps of slack, so that 1.0 and 1.01 are within 0.01 although
        # 1.01 - 1.0 is 0.010000000000000009 in binary; integers are compared exactly.
        slack = 0.0 if isinstance(e, int) and isinstance(a, int) else _ULPS * magnitude
        return bool(diff <= rules.abs_tol + slack
                    or diff <= rules.rel_tol * magnitude + slack)
    except OverflowError:
        return False


def _scalars_match(kind: str, e: Any, a: Any, rules: _Rules) -> bool:
    if kind == "number":
        return _numbers_match(e, a, rules)
    if kind == "string" and rules.normalize is not None:
        return rules.normalize(e) == rules.normalize(a)
    if kind == "null":
        return True
    try:
        return bool(e == a)
    except Exception:
        return False


def _walk(expected: Any, actual: Any, rules: _Rules) -> Comparison:
    """Compares two values depth-first with an explicit stack, in document order."""
    ignore = rules.ignore
    matched = total = 0
    failure: tuple[str, _Path, str] | None = None
    stack: list[tuple[Any, Any, _Path]] = [(expected, actual, None)]
    while stack:
        e, a, path = stack.pop()
        if a is _ABSENT:
            total += _leaves(e, ignore)
            if failure is None:
                failure = ("missing_key", path, f"missing (expected {_show(e)})")
            continue
        if e is _ABSENT:
            total += _leaves(a, ignore)
            if failure is None:
                failure = ("extra_key", path, f"unexpected key (got {_show(a)})")
            continue
        kind, other = _kind(e), _kind(a)
        if kind != other:
            total += _leaves(e, ignore)
            if failure is None:
                failure = ("type_mismatch", path,
                           f"expected {_describe(e)}, got {_describe(a)}")
            continue
        children: list[tuple[Any, Any, _Path]] = []
        if kind == "array":
            if not e and not a:
                matched += 1
                total += 1
                continue
            common = min(len(e), len(a))
            children.extend((e[i], a[i], (path, i)) for i in range(common))
            if len(e) != len(a):
                total += sum(_leaves(x, ignore) for x in e[common:])
                total += sum(_leaves(x, ignore) for x in a[common:])
                if failure is None:
                    failure = ("length_mismatch", path,
                               f"expected {_items(len(e))}, got {len(a)}")
        elif kind == "object":
            for key, value in e.items():
                if key not in ignore:
                    children.append((value, a.get(key, _ABSENT), (path, key)))
            for key, value in a.items():
                if key not in ignore and key not in e:
                    children.append((_ABSENT, value, (path, key)))
            if not children:
                matched += 1
                total += 1
                continue
        else:
            total += 1
            if _scalars_match(kind, e, a, rules):
                matched += 1
            elif failure is None:
                failure = ("value_mismatch", path, f"expected {_show(e)}, got {_show(a)}")
            continue
        stack.extend(reversed(children))
    if failure is None:
        return MATCH
    failure_type, where, what = failure
    score = matched / total if total else 0.0
    return Comparison(match=False, score=score, failure_type=failure_type,
                      detail=f"{_render(where)}: {what}")


def _leaves(value: Any, ignore: frozenset[str]) -> int:
    """Scalars and empty containers in a value (never less than 1)."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            values = [v for k, v in item.items() if k not in ignore]
            if values:
                stack.extend(values)
            else:
                count += 1
        elif isinstance(item, list | tuple) and item:
            stack.extend(item)
        else:
            count += 1
    return count


def _compare_sets(expected: Any, actual: Any, rules: _Rules) -> Comparison:
    wanted: dict[str, int] = {}
    for i, item in enumerate(expected):
        wanted.setdefault(_canonical(item, rules.ignore), i)
    got: dict[str, int] = {}
    for i, item in enumerate(actual):
        got.setdefault(_canonical(item, rules.ignore), i)
    missing = [i for key, i in wanted.items() if key not in got]
    extra = [i for key, i in got.items() if key not in wanted]
    shared = len(wanted) - len(missing)
    if missing and extra and (rules.abs_tol or rules.rel_tol) \
            and len(missing) * len(extra) <= _PAIRING_LIMIT:
        unpaired: list[int] = []
        for i in missing:
            for j in extra:
                if _walk(expected[i], actual[j], rules).match:
                    extra.remove(j)
                    shared += 1
                    break
            else:
                unpaired.append(i)
        missing = unpaired
    if not missing and not extra:
        return MATCH
    union = len(wanted) + len(got) - shared
    summary = f"{len(missing)} missing, {len(extra)} unexpected"
    if missing:
        i = missing[0]
        detail = f"$[{i}]: expected element {_show(expected[i])} not in output ({summary})"
    else:
        j = extra[0]
        detail = f"$[{j}]: unexpected element {_show(actual[j])} ({summary})"
    return Comparison(match=False, score=shared / union,
                      failure_type="value_mismatch", detail=detail)


def _canonical(value: Any, ignore: frozenset[str]) -> str:
    """Canonical JSON text of a value: sorted keys, `ignore` dropped, integral floats
    written as integers (so `1.0` and `1` agree), NaN and the infinities as words."""
    out: list[str] = []
    # Entries are (True, value to write) or (False, literal text); pre-order via a stack.
    stack: list[tuple[bool, Any]] = [(True, value)]
    while stack:
        is_value, item = stack.pop()
        if not is_value:
            out.append(item)
        elif isinstance(item, dict):
            keys = sorted(((str(k), k) for k in item if k not in ignore),
                          key=lambda pair: pair[0])
            out.append("{")
            stack.append((False, "}"))
            for n, (text, key) in enumerate(reversed(keys)):
                stack.append((True, item[key]))
                sep = "" if n == len(keys) - 1 else ","
                stack.append((False, f"{sep}{json.dumps(text)}:"))
        elif isinstance(item, list | tuple):
            out.append("[")
            stack.append((False, "]"))
            for n, element in enumerate(reversed(item)):
                stack.append((True, element))
                if n != len(item) - 1:
                    stack.append((False, ","))
        else:
            out.append(_scalar_json(item))
    return "".join(out)


def _scalar_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return f"<{type(value).__name__} {value!r}>"


def _show(value: Any, limit: int = 60) -> str:
    """A short, bounded preview of a value."""
    if isinstance(value, list | tuple):
        return f"[{_items(len(value))}]"
    if isinstance(value, dict):
        return f"{{{len(value)} key{'' if len(value) == 1 else 's'}}}"
    if isinstance(value, str) and len(value) > limit:
        return json.dumps(value[:limit]) + "…"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    text = _scalar_json(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(value: Any) -> str:
    kind = _kind(value)
    if kind == "null":
        return "null"
    if kind == "other":
        return f"a {type(value).__name__}"
    return f"{kind} {_show(value)}"


def _items(n: int) -> str:
    return f"{n} item{'' if n == 1 else 's'}"


def _render(path: _Path, keep: int = 8) -> str:
    """`$.items[2].price`; a very deep path keeps its first and last `keep` steps."""
    steps: list[str | int] = []
    while path is not None:
        path, step = path
        steps.append(step)
    steps.reverse()
    parts = [_step(s) for s in steps]
    if len(parts) > 2 * keep:
        parts = [*parts[:keep], f"…({len(parts) - 2 * keep} more)…", *parts[-keep:]]
    return "$" + "".join(parts)


def _step(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    if isinstance(step, str) and _IDENTIFIER.match(step):
        return f".{step}"
    return f"[{json.dumps(str(step))}]"
