"""The subscription index on its own: topics in, members out, no sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loopai.hub.subscriptions import SubscriptionIndex
from loopai.hub.types import Topic

A, B = Topic("a"), Topic("b")


def test_add_and_lookup() -> None:
    index: SubscriptionIndex[str, None] = SubscriptionIndex()
    index.add(A, "c1", None)
    index.add(A, "c2", None)
    index.add(B, "c1", None)
    assert list(index.members(A)) == ["c1", "c2"]
    assert index.count(A) == 2 and index.count(Topic("zz")) == 0
    assert list(index.members(Topic("zz"))) == []
    assert A in index and Topic("zz") not in index
    assert sorted(index.topics()) == ["a", "b"] and len(index) == 2


def test_remove_returns_the_value_and_drops_empty_topics() -> None:
    index: SubscriptionIndex[str, list[int]] = SubscriptionIndex()
    index.add(A, "c1", [1])
    assert index.remove(A, "c2") is None
    assert index.remove(A, "c1") == [1]
    assert A not in index and len(index) == 0
    assert index.remove(A, "c1") is None


def test_add_again_replaces_the_value() -> None:
    index: SubscriptionIndex[str, list[int]] = SubscriptionIndex()
    index.add(A, "c1", [1])
    index.add(A, "c1", [])
    assert dict(index.members(A)) == {"c1": []}


def test_remove_from_reports_the_topics_left_empty() -> None:
    index: SubscriptionIndex[str, None] = SubscriptionIndex()
    index.add(A, "c1", None)
    index.add(B, "c1", None)
    index.add(B, "c2", None)
    assert index.remove_from("c1", [A, B, Topic("zz")]) == [A]
    assert list(index.members(B)) == ["c2"]
    assert index.remove_from("c1", [A, B]) == []


def test_members_keep_insertion_order() -> None:
    index: SubscriptionIndex[int, None] = SubscriptionIndex()
    for i in range(5):
        index.add(A, i, None)
    index.remove(A, 2)
    index.add(A, 2, None)
    assert list(index.members(A)) == [0, 1, 3, 4, 2]


ops = st.lists(st.tuples(st.booleans(), st.sampled_from("abc"), st.integers(0, 3)),
               max_size=40)


@given(ops)
def test_matches_a_model_of_sets(steps: list[tuple[bool, str, int]]) -> None:
    index: SubscriptionIndex[int, None] = SubscriptionIndex()
    model: dict[str, set[int]] = {}
    for add, name, member in steps:
        topic = Topic(name)
        if add:
            index.add(topic, member, None)
            model.setdefault(name, set()).add(member)
        else:
            index.remove(topic, member)
            model.get(name, set()).discard(member)
            if not model.get(name, True):
                del model[name]
        assert {t: set(index.members(t)) for t in index.topics()} == model
