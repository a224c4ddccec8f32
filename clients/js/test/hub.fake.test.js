// HubClient against a fake hub over real sockets: the happy path, reconnect and resume, and a
// server that misbehaves in every way the protocol forbids.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import { HubClient, HubClosedError, HubProtocolError, HubRequestError } from '../src/index.js';
import { FakeHub, nextState, until } from './support/fake-hub.js';

const FAST = { backoff: { initialMs: 10, maxMs: 50 }, requestTimeoutMs: 2000, connectTimeoutMs: 2000 };

let hub;
let client;
afterEach(async () => {
  await client?.close();
  await hub?.stop();
  client = undefined;
  hub = undefined;
});

async function setup(hubOptions = {}, clientOptions = {}) {
  hub = await new FakeHub(hubOptions).start();
  client = new HubClient(hub.url, { ...FAST, ...clientOptions });
  const errors = [];
  client.on('error', (err) => errors.push(err));
  return errors;
}


describe('happy path', () => {
  test('subscribe, publish, receive; publish returns the cursor', async () => {
    await setup();
    await client.connect();
    const items = [];
    await client.subscribe('a', (item) => items.push(item));
    const { topic, cursor } = await client.publish('a', 'thing.done', { x: 1 });
    assert.equal(topic, 'a');
    assert.equal(cursor, 'e:1-0');
    await until(() => items.length === 1, 'the event');
    assert.deepEqual(items[0], { kind: 'event', topic: 'a', cursor: 'e:1-0', type: 'thing.done', ts: items[0].ts, data: { x: 1 } });
    assert.equal(client.cursor('a'), 'e:1-0');
  });

  test('async iteration yields events in order and ends on close', async () => {
    await setup();
    const sub = await client.subscribe(['a']);
    for (let i = 0; i < 5; i++) hub.append('a', 't', i);
    const seen = [];
    for await (const item of sub) {
      seen.push(item.data);
      if (seen.length === 5) break; // break unsubscribes
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    await until(() => hub.received.some((m) => m.op === 'unsubscribe'), 'unsubscribe');
  });

  test('with ws the token goes in the Authorization header', async () => {
    await setup({}, { token: 'k'.repeat(20) });
    await client.connect();
    assert.equal(hub.requests[0].headers.authorization, `Bearer ${'k'.repeat(20)}`);
    assert.doesNotMatch(hub.requests[0].url, /token=/);
  });

  test('tokenIn: query puts it in ?token= (the browser way); a function token is called per attempt', async () => {
    let calls = 0;
    await setup({}, { token: () => `tok${++calls}`, tokenIn: 'query' });
    await client.connect();
    assert.equal(hub.requests[0].url, '/ws?token=tok1');
    hub.cutAll();
    await until(() => hub.requests.length === 2 && client.state === 'open', 'a second connection');
    assert.equal(hub.requests[1].url, '/ws?token=tok2');
  });

  test('state events: connecting → open → reconnecting → connecting → open → closed', async () => {
    await setup();
    const states = [];
    client.on('state', (s) => states.push(s.state));
    await client.connect();
    hub.cutAll();
    await nextState(client, (s) => s.state === 'open');
    await client.close();
    assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'connecting', 'open', 'closed']);
  });
});

describe('subscriptions', () => {
  test('two subscriptions share a topic; the server hears unsubscribe only when both are gone', async () => {
    const errors = await setup();
    const one = [];
    const two = [];
    const first = await client.subscribe('a', (item) => one.push(item.data));
    const second = await client.subscribe('a', (item) => two.push(item.data));
    assert.equal(hub.received.filter((m) => m.op === 'subscribe').length, 1);
    hub.append('a', 't', 1);
    await until(() => one.length === 1 && two.length === 1, 'both deliveries');
    await first.unsubscribe();
    assert.equal(hub.received.filter((m) => m.op === 'unsubscribe').length, 0);
    hub.append('a', 't', 2);
    await until(() => two.length === 2, 'the second delivery');
    assert.deepEqual(one, [1]);
    await second.unsubscribe();
    assert.deepEqual(hub.received.filter((m) => m.op === 'unsubscribe').map((m) => m.topics), [['a']]);
    assert.deepEqual(errors, []);
  });

  test('events in flight after unsubscribe are dropped quietly', async () => {
    const errors = await setup({ onMessage: (socket, msg) => {
      if (msg.op !== 'unsubscribe') return false;
      // The server still had an event queued for the topic when the request arrived.
      socket.send(JSON.stringify({ op: 'event', topic: 'a', cursor: 'e:99-0', type: 't', data: 'late' }));
      socket.send(JSON.stringify({ op: 'unsubscribed', ref: msg.ref, topics: msg.topics }));
      return true;
    } });
    const seen = [];
    const sub = await client.subscribe('a', (item) => seen.push(item.data));
    await sub.unsubscribe();
    assert.deepEqual(seen, []);
    assert.deepEqual(errors, []);
  });

  test('since: the first subscribe resumes from a saved cursor', async () => {
    await setup();
    for (let i = 0; i < 4; i++) hub.append('a', 't', i);
    const seen = [];
    await client.subscribe('a', (item) => seen.push(item.data), { since: { a: 'e:2-0' } });
    await until(() => seen.length === 2, 'the replay');
    assert.deepEqual(seen, [2, 3]);
    assert.deepEqual(hub.received.find((m) => m.op === 'subscribe').resume, { a: 'e:2-0' });
  });

  test('a publish whose connection drops before the reply fails with connection_lost', async () => {
    await setup({ onMessage: (socket, msg) => {
      if (msg.op !== 'publish') return false;
      socket.terminate();
      return true;
    } });
    await client.connect();
    await assert.rejects(client.publish('a', 't', 1), (err) => err.code === 'connection_lost');
  });

  test('close() ends iterators normally and rejects later calls', async () => {
    await setup();
    const sub = await client.subscribe('a');
    const next = sub[Symbol.asyncIterator]().next();
    await client.close();
    assert.deepEqual(await next, { value: undefined, done: true });
    assert.equal(client.state, 'closed');
    await assert.rejects(client.subscribe('b'), HubClosedError);
  });
});

describe('reconnect and resume', () => {
  test('a cut connection resumes from the last cursor, every event once, in order', async () => {
    await setup({ replayInclusive: true }); // also checks duplicates are dropped
    const items = [];
    await client.subscribe('a', (item) => items.push(item.data));
    for (let i = 0; i < 3; i++) hub.append('a', 't', i);
    await until(() => items.length === 3, 'first events');
    hub.cutAll();
    for (let i = 3; i < 6; i++) hub.append('a', 't', i); // published while the client is away
    await until(() => items.length >= 6 && client.state === 'open', 'replayed events');
    hub.append('a', 't', 6);
    await until(() => items.length >= 7, 'a live event');
    assert.deepEqual(items, [0, 1, 2, 3, 4, 5, 6]);
    const resubscribe = hub.received.filter((m) => m.op === 'subscribe').at(-1);
    assert.deepEqual(resubscribe.resume, { a: 'e:3-0' });
  });

  test('reconnect op: the client leaves and comes back within retry_ms, resuming', async () => {
    await setup();
    const items = [];
    await client.subscribe('a', (item) => items.push(item.data));
    hub.append('a', 't', 0);
    await until(() => items.length === 1, 'first event');
    const reconnecting = nextState(client, (s) => s.state === 'reconnecting');
    for (const socket of hub.sockets) socket.send(JSON.stringify({ op: 'reconnect', reason: 'draining', retry_ms: 100 }));
    const info = await reconnecting;
    assert.equal(info.code, 1012);
    assert.ok(info.delayMs <= 100);
    hub.append('a', 't', 1);
    await until(() => items.length === 2 && hub.connections === 2, 'the event after the drain');
    assert.deepEqual(items, [0, 1]);
  });

  test('a silent server is detected by heartbeat and left', async () => {
    let stalled = false;
    await setup({ heartbeatMs: 100, onMessage: () => stalled });
    await client.subscribe('a', () => {});
    stalled = true; // no pong, no event: the link looks dead
    const info = await nextState(client, (s) => s.state === 'reconnecting', 2000);
    assert.match(info.reason, /no frame for \d+ ms/);
    stalled = false;
    await nextState(client, (s) => s.state === 'open');
  });

  test('4408 (slow consumer) and 1011 reconnect', async () => {
    let closes = [4408, 1011];
    await setup({ onConnection: (socket) => {
      const code = closes.shift();
      if (code) setTimeout(() => socket.close(code, 'go away'), 20);
    } });
    await client.connect();
    await until(() => hub.connections === 3 && client.state === 'open', 'third connection');
  });

  test('a transient subscribe error (unavailable) is retried on a new connection', async () => {
    let failures = 1;
    await setup({ onMessage: (socket, msg) => {
      if (msg.op !== 'subscribe' || failures-- <= 0) return false;
      socket.send(JSON.stringify({ op: 'error', ref: msg.ref, code: 'unavailable', message: 'backplane down' }));
      return true;
    } });
    const sub = await client.subscribe('a', () => {});
    assert.deepEqual(sub.topics, ['a']);
    assert.equal(hub.connections, 2);
  });

  test('gap reaches the subscriber as its own item', async () => {
    await setup();
    const items = [];
    await client.subscribe('a', (item) => items.push(item));
    for (const socket of hub.sockets) {
      socket.send(JSON.stringify({ op: 'gap', topic: 'a', since: 'old:1-0', oldest: 'e:1-0' }));
    }
    await until(() => items.length === 1, 'the gap');
    assert.deepEqual(items[0], { kind: 'gap', topic: 'a', since: 'old:1-0', oldest: 'e:1-0' });
  });

  test('publish while reconnecting waits for the connection', async () => {
    await setup();
    await client.connect();
    hub.cutAll();
    await nextState(client, (s) => s.state === 'reconnecting');
    const { cursor } = await client.publish('a', 't', 1);
    assert.equal(cursor, 'e:1-0');
  });
});

describe('bad server behaviour', () => {
  test('malformed frames, unknown ops and foreign-topic events are reported, not fatal', async () => {
    const errors = await setup();
    const items = [];
    await client.subscribe('a', (item) => items.push(item.data));
    const [socket] = hub.sockets;
    for (const frame of ['not json', '[1,2', '{"op":"surprise"}', '{"no":"op"}', '{"op":"event","topic":"a"}',
      JSON.stringify({ op: 'event', topic: 'never-asked', cursor: 'x:1-0', type: 't', data: 1 }),
      JSON.stringify([{ op: 'welcome', session: 's', heartbeat_ms: 1 }])]) {
      socket.send(frame);
    }
    socket.send(Buffer.from([0xff, 0x00]), { binary: true });
    hub.append('a', 't', 'still alive');
    await until(() => items.length === 1, 'the good event');
    assert.deepEqual(items, ['still alive']);
    assert.equal(errors.length, 8);
    assert.ok(errors.every((e) => e instanceof HubProtocolError), errors.map(String).join('\n'));
    assert.equal(client.state, 'open');
    assert.equal(hub.connections, 1);
  });

  test('4401: connect rejects with the reason, and no reconnect loop', async () => {
    await setup({ onConnection: (socket) => {
      socket.close(4401, 'invalid or expired credentials');
      return true;
    } }, { token: 'wrong-token-0123456789' });
    const closed = nextState(client, (s) => s.state === 'closed');
    await assert.rejects(client.connect(), (err) => {
      assert.ok(err instanceof HubClosedError);
      assert.equal(err.closeCode, 4401);
      assert.equal(err.code, 'refused');
      assert.match(err.message, /4401 invalid or expired credentials/);
      return true;
    });
    const info = await closed;
    assert.equal(info.code, 4401);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(hub.connections, 1);
    await assert.rejects(client.subscribe('a'), HubClosedError);
    await assert.rejects(client.publish('a', 't', 1), HubClosedError);
  });

  test('4401 after a while open ends subscriptions with the error', async () => {
    await setup();
    const sub = await client.subscribe('a');
    for (const socket of hub.sockets) socket.close(4403, 'forbidden');
    await assert.rejects(sub[Symbol.asyncIterator]().next(), (err) => err.closeCode === 4403);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(hub.connections, 1);
  });

  test('1008 stops too', async () => {
    await setup({ onConnection: (socket) => { setTimeout(() => socket.close(1008, 'too many errors'), 10); } });
    await client.connect();
    await nextState(client, (s) => s.state === 'closed');
    assert.equal(client.closedError.closeCode, 1008);
  });

  test('a refused topic rejects subscribe with the server error', async () => {
    await setup({ onMessage: (socket, msg) => {
      if (msg.op !== 'subscribe') return false;
      socket.send(JSON.stringify({ op: 'error', ref: msg.ref, topic: 'tasks', code: 'forbidden', message: 'no subscribe scope' }));
      socket.send(JSON.stringify({ op: 'subscribed', ref: msg.ref, topics: [{ topic: 'ok', cursor: null }] }));
      return true;
    } });
    await assert.rejects(client.subscribe('tasks'), (err) => err instanceof HubRequestError && err.code === 'forbidden');
    const sub = await client.subscribe(['ok', 'tasks']);
    assert.deepEqual(sub.topics, ['ok']);
    assert.equal(sub.refused[0].topic, 'tasks');
  });

  test('a publish refused by the server rejects with its code', async () => {
    await setup({ onMessage: (socket, msg) => {
      if (msg.op !== 'publish') return false;
      socket.send(JSON.stringify({ op: 'error', ref: msg.ref, code: 'forbidden', message: 'reserved topic' }));
      return true;
    } });
    await assert.rejects(client.publish('tasks', 't', 1), (err) => err instanceof HubRequestError && err.code === 'forbidden');
  });

  test('a publish larger than max_frame_bytes is refused before sending', async () => {
    await setup();
    await assert.rejects(client.publish('a', 't', 'x'.repeat(5000)), (err) => err.code === 'too_large');
    assert.equal(hub.received.filter((m) => m.op === 'publish').length, 0);
  });

  test('no welcome: the attempt times out and is retried', async () => {
    let silent = 1;
    await setup({ onConnection: () => silent-- > 0 }, { connectTimeoutMs: 100 });
    await client.connect();
    assert.equal(hub.connections, 2);
  });

  test('a throwing handler is reported and delivery goes on', async () => {
    const errors = await setup();
    const seen = [];
    await client.subscribe('a', (item) => {
      seen.push(item.data);
      if (item.data === 0) throw new Error('handler bug');
    });
    hub.append('a', 't', 0);
    hub.append('a', 't', 1);
    await until(() => seen.length === 2, 'both events');
    assert.equal(errors[0].message, 'handler bug');
  });

  test('server down at start: the client keeps trying and connects when it is up', async () => {
    hub = await new FakeHub().start();
    const { port } = hub;
    await hub.stop();
    client = new HubClient(`http://127.0.0.1:${port}`, FAST);
    const attempts = [];
    client.on('state', (s) => s.state === 'reconnecting' && attempts.push(s.delayMs));
    const connected = client.connect();
    await until(() => attempts.length >= 3, 'a few failed attempts');
    hub = await new FakeHub().start(port);
    await connected;
    assert.ok(attempts.every((d) => d >= 0 && d <= 50));
  });

  test('maxAttempts bounds the retries', async () => {
    hub = await new FakeHub().start();
    const { port } = hub;
    await hub.stop();
    hub = undefined;
    client = new HubClient(`ws://127.0.0.1:${port}/ws`, { ...FAST, backoff: { initialMs: 5, maxMs: 10, maxAttempts: 3 } });
    await assert.rejects(client.connect(), (err) => err.code === 'gave_up');
  });
});

