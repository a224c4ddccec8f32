"""The built-in offline generator: a text classifier learned from a task's labelled examples.

No network, no model server: `learn` fits a linear model over word, word-pair and
letter-triple features of the cases' text and writes it out as a plain Python program —
the weights as literals, the tokenizer, and a `run(input)` that adds up the points of the
features it finds and answers the label with the most. Anyone can read why it decides.

It learns one shape only: text in (a string, or an object with one text property), one of
a few string labels out. Everything else — numbers, objects, free text, a single label,
inputs without text — raises `UnsupportedTask`: those need a generator that understands
the task (an LLM backend), and a program that guesses is worse than none.

The model is a multinomial logistic regression (softmax) trained by stochastic gradient
descent in a fixed order, its weights averaged over the later epochs, on the `max_features`
features with the highest information gain about the label. The weights are rounded to
integer points, so the program's sums are exact and its answers on the training cases are
exactly the ones `training_accuracy` counts.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from loopai.core.generation import base

NEEDED = "an LLM backend (openai or http)"

TEXT_FIELD_NAMES = ("text", "message", "body", "content", "input")
"""Property names that say "the text is here" when an object has several strings."""

SCALE = 100
"""Points per unit of weight: the program's literals are weights times SCALE, rounded."""

DECAY = 0.03
"""L2 weight decay of the logistic regression (per step, on the features a case has)."""

FOLDS = 5
"""Cross-validation folds when choosing a strategy (fewer when there are fewer cases)."""

MAX_LABEL_LENGTH = 100
"""Longer string outputs are prose, not labels."""

FEATURES_SOURCE = r'''NEGATIONS = ("not", "no", "never", "nothing", "without", "cannot")


def features(text):
    """The features of a text: w: a word, n: a word among the two after a negation (not,
    no, never… up to the next punctuation mark), p: two adjacent words, c: three letters
    of a word, < and > marking its start and end."""
    found = set()
    previous = ""
    negated = 0
    for token in re.findall(r"\w+(?:'\w+)*|[.,;:!?]", text.lower()):
        if token in ".,;:!?":
            previous = ""
            negated = 0
            continue
        if negated:
            found.add("n:" + token)
            negated -= 1
        else:
            found.add("w:" + token)
        if previous:
            found.add("p:" + previous + " " + token)
        padded = "<" + token + ">"
        for start in range(len(padded) - 2):
            found.add("c:" + padded[start:start + 3])
        previous = token
        if token in NEGATIONS or token.endswith("n't"):
            negated = 2
    return found
'''


def _compile_features() -> Callable[[str], set[str]]:
    # One definition for the learner and for every program it writes: they cannot drift.
    scope: dict[str, Any] = {"re": re}
    exec(FEATURES_SOURCE, scope)  # defines NEGATIONS and features
    function: Callable[[str], set[str]] = scope["features"]
    return function


features = _compile_features()


class UnsupportedTask(base.UnsupportedTask):
    """The task is not a shape this generator can learn; `needed` says what can."""

    def __init__(self, message: str, needed: str = NEEDED) -> None:
        super().__init__(f"{message}; this needs {needed}", needed)


class LearnedProgram(msgspec.Struct):
    code: str
    strategy: str
    labels: list[str]
    features: int
    training_accuracy: float
    metadata: dict[str, Any]


# --- the task's shape ----------------------------------------------------------------------

def _describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "an enum of " + ", ".join(sorted({type(v).__name__ for v in schema["enum"]}))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind is None:
        return "a value of any type"
    return str(kind)


def _labels(outputs: list[Any], schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The labels to predict (those seen, in the schema's order) and the enum's unseen ones."""
    kind = schema.get("type")
    if "enum" in schema:
        enum = schema["enum"]
        if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
            raise UnsupportedTask(
                f"the output is {_describe(schema)}: only string labels can be learned here")
        if kind not in (None, "string"):
            raise UnsupportedTask(f"the output type {kind!r} is not a string label")
        allowed = list(dict.fromkeys(enum))
        strange = sorted({repr(o) for o in outputs if o not in allowed})
        if strange:
            raise ValueError(f"case outputs outside the output schema's enum: "
                             f"{', '.join(strange[:5])}")
        seen = set(outputs)
        labels = [v for v in allowed if v in seen]
        unseen = [v for v in allowed if v not in seen]
    elif kind == "string" and "const" not in schema:
        if not all(isinstance(o, str) for o in outputs):
            raise ValueError("the output schema says string but some case outputs are not")
        labels = sorted(set(outputs))
        unseen = []
        if any(len(o) > MAX_LABEL_LENGTH or "\n" in o for o in outputs) or (
                len(labels) > max(2, len(outputs) // 2)):
            raise UnsupportedTask(
                f"the outputs are free text ({len(labels)} different strings in "
                f"{len(outputs)} cases), not a few labels that repeat: writing text is not "
                f"classification")
    elif "const" in schema:
        raise UnsupportedTask("the output is a constant: there is nothing to learn")
    else:
        raise UnsupportedTask(
            f"the output is {_describe(schema)}: only string labels (an enum of strings, or "
            f"strings that repeat) can be learned from examples without a model")
    if len(labels) < 2:
        only = repr(labels[0]) if labels else "nothing"
        raise UnsupportedTask(
            f"the cases show a single label ({only}): a program that always answers it "
            f"would be a guess, not something learned")
    return labels, unseen


def _text_field(inputs: list[Any], schema: dict[str, Any]) -> str | None:
    """None when the input is the text itself, else the object property holding it."""
    kind = schema.get("type")
    if kind is None and "properties" not in schema:
        if inputs and all(isinstance(i, str) for i in inputs):
            kind = "string"
        elif inputs and all(isinstance(i, dict) for i in inputs):
            kind = "object"
    if kind == "string":
        return None
    if kind != "object":
        raise UnsupportedTask(
            f"the input is {_describe(schema)}: only text (a string, or an object with a "
            f"text property) can be classified from examples without a model")
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        strings: list[str] = [str(name) for name, sub in properties.items()
                   if isinstance(sub, dict) and sub.get("type") == "string"
                   and "enum" not in sub]
    else:  # no declared properties: the keys that always hold a string in the cases
        keys = [set(i) for i in inputs if isinstance(i, dict)]
        common = set.intersection(*keys) if keys else set()
        strings = sorted(k for k in common
                         if all(isinstance(i[k], str) for i in inputs if isinstance(i, dict)))
    if len(strings) == 1:
        return strings[0]
    named = [name for name in strings if name in TEXT_FIELD_NAMES]
    if len(named) == 1:
        return named[0]
    if not strings:
        raise UnsupportedTask("the input object has no string property: there is no text "
                              "to classify")
    raise UnsupportedTask(
        f"the input object has several string properties ({', '.join(strings)}) and none "
        f"is plainly the text: which to read, or how to combine them, is for a model to decide")


def _text_of(value: Any, field: str | None) -> str:
    """What the program reads from one input (the same rule the written `run` follows)."""
    if field is None:
        return value if isinstance(value, str) else ""
    text = value.get(field) if isinstance(value, dict) else ""
    return text if isinstance(text, str) else ""


# --- features ------------------------------------------------------------------------------

def _entropy(counts: Iterable[int]) -> float:
    counts = [c for c in counts if c]
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts) if total else 0.0


def _readability(feature: str) -> tuple[int, int, str]:
    return ("wnpc".index(feature[0]), len(feature), feature)


def _select(docs: list[list[str]], ys: list[int], n_labels: int,
            max_features: int) -> tuple[list[str], int]:
    """The `max_features` features with the highest information gain about the label.

    A feature that never tells more than a word it is part of (a triple of "refund" found
    in exactly the cases "refund" is, a pair found exactly where one of its words is) is
    left out: it would only split one word's weight in several pieces.
    Returns the features, most informative first, and how many were considered."""
    where: dict[str, list[int]] = {}
    for index, doc in enumerate(docs):
        for feature in doc:
            where.setdefault(feature, []).append(index)
    min_cases = 2 if len(docs) >= 20 else 1
    candidates = {f: cases for f, cases in where.items() if len(cases) >= min_cases}
    redundant: set[str] = set()
    for feature, cases in candidates.items():
        if feature[0] == "c":
            continue
        if feature[0] in "wn":
            padded = "<" + feature[2:] + ">"
            parts = ["c:" + padded[i:i + 3] for i in range(len(padded) - 2)]
        else:
            parts = ["w:" + word for word in feature[2:].split(" ")]
        for part in parts:
            if candidates.get(part) == cases:
                redundant.add(part if feature[0] in "wn" else feature)
    totals = [0] * n_labels
    for y in ys:
        totals[y] += 1
    base = _entropy(totals)
    n = len(docs)
    scored: list[tuple[float, tuple[int, int, str]]] = []
    for feature, cases in candidates.items():
        if feature in redundant:
            continue
        inside = [0] * n_labels
        for index in cases:
            inside[ys[index]] += 1
        outside = [t - i for t, i in zip(totals, inside, strict=True)]
        gain = base - (len(cases) / n * _entropy(inside)
                       + (n - len(cases)) / n * _entropy(outside))
        scored.append((-round(gain, 12), _readability(feature)))
    scored.sort()
    return [key[2] for _, key in scored[:max_features]], len(candidates)


# --- the model -----------------------------------------------------------------------------

def _train(rows: list[list[int]], ys: list[int], n_features: int, n_labels: int,
           epochs: int, seed: int) -> tuple[list[list[float]], list[float]]:
    """Softmax regression by SGD over the cases in a seeded order; averaged weights."""
    weights = [[0.0] * n_labels for _ in range(n_features)]
    bias = [0.0] * n_labels
    sum_w = [[0.0] * n_labels for _ in range(n_features)]
    sum_b = [0.0] * n_labels
    averaged = 0
    order = list(range(len(rows)))
    shuffle = random.Random(seed)
    decay = DECAY
    for epoch in range(epochs):
        shuffle.shuffle(order)
        rate = 0.5 / (1.0 + 0.1 * epoch)
        for index in order:
            row = rows[index]
            scores = list(bias)
            for f in row:
                wf = weights[f]
                for k in range(n_labels):
                    scores[k] += wf[k]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            grads = [e / total for e in exps]
            grads[ys[index]] -= 1.0
            for k in range(n_labels):
                bias[k] -= rate * grads[k]
            for f in row:
                wf = weights[f]
                for k in range(n_labels):
                    wf[k] -= rate * (grads[k] + decay * wf[k])
        if epoch >= epochs // 2:
            averaged += 1
            for k in range(n_labels):
                sum_b[k] += bias[k]
            for f in range(n_features):
                sf, wf = sum_w[f], weights[f]
                for k in range(n_labels):
                    sf[k] += wf[k]
    return ([[v / averaged for v in sf] for sf in sum_w], [v / averaged for v in sum_b])


def _train_bayes(rows: list[list[int]], ys: list[int], n_features: int,
                 n_labels: int) -> tuple[list[list[float]], list[float]]:
    """Multinomial naive Bayes with Laplace smoothing, centred per feature (each feature's
    weights sum to zero across labels, which changes no decision and reads better)."""
    counts = [[1.0] * n_labels for _ in range(n_features)]
    totals = [float(n_features)] * n_labels
    cases = [1.0] * n_labels
    for row, y in zip(rows, ys, strict=True):
        cases[y] += 1.0
        for f in row:
            counts[f][y] += 1.0
            totals[y] += 1.0
    weights = []
    for row_counts in counts:
        logs = [math.log(c / t) for c, t in zip(row_counts, totals, strict=True)]
        mean = sum(logs) / n_labels
        weights.append([v - mean for v in logs])
    all_cases = sum(cases)
    return weights, [math.log(c / all_cases) for c in cases]


def _points(value: float) -> int:
    return round(value * SCALE)


def _decide(found: Iterable[str], table: dict[str, dict[str, int]], bias: dict[str, int],
            labels: list[str]) -> str:
    """What the written program answers (integer sums: the order of adding is irrelevant)."""
    scores = dict(bias)
    for feature in found:
        for label, points in table.get(feature, {}).items():
            scores[label] += points
    best = labels[0]
    for label in labels:
        if scores[label] > scores[best]:
            best = label
    return best


# --- the program ---------------------------------------------------------------------------

def _code(*, strategy: str, field: str | None, labels: list[str], unseen: list[str],
          counts: dict[str, int], table: Table, bias: dict[str, int], cases: int,
          considered: int, accuracy: float, scores: dict[str, float]) -> str:
    where = "the input string" if field is None else f"the input's {field!r} property"
    lines = [
        f"# Learned offline by Loopai's examples generator (strategy: {strategy}).",
        f"# From {cases} labelled cases: "
        + ", ".join(f"{label} {counts[label]}" for label in labels) + ".",
        f"# Model: {MODELS[strategy]}, over word, word-pair and letter-triple",
        f"# features of {where}; {len(table)} features kept of {considered} seen",
        "# (those with the highest information gain about the label).",
        f"# Training accuracy: {accuracy:.4f} ({round(accuracy * cases)}/{cases}).",
    ]
    if scores:
        lines.append(f"# Chosen by {min(FOLDS, cases)}-fold cross-validation: " + ", ".join(
            f"{name} {score:.3f}" for name, score in scores.items()) + ".")
    if unseen:
        lines.append("# Never answered (in the schema, in no case): "
                     + ", ".join(unseen) + ".")
    lines += [
        "#",
        "# How it decides: each label starts from its BIAS points; every feature found in",
        "# the text adds its points in WEIGHTS (w: a word, n: a word just after a negation,",
        "# p: two adjacent words, c: three letters of a word, < and > its start and end;",
        f"# {SCALE} points = weight 1.0; features() below says exactly what counts). The",
        "# label with the most points wins; a tie goes to the label listed first in LABELS.",
        "# Words the cases never showed weigh nothing.",
        "",
        "import re",
        "",
        f"LABELS = {labels!r}",
        "",
        "BIAS = {",
        *(f"    {label!r}: {bias[label]}," for label in labels),
        "}",
        "",
        "# Strongest first.",
        "WEIGHTS = {",
    ]
    strongest = sorted(table, key=lambda f: (-max(abs(v) for v in table[f].values()), f))
    for feature in strongest:
        entries = ", ".join(f"{label!r}: {points}" for label, points in table[feature].items())
        lines.append(f"    {feature!r}: {{{entries}}},")
    lines += ["}", "", "", FEATURES_SOURCE.rstrip("\n"), "", ""]
    if field is None:
        read = ["    text = input if isinstance(input, str) else \"\""]
    else:
        read = [f"    text = input.get({field!r}) if isinstance(input, dict) else \"\"",
                "    if not isinstance(text, str):",
                "        text = \"\""]
    lines += [
        "def run(input):",
        *read,
        "    scores = dict(BIAS)",
        "    for feature in features(text):",
        "        for label, points in WEIGHTS.get(feature, {}).items():",
        "            scores[label] += points",
        "    best = LABELS[0]",
        "    for label in LABELS:",
        "        if scores[label] > scores[best]:",
        "            best = label",
        "    return best",
        "",
    ]
    return "\n".join(lines)


STRATEGIES = ("ngram_naive_bayes", "ngram_logistic_regression")
MODELS = {
    "ngram_naive_bayes": "multinomial naive Bayes, Laplace smoothing",
    "ngram_logistic_regression": "softmax regression, SGD with L2, averaged weights",
}

Table = dict[str, dict[str, int]]


def _fit(docs: list[list[str]], ys: list[int], labels: list[str], strategy: str,
         max_features: int, epochs: int, seed: int) -> tuple[Table, dict[str, int], int]:
    """The integer weight table and biases of one strategy, and the features considered."""
    chosen, considered = _select(docs, ys, len(labels), max_features)
    index = {feature: i for i, feature in enumerate(chosen)}
    rows = [sorted(index[f] for f in doc if f in index) for doc in docs]
    if strategy == "ngram_naive_bayes":
        weights, raw_bias = _train_bayes(rows, ys, len(chosen), len(labels))
    else:
        weights, raw_bias = _train(rows, ys, len(chosen), len(labels), epochs, seed)
    table: Table = {}
    for feature, row in zip(chosen, weights, strict=True):
        entry = {label: _points(w) for label, w in zip(labels, row, strict=True) if _points(w)}
        if entry:
            table[feature] = entry
    bias = {label: _points(b) for label, b in zip(labels, raw_bias, strict=True)}
    return table, bias, considered


def _cross_validated(docs: list[list[str]], ys: list[int], labels: list[str],
                     strategy: str, max_features: int, epochs: int, seed: int) -> float:
    """Accuracy on each case of a program learned without it: `FOLDS`-fold, seeded folds."""
    folds = min(FOLDS, len(docs))
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    right = 0
    for fold in range(folds):
        held = set(order[fold::folds])
        train = [i for i in range(len(docs)) if i not in held]
        if len({ys[i] for i in train}) < 2:
            continue  # nothing to tell apart: every held-out case counts as wrong
        table, bias, _ = _fit([docs[i] for i in train], [ys[i] for i in train], labels,
                              strategy, max_features, epochs, seed)
        right += sum(_decide(docs[i], table, bias, labels) == labels[ys[i]] for i in held)
    return right / len(docs)


def check_shape(cases: list[tuple[Any, Any]], input_schema: dict[str, Any],
                output_schema: dict[str, Any]) -> None:
    """What `learn` refuses before it learns anything (UnsupportedTask, ValueError), at a
    fraction of its cost: for refusing a request before a job starts."""
    _shape(cases, input_schema, output_schema)


def _shape(cases: list[tuple[Any, Any]], input_schema: dict[str, Any],
           output_schema: dict[str, Any]) -> tuple[list[str], list[str], str | None,
                                                   list[list[str]]]:
    """The labels, labels never seen, the text field and each case's features."""
    inputs = [inp for inp, _ in cases]
    outputs = [out for _, out in cases]
    labels, unseen = _labels(outputs, output_schema)
    field = _text_field(inputs, input_schema)
    for value in inputs:
        text = value if field is None else (value.get(field) if isinstance(value, dict) else 0)
        if not isinstance(text, str):
            where = "a string" if field is None else f"an object with a string {field!r}"
            raise ValueError(f"a case input is not {where}: {value!r:.80}")
    docs = [sorted(features(_text_of(value, field))) for value in inputs]
    if not any(docs):
        raise UnsupportedTask("the cases' texts have no words to learn from")
    return labels, unseen, field, docs


def learn(cases: list[tuple[Any, Any]], input_schema: dict[str, Any],
          output_schema: dict[str, Any], *, max_features: int = 300,
          strategy: str | None = None, epochs: int = 30, seed: int = 0) -> LearnedProgram:
    """A classification program learned from `cases` (input, output) pairs.

    Both strategies are scored by cross-validation on the cases and the better one (naive
    Bayes on a tie) writes the program, unless `strategy` names one. Raises UnsupportedTask
    when the task is not text in, one of a few string labels out, and ValueError when cases
    contradict the schemas (an output outside the enum)."""
    if max_features < 1:
        raise ValueError("max_features must be at least 1")
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    labels, unseen, field, docs = _shape(cases, input_schema, output_schema)
    outputs = [out for _, out in cases]
    ys = [labels.index(out) for out in outputs]

    scores = {name: _cross_validated(docs, ys, labels, name, max_features, epochs, seed)
              for name in STRATEGIES} if strategy is None else {}
    chosen = strategy or max(STRATEGIES, key=lambda name: scores[name])  # first on a tie
    table, bias, considered = _fit(docs, ys, labels, chosen, max_features, epochs, seed)
    if not table:
        raise UnsupportedTask("no feature of the cases' texts tells the labels apart")

    right = sum(_decide(doc, table, bias, labels) == out
                for doc, out in zip(docs, outputs, strict=True))
    accuracy = right / len(cases)
    counts = {label: outputs.count(label) for label in labels}
    code = _code(strategy=chosen, field=field, labels=labels, unseen=unseen, counts=counts,
                 table=table, bias=bias, cases=len(cases), considered=considered,
                 accuracy=accuracy, scores=scores)
    return LearnedProgram(
        code=code, strategy=chosen, labels=labels, features=len(table),
        training_accuracy=accuracy,
        metadata={
            "model": MODELS[chosen],
            "cross_validated_accuracy": scores,
            "input_field": field,
            "label_counts": counts,
            "unseen_labels": unseen,
            "candidate_features": considered,
            "max_features": max_features,
            "epochs": epochs if chosen == "ngram_logistic_regression" else None,
            "seed": seed,
            "scale": SCALE,
        },
    )
