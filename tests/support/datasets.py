"""Synthetic labelled text-classification datasets, made here from a seed (no downloads).

Each case is ({"text": ...}, label). Sentences come from per-label templates and vocabulary,
mixed with words every label shares, clauses that name another label's words without being
about them, negations (in sentiment), letter swaps, and a little label noise: learnable, not
trivial. The same (name, n, seed) always gives the same cases.

- "tickets": support-ticket routing — billing, technical, account, shipping.
- "sentiment": product reviews — positive, negative, neutral (negation flips a word).
- "language": short messages — english, spanish, french, german (words overlap: de, la, in).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Case = tuple[dict[str, str], str]

LABEL_NOISE = 0.02
"""Share of cases whose label is replaced by a random one (noise no learner can fix)."""

TYPO_RATE = 0.06
"""Chance that a word of five letters or more has two adjacent letters swapped."""


def _typos(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) >= 5 and word.isalpha() and rng.random() < TYPO_RATE:
            j = rng.randrange(1, len(word) - 2)
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    return " ".join(words)


def _fill(rng: random.Random, template: str, slots: dict[str, list[str]]) -> str:
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        out = out[:start] + rng.choice(slots[out[start + 1:end]]) + out[end + 1:]
    return out


# --- tickets -------------------------------------------------------------------------------

TICKET_SLOTS: dict[str, list[str]] = {
    "greet": ["hi", "hello", "hey team", "good morning", "hi there", "dear support", ""],
    "close": ["thanks", "thank you", "please help", "asap please", "regards", "cheers", "",
              "this is urgent", "any update would be great"],
    "when": ["yesterday", "today", "last week", "on monday", "this morning", "twice now",
             "since the weekend", "again"],
    "order": ["my order", "order 48213", "my last order", "the order", "order number 7731"],
    # billing
    "charge": ["charged twice", "overcharged", "billed the wrong amount",
               "charged after cancelling", "double charged", "charged a late fee"],
    "bmoney": ["refund", "invoice", "receipt", "credit note", "payment", "bill"],
    "bcard": ["credit card", "card", "paypal", "bank account", "visa"],
    "bplan": ["subscription", "annual plan", "monthly fee", "renewal", "pro plan"],
    # technical
    "tthing": ["the app", "the website", "the dashboard", "the android app", "the ios app",
               "the desktop client", "the api", "the export tool"],
    "tfail": ["crashes", "keeps freezing", "shows an error", "will not load",
              "is very slow", "returns error 500", "goes blank", "times out"],
    "tact": ["I open it", "I click save", "I upload a file", "I try to sync",
             "I update to the new version", "I export a report", "I refresh the page"],
    "tword": ["bug", "error message", "crash", "glitch", "timeout", "stack trace"],
    # account
    "apart": ["password", "username", "email address", "profile", "two factor code",
              "security question", "login"],
    "aprob": ["forgot my", "cannot reset my", "want to change my", "need to update my",
              "lost access to my"],
    "astate": ["my account is locked", "my account was suspended",
               "someone else signed in to my account", "I cannot sign in",
               "I want to delete my account", "I want to merge two accounts"],
    # shipping
    "sthing": ["package", "parcel", "delivery", "shipment", "box"],
    "sprob": ["has not arrived", "arrived damaged", "is late", "went to the wrong address",
              "is stuck in customs", "was left at the wrong door", "is missing an item"],
    "scarrier": ["the courier", "the driver", "ups", "dhl", "the post office",
                 "the tracking page"],
}

TICKET_TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was {charge} for {order}",
        "I was {charge} {when} and want a {bmoney}",
        "where is my {bmoney} for {order}",
        "my {bcard} was {charge} for the {bplan}",
        "please cancel the {bplan} and send a {bmoney}",
        "the {bmoney} shows the wrong amount",
        "how do I update the {bcard} used for my {bplan}",
    ],
    "technical": [
        "{tthing} {tfail} when {tact}",
        "{tthing} {tfail} {when}",
        "I get a {tword} every time {tact}",
        "since the update {tthing} {tfail}",
        "{tthing} {tfail}, I see a {tword}",
        "there is a {tword} in {tthing}",
    ],
    "account": [
        "I {aprob} {apart}",
        "{astate}",
        "{astate} {when}",
        "I {aprob} {apart} and {astate}",
        "how can I {aprob} {apart}",
        "the {apart} on my account is wrong",
    ],
    "shipping": [
        "my {sthing} {sprob}",
        "the {sthing} for {order} {sprob}",
        "{scarrier} says my {sthing} {sprob}",
        "my {sthing} {sprob} {when}",
        "{order} {sprob}, {scarrier} is not answering",
        "can you resend the {sthing}, it {sprob}",
    ],
}

TICKET_ASIDES = [
    # Clauses that mention another label's words without being about them.
    "I already checked my {apart}", "I paid with my {bcard}", "I used {tthing} to order",
    "it came in a {sthing}", "I read the help page", "my colleague has the same {bplan}",
    "I am a long time customer", "the chat was closed", "I have attached a screenshot",
]


def _ticket(rng: random.Random, label: str) -> str:
    parts = [_fill(rng, "{greet}", TICKET_SLOTS)]
    parts.append(_fill(rng, rng.choice(TICKET_TEMPLATES[label]), TICKET_SLOTS))
    roll = rng.random()
    if roll < 0.35:
        parts.append(_fill(rng, rng.choice(TICKET_ASIDES), TICKET_SLOTS))
    elif roll < 0.6:
        parts.append(_fill(rng, rng.choice(TICKET_TEMPLATES[label]), TICKET_SLOTS))
    parts.append(_fill(rng, "{close}", TICKET_SLOTS))
    return ". ".join(p for p in parts if p)


# --- sentiment -----------------------------------------------------------------------------

SENTIMENT_SLOTS: dict[str, list[str]] = {
    "product": ["headphones", "blender", "jacket", "phone case", "desk lamp", "backpack",
                "coffee maker", "keyboard", "water bottle", "tent"],
    "pos": ["great", "excellent", "amazing", "perfect", "sturdy", "comfortable"],
    "neg": ["terrible", "awful", "useless", "flimsy", "disappointing", "poor"],
    "posv": ["love", "really like", "would recommend", "am very happy with", "enjoy"],
    "negv": ["hate", "regret buying", "would not recommend", "am unhappy with",
             "returned"],
    "neu": ["okay", "average", "fine I guess", "as described", "what I expected",
            "standard", "ordinary"],
    "fact": ["it arrived on {day}", "it comes in {color}", "I bought it for my {person}",
             "it is the {color} version", "the box had a manual", "it weighs about a kilo",
             "I have used it for a {span}", "it replaced my old one",
             "it was delivered {day}"],
    "day": ["tuesday", "friday", "the weekend", "time", "monday"],
    "color": ["black", "blue", "grey", "red", "green"],
    "person": ["brother", "mother", "office", "kitchen", "son"],
    "span": ["week", "month", "few days", "year"],
    "bad": ["stopped working", "fell apart", "broke", "started leaking", "died"],
    "when": ["after two days", "within a week", "on the first use", "after a month"],
}

SENTIMENT_TEMPLATES: dict[str, list[str]] = {
    "positive": [
        "the {product} is {pos}", "I {posv} this {product}", "{pos} {product}, {pos} price",
        "it is not {neg} at all, {pos} really", "no complaints, the {product} is {pos}",
        "{pos}! {fact}", "I {posv} it, {pos} quality",
    ],
    "negative": [
        "the {product} is {neg}", "I {negv} this {product}", "it {bad} {when}",
        "not {pos} at all, {neg}", "the {product} is not {pos}", "{neg} quality, it {bad}",
        "it is not worth it, {neg}",
    ],
    "neutral": [
        "{fact}", "the {product} is {neu}", "{fact}. it is {neu}", "it is {neu}, {fact}",
        "it does the job, nothing special", "the {product} is {neu}, neither good nor bad",
        "{fact}. {fact}",
    ],
}


def _review(rng: random.Random, label: str) -> str:
    text = _fill(rng, rng.choice(SENTIMENT_TEMPLATES[label]), SENTIMENT_SLOTS)
    if label != "neutral" and rng.random() < 0.25:
        fact = _fill(rng, "{fact}", SENTIMENT_SLOTS)
        text = f"{fact}. {text}" if rng.random() < 0.5 else f"{text}. {fact}"
    return text


# --- language ------------------------------------------------------------------------------

LANGUAGE_WORDS: dict[str, list[str]] = {
    "english": ["the", "and", "is", "in", "my", "order", "please", "where", "when", "thank",
                "you", "we", "have", "not", "received", "yet", "can", "help", "with", "this",
                "today", "would", "like", "to", "know", "it", "was", "delivered", "house"],
    "spanish": ["el", "la", "de", "y", "en", "mi", "pedido", "por", "favor", "donde", "cuando",
                "gracias", "no", "hemos", "recibido", "todavía", "puede", "ayudar", "con",
                "esto", "hoy", "quisiera", "saber", "fue", "entregado", "casa", "está"],
    "french": ["le", "la", "de", "et", "en", "mon", "commande", "s'il", "vous", "plaît", "où",
               "quand", "merci", "nous", "n'avons", "pas", "reçu", "encore", "pouvez",
               "aider", "avec", "ceci", "aujourd'hui", "voudrais", "savoir", "livré",
               "maison", "est"],
    "german": ["der", "die", "das", "und", "in", "meine", "bestellung", "bitte", "wo", "wann",
               "danke", "wir", "haben", "nicht", "erhalten", "noch", "können", "sie",
               "helfen", "mit", "diesem", "heute", "möchte", "wissen", "geliefert", "haus",
               "ist"],
}
LANGUAGE_SHARED = ["ok", "email", "internet", "42", "2024", "amazon", "ikea", "paris", "app"]
ACCENTS = str.maketrans("áéíóúñçèêàâîôûüöäß", "aeiouncee" "aaiouuoas")


def _message(rng: random.Random, label: str) -> str:
    words = [rng.choice(LANGUAGE_WORDS[label]) for _ in range(rng.randint(3, 7))]
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words) + 1), rng.choice(LANGUAGE_SHARED))
    text = " ".join(words)
    if rng.random() < 0.3:  # typed on a keyboard without accents
        text = text.translate(ACCENTS)
    return text


# --- the API -------------------------------------------------------------------------------

GENERATORS: dict[str, tuple[list[str], Callable[[random.Random, str], str]]] = {
    "tickets": (["billing", "technical", "account", "shipping"], _ticket),
    "sentiment": (["positive", "negative", "neutral"], _review),
    "language": (["english", "spanish", "french", "german"], _message),
}
NAMES = tuple(GENERATORS)


def labels(name: str) -> list[str]:
    return list(GENERATORS[name][0])


def schemas(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's input schema (an object with a string `text`) and output schema (an enum)."""
    input_schema = {"type": "object", "properties": {"text": {"type": "string"}},
                    "required": ["text"], "additionalProperties": False}
    return input_schema, {"type": "string", "enum": labels(name)}


def dataset(name: str, n: int, seed: int = 0) -> list[Case]:
    """`n` cases of dataset `name`, the same for the same seed."""
    names, make = GENERATORS[name]
    rng = random.Random(f"{name}:{seed}")
    out: list[Case] = []
    for _ in range(n):
        label = rng.choice(names)
        text = _typos(rng, make(rng, label))
        if rng.random() < LABEL_NOISE:
            label = rng.choice(names)
        out.append(({"text": text}, label))
    return out


def split(name: str, train: int, test: int, seed: int = 0) -> tuple[list[Case], list[Case]]:
    """A training set and a held-out set with no text in common (repeats are skipped)."""
    seen: set[str] = set()
    cases: list[Case] = []
    batch = 0
    while len(cases) < train + test:
        for case in dataset(name, 2 * (train + test), seed * 1000 + batch):
            if case[0]["text"] not in seen:
                seen.add(case[0]["text"])
                cases.append(case)
        batch += 1
    return cases[:train], cases[train:train + test]
