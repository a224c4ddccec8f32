from __future__ import annotations

import json

from loopai.hub.sendqueue import SendQueue


def test_single_frame_goes_alone() -> None:
    q = SendQueue(10, 1000)
    q.push('{"a":1}')
    assert q.take_batch() == '{"a":1}'
    assert q.take_batch() is None


def test_several_frames_become_one_array_in_order() -> None:
    q = SendQueue(10, 1000)
    for i in range(4):
        q.push(json.dumps({"i": i}))
    assert json.loads(q.take_batch() or "") == [{"i": i} for i in range(4)]


def test_batches_bounded_by_bytes() -> None:
    q = SendQueue(100, 50)
    for i in range(10):
        q.push(json.dumps({"i": i, "pad": "xx"}))
    seen = []
    while (frame := q.take_batch()) is not None:
        assert len(frame) <= 50
        parsed = json.loads(frame)
        seen.extend(parsed if isinstance(parsed, list) else [parsed])
    assert [m["i"] for m in seen] == list(range(10))


def test_overflow_is_reported() -> None:
    q = SendQueue(2, 1000)
    assert q.push("1") and q.push("2")
    assert not q.push("3")
    assert len(q) == 2


def test_frames_come_out_in_order_through_any_mix_of_pushes_and_takes() -> None:
    import random

    rng = random.Random(7)
    q = SendQueue(500, 60)
    pushed: list[str] = []
    taken: list[str] = []
    for step in range(5_000):
        if rng.random() < 0.6:
            frame = json.dumps({"i": step, "p": "x" * rng.randrange(0, 40)})
            if q.push(frame):
                pushed.append(frame)
        elif (batch := q.take_batch()) is not None:
            parsed = json.loads(batch)
            taken += [json.dumps(m) for m in (parsed if isinstance(parsed, list) else [parsed])]
        assert len(q) == len(pushed) - len(taken)
        assert len(q._items) <= 2 * len(q) + 65, "what was taken is not kept"
    while (batch := q.take_batch()) is not None:
        parsed = json.loads(batch)
        taken += [json.dumps(m) for m in (parsed if isinstance(parsed, list) else [parsed])]
    assert taken == pushed
    assert q._items == [] and q._head == 0
