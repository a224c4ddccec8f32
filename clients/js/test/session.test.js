// The sans-I/O session: strings in, records out. No sockets, no timers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { closeAction, Session } from '../src/session.js';

const welcome = JSON.stringify({
  op: 'welcome', session: 's1', instance: 'i1', protocol: 1, heartbeat_ms: 25000, max_frame_bytes: 65536,
});
const ev = (topic, cursor, n, extra = {}) => ({ op: 'event', topic, cursor, type: 't', ts: 1, data: { n }, ...extra });

function subscribed(session, topics, ref) {
  return session.receive(JSON.stringify({
    op: 'subscribed', ref, topics: topics.map((t) => ({ topic: t, cursor: null, recovered: true })),
  }));
}

function ready(topics = ['a']) {
  const s = new Session();
  s.receive(welcome);
  const { ref } = s.subscribe(topics);
  subscribed(s, topics, ref);
  return s;
}

const kinds = (records) => records.map((r) => r.kind);
const events = (records) => records.filter((r) => r.kind === 'event').map((r) => r.event.data.n);

describe('frames in', () => {
  test('welcome is recorded and reported', () => {
    const s = new Session();
    const out = s.receive(welcome);
    assert.deepEqual(kinds(out), ['welcome']);
    assert.equal(s.welcome.heartbeat_ms, 25000);
  });

  test('an array frame yields its messages in order', () => {
    const s = ready();
    const out = s.receive(JSON.stringify([ev('a', 'e:1-0', 1), ev('a', 'e:2-0', 2), { op: 'pong' }, ev('a', 'e:3-0', 3)]));
    assert.deepEqual(kinds(out), ['event', 'event', 'pong', 'event']);
    assert.deepEqual(events(out), [1, 2, 3]);
    assert.equal(s.cursor('a'), 'e:3-0');
  });

  test('events carry topic, cursor, type, ts and data', () => {
    const s = ready();
    const [rec] = s.receive(JSON.stringify(ev('a', 'e:1-0', 7, { type: 'task.created', ts: 1234 })));
    assert.deepEqual(rec.event, { kind: 'event', topic: 'a', cursor: 'e:1-0', type: 'task.created', ts: 1234, data: { n: 7 } });
  });

  for (const [name, frame] of [
    ['not JSON', '{"op":'],
    ['a number', '42'],
    ['no op', '{"topic":"a"}'],
    ['a non-string op', '{"op":5}'],
    ['an event without a cursor', '{"op":"event","topic":"a","type":"t"}'],
    ['an event with a numeric topic', '{"op":"event","topic":1,"cursor":"c","type":"t"}'],
    ['a subscribed without topics', '{"op":"subscribed"}'],
    ['an error without a code', '{"op":"error","message":"m"}'],
  ]) {
    test(`malformed: ${name} → protocol_error, nothing else`, () => {
      const s = ready();
      const out = s.receive(frame);
      assert.deepEqual(kinds(out), ['protocol_error']);
      assert.equal(s.cursor('a'), null);
    });
  }

  test('a bad message inside an array spoils only itself', () => {
    const s = ready();
    const out = s.receive(JSON.stringify([ev('a', 'e:1-0', 1), 'junk', { op: 'nope' }, ev('a', 'e:2-0', 2)]));
    assert.deepEqual(kinds(out), ['event', 'protocol_error', 'protocol_error', 'event']);
    assert.match(out[2].problem, /unknown op 'nope'/);
  });

  test('binary data is a protocol error', () => {
    const s = ready();
    assert.deepEqual(kinds(s.receive(new Uint8Array([1, 2]))), ['protocol_error']);
  });

  test('an event for a topic never asked for is reported and dropped', () => {
    const s = ready(['a']);
    const out = s.receive(JSON.stringify(ev('other', 'e:1-0', 1)));
    assert.deepEqual(kinds(out), ['protocol_error']);
    assert.match(out[0].problem, /unsubscribed topic 'other'/);
    assert.equal(s.cursor('other'), null);
  });

  test('late events after unsubscribe are dropped quietly until unsubscribed', () => {
    const s = ready(['a']);
    const { ref } = s.unsubscribe(['a']);
    assert.deepEqual(s.receive(JSON.stringify(ev('a', 'e:1-0', 1))), []);
    const out = s.receive(JSON.stringify({ op: 'unsubscribed', ref, topics: ['a'] }));
    assert.deepEqual(kinds(out), ['reply']);
    assert.deepEqual(kinds(s.receive(JSON.stringify(ev('a', 'e:2-0', 2)))), ['protocol_error']);
  });
});

describe('exactly once', () => {
  test('a replayed cursor is dropped', () => {
    const s = ready();
    s.receive(JSON.stringify([ev('a', 'e:1-0', 1), ev('a', 'e:2-0', 2)]));
    s.connectionLost();
    s.receive(welcome);
    const out = s.receive(JSON.stringify([ev('a', 'e:2-0', 2), ev('a', 'e:3-0', 3)]));
    assert.deepEqual(events(out), [3]);
  });

  test('resubscribe frames resume from the last cursor of each topic', () => {
    const s = ready(['a', 'b']);
    s.receive(JSON.stringify(ev('a', 'e:5-0', 5)));
    s.connectionLost();
    const frames = s.resubscribeFrames();
    assert.equal(frames.length, 1);
    const msg = JSON.parse(frames[0].frame);
    assert.deepEqual(msg.topics, ['a', 'b']);
    assert.deepEqual(msg.resume, { a: 'e:5-0' });
    assert.equal(msg.ref, frames[0].ref);
  });

  test('a fresh subscription resumes from the cursor the server reported', () => {
    const s = new Session();
    s.receive(welcome);
    const { ref } = s.subscribe(['a']);
    s.receive(JSON.stringify({ op: 'subscribed', ref, topics: [{ topic: 'a', cursor: 'e:9-0', recovered: null }] }));
    const msg = JSON.parse(s.resubscribeFrames()[0].frame);
    assert.deepEqual(msg.resume, { a: 'e:9-0' });
  });

  test('a resumed subscription keeps its own cursor, not the latest', () => {
    const s = ready();
    s.receive(JSON.stringify(ev('a', 'e:1-0', 1)));
    s.connectionLost();
    const { ref } = s.resubscribeFrames()[0];
    s.receive(JSON.stringify({ op: 'subscribed', ref, topics: [{ topic: 'a', cursor: 'e:9-0', recovered: true }] }));
    assert.equal(s.cursor('a'), 'e:1-0');
  });

  test('subscribe with since sends resume', () => {
    const s = new Session();
    const { frame } = s.subscribe(['a', 'b'], { a: 'e:3-0' });
    assert.deepEqual(JSON.parse(frame).resume, { a: 'e:3-0' });
  });

  test('resubscribe frames stay under the frame limit', () => {
    const s = new Session();
    const topics = Array.from({ length: 200 }, (_, i) => `topic-${i}-${'x'.repeat(40)}`);
    s.subscribe(topics);
    const frames = s.resubscribeFrames(2048);
    assert.ok(frames.length > 1);
    for (const { frame } of frames) assert.ok(frame.length <= 2048, `${frame.length}`);
    assert.deepEqual(frames.flatMap(({ frame }) => JSON.parse(frame).topics), topics);
  });

  test('an empty topic held before cannot be resumed: a gap with since null says so', () => {
    const s = new Session();
    s.receive(welcome);
    const first = s.subscribe(['quiet', 'busy']);
    s.receive(JSON.stringify({ op: 'subscribed', ref: first.ref, topics: [
      { topic: 'quiet', cursor: null, recovered: false }, { topic: 'busy', cursor: 'e:4-0', recovered: false }] }));
    s.connectionLost();
    const again = s.resubscribeFrames()[0];
    assert.deepEqual(JSON.parse(again.frame).resume, { busy: 'e:4-0' });
    const out = s.receive(JSON.stringify({ op: 'subscribed', ref: again.ref, topics: [
      { topic: 'quiet', cursor: 'e:2-0', recovered: false }, { topic: 'busy', cursor: 'e:4-0', recovered: true }] }));
    assert.deepEqual(kinds(out), ['gap', 'active', 'active', 'reply']);
    assert.deepEqual(out[0].gap, { kind: 'gap', topic: 'quiet', since: null, oldest: 'e:2-0' });
  });

  test('gap is its own record and keeps the subscription', () => {
    const s = ready();
    const out = s.receive(JSON.stringify({ op: 'gap', topic: 'a', since: 'old:1-0', oldest: 'new:1-0' }));
    assert.deepEqual(out[0], { kind: 'gap', gap: { kind: 'gap', topic: 'a', since: 'old:1-0', oldest: 'new:1-0' } });
    assert.deepEqual(events(s.receive(JSON.stringify(ev('a', 'new:1-0', 1)))), [1]);
  });
});

describe('requests and replies', () => {
  test('publish replies are matched by ref', () => {
    const s = ready();
    const { ref, frame } = s.publish('a', 'thing.done', { x: 1 });
    assert.deepEqual(JSON.parse(frame), { op: 'publish', topic: 'a', type: 'thing.done', data: { x: 1 }, ref });
    const [rec] = s.receive(JSON.stringify({ op: 'published', ref, topic: 'a', cursor: 'e:1-0' }));
    assert.equal(rec.kind, 'reply');
    assert.equal(rec.msg.cursor, 'e:1-0');
  });

  test('publish carries an idempotency key when given one', () => {
    const s = ready();
    const { ref, frame } = s.publish('a', 't', 1, 'key-1');
    assert.deepEqual(JSON.parse(frame), { op: 'publish', topic: 'a', type: 't', data: 1, idempotency_key: 'key-1', ref });
  });

  test('an error with a known ref settles that request', () => {
    const s = ready();
    const { ref } = s.publish('tasks', 't', null);
    const [rec] = s.receive(JSON.stringify({ op: 'error', ref, code: 'forbidden', message: 'no' }));
    assert.equal(rec.kind, 'reply');
    assert.equal(rec.op, 'error');
    assert.equal(rec.msg.code, 'forbidden');
  });

  test('an error tied to nothing is reported as such', () => {
    const s = ready();
    const [rec] = s.receive(JSON.stringify({ op: 'error', code: 'bad_request', message: 'eh' }));
    assert.equal(rec.kind, 'error');
  });

  test('one refused topic leaves the others subscribed', () => {
    const s = new Session();
    const { ref } = s.subscribe(['ok', 'bad']);
    const out = [
      ...s.receive(JSON.stringify({ op: 'error', ref, topic: 'bad', code: 'forbidden', message: 'no' })),
      ...s.receive(JSON.stringify({ op: 'subscribed', ref, topics: [{ topic: 'ok', cursor: null }] })),
    ];
    assert.deepEqual(kinds(out), ['refused', 'active', 'reply']);
    assert.deepEqual(s.wanted(), ['ok']);
  });

  test('one error may refuse several topics for one reason', () => {
    const s = new Session();
    const { ref } = s.subscribe(['ok', 'x1', 'x2']);
    const out = [
      ...s.receive(JSON.stringify({ op: 'error', ref, topic: 'x1', topics: ['x1', 'x2'],
        code: 'too_many_subscriptions', message: 'limit' })),
      ...s.receive(JSON.stringify({ op: 'subscribed', ref, topics: [{ topic: 'ok', cursor: null }] })),
    ];
    assert.deepEqual(kinds(out), ['refused', 'refused', 'active', 'reply']);
    assert.deepEqual(s.wanted(), ['ok']);
  });

  test('every topic refused settles the request without a subscribed', () => {
    const s = new Session();
    const { ref } = s.subscribe(['bad']);
    const out = s.receive(JSON.stringify({ op: 'error', ref, topic: 'bad', code: 'invalid_topic', message: 'no' }));
    assert.deepEqual(kinds(out), ['refused', 'reply']);
    assert.equal(s.pending.size, 0);
  });

  test('a transient refusal keeps the topics wanted', () => {
    const s = new Session();
    const { ref } = s.subscribe(['a']);
    const out = s.receive(JSON.stringify({ op: 'error', ref, code: 'unavailable', message: 'backplane down' }));
    assert.equal(out[0].kind, 'subscribe_failed');
    assert.deepEqual(s.wanted(), ['a']);
  });

  test('connectionLost returns the refs that never got a reply', () => {
    const s = ready();
    const { ref } = s.publish('a', 't', 1);
    assert.deepEqual(s.connectionLost(), [ref]);
    assert.equal(s.welcome, null);
    assert.equal(s.isActive('a'), false);
  });

  test('reconnect carries retry_ms', () => {
    const s = ready();
    const [rec] = s.receive(JSON.stringify({ op: 'reconnect', reason: 'draining', retry_ms: 500 }));
    assert.deepEqual(rec, { kind: 'reconnect', retryMs: 500, reason: 'draining' });
  });
});

describe('close codes', () => {
  for (const code of [1000, 1001, 1006, 1011, 1012, 4408, 4429]) {
    test(`${code} → reconnect`, () => assert.equal(closeAction(code), 'reconnect'));
  }
  for (const code of [1008, 1009, 4401, 4403]) {
    test(`${code} → stop`, () => assert.equal(closeAction(code), 'stop'));
  }
});
