// End to end against real `loopai serve` processes: a subscriber to a steady stream keeps every
// event exactly once, in order, across a cut link, a stalled link, a drain and restart, and a
// kill and restart; bad credentials stop the client (4401) instead of looping.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApiClient, HubClient, HubClosedError } from '../src/index.js';
import { e2eSkipReason, HubProcess } from './support/hub-process.js';
import {
  assertOnceInOrder, assertReceived, epoch, FAST, opens, sleep, startStream, startSubscriber, until,
} from './support/streams.js';
import { TcpProxy } from './support/tcp-proxy.js';

const skip = e2eSkipReason();
if (skip) console.log(`# e2e skipped: ${skip}`);

describe('e2e: one hub process', { skip: skip ?? false }, () => {
  let hub;
  before(async () => {
    hub = await new HubProcess({ env: { LOOPAI_HEARTBEAT_MS: '500' } }).start();
  });
  after(async () => {
    await hub?.kill();
  });

  test('cut and stalled links: every event once, in order', async (t) => {
    const proxy = await new TcpProxy(hub.port).start();
    t.after(() => proxy.stop());
    const topic = 'e2e.cut';
    const sub = await startSubscriber(`ws://127.0.0.1:${proxy.port}/ws`, topic);
    t.after(() => sub.client.close());
    const stream = await startStream(hub.ws, topic);
    try {
      await until(() => stream.acked.length >= 20, 'the stream to start');
      assert.equal(proxy.cut(), 1);
      await until(() => opens(sub) === 2 && stream.acked.length >= 60, 'a reconnect after the first cut');
      proxy.cut();
      await until(() => opens(sub) === 3 && stream.acked.length >= 100, 'a reconnect after the second cut');
      // A stall: TCP stays up, nothing passes. Only the heartbeat can tell.
      proxy.stall();
      await until(() => opens(sub) === 4, 'a reconnect after the stall');
      await sleep(200);
    } finally {
      await stream.stop();
    }
    await until(() => sub.events.length >= stream.acked.length, 'the last events', 10_000).catch(() => {});
    const dead = sub.states.filter((s) => s.state === 'reconnecting').at(-1);
    assert.match(dead.reason, /no frame for \d+ ms \(heartbeat 500 ms\)/);
    assert.deepEqual(stream.failed, []);
    assertOnceInOrder(sub.events);
    assertReceived(sub.events, stream.acked, 'cut/stall');
    assert.equal(sub.events.length, stream.acked.length);
    assert.deepEqual(sub.gaps, []);
  });
});

describe('e2e: restarts', { skip: skip ?? false }, () => {
  let hub;
  before(async () => {
    hub = await new HubProcess().start();
  });
  after(async () => {
    await hub?.kill();
  });

  for (const how of ['drain (SIGTERM)', 'kill (SIGKILL)']) {
    test(`${how} and restart: a gap for the lost history, then every new event once, in order`, async (t) => {
      const topic = `e2e.restart.${how.startsWith('drain') ? 'drain' : 'kill'}`;
      const sub = await startSubscriber(hub.ws, topic);
      t.after(() => sub.client.close());
      const stream = await startStream(hub.ws, topic);
      let beforeStop;
      let oldEpoch;
      try {
        await until(() => stream.acked.length >= 30, 'the stream to start');
        beforeStop = stream.acked.length;
        oldEpoch = epoch(stream.acked[0].cursor);
        if (how.startsWith('drain')) await hub.terminate();
        else await hub.kill();
        await hub.start();
        await until(() => stream.acked.some((a) => epoch(a.cursor) !== oldEpoch), 'publishing to the new server');
        const firstNew = stream.acked.length;
        await until(() => stream.acked.length >= firstNew + 30, 'more events on the new server');
      } finally {
        await stream.stop();
      }
      await until(() => sub.events.at(-1)?.n === stream.acked.at(-1).n, 'the last event', 10_000).catch(() => {});
      await sub.client.close();

      const reconnect = sub.states.find((s) => s.state === 'reconnecting');
      assert.equal(reconnect.code, how.startsWith('drain') ? 1012 : 1006);
      assertOnceInOrder(sub.events);
      // Everything acknowledged before the stop arrived (the drain flushes queues first).
      assertReceived(sub.events, stream.acked.slice(0, beforeStop), 'before the stop');
      // History died with the process: the resume got a gap, once, from the old epoch.
      assert.equal(sub.gaps.length, 1, JSON.stringify(sub.gaps));
      assert.equal(epoch(sub.gaps[0].since), oldEpoch);
      const [gap] = sub.gaps;
      assert.ok(sub.events.slice(0, gap.at).every((e) => epoch(e.cursor) === oldEpoch));
      assert.ok(sub.events.slice(gap.at).every((e) => epoch(e.cursor) !== oldEpoch));
      // Every event the new server acknowledged arrived, after the gap.
      const fresh = stream.acked.filter((a) => epoch(a.cursor) !== oldEpoch);
      assert.ok(fresh.length >= 30);
      assertReceived(sub.events.slice(gap.at), fresh, 'after the restart');
    });
  }
});

describe('e2e: credentials', { skip: skip ?? false }, () => {
  const adminKey = 'js-e2e-admin-key-0123456789';
  let hub;
  before(async () => {
    hub = await new HubProcess({
      env: { LOOPAI_API_KEYS: JSON.stringify([{ name: 'e2e', key: adminKey, scopes: ['admin'] }]) },
    }).start();
  });
  after(async () => {
    await hub?.kill();
  });

  test('a bad key: 4401, the reason, and no reconnect loop', async () => {
    const client = new HubClient(hub.ws, { ...FAST, token: 'not-a-valid-key-0123456789' });
    const states = [];
    client.on('state', (s) => states.push(s.state));
    await assert.rejects(client.connect(), (err) => {
      assert.ok(err instanceof HubClosedError);
      assert.equal(err.closeCode, 4401);
      assert.ok(err.reason.length > 0, 'the server says why');
      return true;
    });
    await sleep(1000);
    assert.deepEqual(states, ['connecting', 'closed']);
    assert.equal(client.state, 'closed');
  });

  test('no token at all: 4401 too', async () => {
    const client = new HubClient(hub.ws, FAST);
    await assert.rejects(client.connect(), (err) => err.closeCode === 4401);
  });

  test('a good key in the header, and a minted connection token in ?token= (the browser way)', async () => {
    const api = new ApiClient(hub.http, { token: adminKey });
    const { token } = await api.wsToken({ scopes: ['subscribe', 'publish'] });
    assert.match(token, /^lt1\./);
    const viaHeader = await HubClient.connect(hub.ws, { ...FAST, token: adminKey });
    const viaQuery = await HubClient.connect(hub.ws, { ...FAST, token, tokenIn: 'query' });
    const got = [];
    await viaQuery.subscribe('e2e.auth', (item) => got.push(item.data));
    await viaHeader.publish('e2e.auth', 'hello', { ok: true });
    await until(() => got.length === 1, 'the event');
    assert.deepEqual(got, [{ ok: true }]);
    await viaHeader.close();
    await viaQuery.close();
  });

  test('the REST helper raises ApiError with code, message and trace id', async () => {
    const api = new ApiClient(hub.http, { token: 'wrong-key-0123456789abc' });
    await assert.rejects(api.topicEvents('e2e.auth'), (err) => {
      assert.equal(err.name, 'ApiError');
      assert.equal(err.status, 401);
      assert.equal(err.code, 'unauthorized');
      assert.ok(err.message.length > 0);
      assert.ok(err.traceId);
      return true;
    });
  });
});
