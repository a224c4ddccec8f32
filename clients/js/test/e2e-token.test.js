// End to end against a real `loopai serve` with a 2 s token TTL: a subscriber with `getToken`
// lives through connection-token expiries (close 4401 "token expired") without losing or
// repeating an event; one with a fixed token stops with the 4401.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApiClient, HubClient, HubClosedError } from '../src/index.js';
import { e2eSkipReason, HubProcess } from './support/hub-process.js';
import { assertOnceInOrder, assertReceived, FAST, opens, startStream, startSubscriber, until } from './support/streams.js';

const skip = e2eSkipReason();
const KEY = 'js-refresh-key-0123456789';
const TTL_S = 2;

describe('e2e: connection tokens expire', { skip: skip ?? false }, () => {
  let hub;
  let api;
  before(async () => {
    hub = await new HubProcess({
      env: {
        LOOPAI_API_KEYS: JSON.stringify([{ name: 'tester', key: KEY, scopes: ['admin'] }]),
        LOOPAI_TOKEN_TTL_S: String(TTL_S),
      },
    }).start();
    api = new ApiClient(hub.http, { token: KEY });
  });
  after(async () => {
    await hub?.kill();
  });

  test('getToken: every event once, in order, across expiries', async (t) => {
    const topic = 'e2e.refresh';
    const minted = [];
    const getToken = async () => {
      const { token } = await api.wsToken({ scopes: ['subscribe'] });
      minted.push(token);
      return token;
    };
    const sub = await startSubscriber(hub.ws, topic, { getToken, tokenIn: 'query' });
    t.after(() => sub.client.close());
    const stream = await startStream(hub.ws, topic, 10, { token: KEY });
    try {
      await until(() => minted.length >= 3 && opens(sub) >= 3, 'two expiries', 4 * TTL_S * 1000 + 10_000);
    } finally {
      await stream.stop();
    }
    await until(() => sub.events.length >= stream.acked.length, 'the last events');
    const expiries = sub.states.filter((s) => s.state === 'reconnecting' && s.code === 4401);
    assert.ok(expiries.length >= 2, JSON.stringify(sub.states));
    assert.ok(expiries.every((s) => s.reason === 'token expired'));
    assert.ok(stream.acked.length > 100);
    assert.deepEqual(stream.failed, []);
    assertOnceInOrder(sub.events);
    assertReceived(sub.events, stream.acked, 'expiry');
    assert.equal(sub.events.length, stream.acked.length);
    assert.deepEqual(sub.gaps, []);
  });

  test('a fixed token: the expiry stops the client with 4401', async () => {
    const { token } = await api.wsToken();
    const client = new HubClient(hub.ws, { ...FAST, token });
    await client.connect();
    const closed = new Promise((resolve) => {
      client.on('state', (s) => s.state === 'closed' && resolve(s));
    });
    const state = await closed;
    assert.equal(state.code, 4401);
    assert.ok(client.closedError instanceof HubClosedError);
    assert.equal(client.closedError.reason, 'token expired');
  });

  test('getToken returning a refused token stops at once, no loop', async () => {
    let calls = 0;
    const client = new HubClient(hub.ws, { ...FAST, getToken: () => { calls += 1; return 'lt1.bogus.x'; } });
    await assert.rejects(client.connect(), (err) => err.closeCode === 4401);
    assert.equal(calls, 1);
  });

  test('token and getToken together are refused', () => {
    assert.throws(() => new HubClient(hub.ws, { token: 'a', getToken: () => 'b' }), TypeError);
  });
});
