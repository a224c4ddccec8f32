// A numbered stream of events and a recording subscriber: the harness of the e2e tests, which
// check "every event exactly once, in order" across whatever happens to the connection.
import assert from 'node:assert/strict';

import { HubClient } from '../../src/index.js';

export const FAST = { backoff: { initialMs: 50, maxMs: 500 }, requestTimeoutMs: 5_000, connectTimeoutMs: 5_000 };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(predicate, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A publisher that numbers its events 0, 1, 2, … and remembers which were acknowledged. */
export async function startStream(url, topic, intervalMs = 10, options = {}) {
  const pub = await HubClient.connect(url, { ...FAST, ...options });
  const stream = { acked: [], failed: [], running: true, pub };
  stream.loop = (async () => {
    for (let n = 0; stream.running; n++) {
      try {
        const { cursor } = await pub.publish(topic, 'tick', { n });
        stream.acked.push({ n, cursor });
      } catch (err) {
        stream.failed.push({ n, code: err.code }); // not retried: a retry could publish twice
      }
      await sleep(intervalMs);
    }
  })();
  stream.stop = async () => {
    stream.running = false;
    await stream.loop;
    await pub.close();
  };
  return stream;
}

/** A subscriber recording events and gaps, and its connection history. */
export async function startSubscriber(url, topic, options = {}) {
  const client = new HubClient(url, { ...FAST, ...options });
  const rec = { client, events: [], gaps: [], states: [] };
  client.on('state', (s) => rec.states.push(s));
  await client.subscribe(topic, (item) => {
    if (item.kind === 'event') rec.events.push({ n: item.data.n, cursor: item.cursor });
    else rec.gaps.push({ ...item, at: rec.events.length });
  });
  return rec;
}

export function assertOnceInOrder(events) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].n > events[i - 1].n, `event ${events[i].n} after ${events[i - 1].n} (index ${i})`);
  }
  assert.equal(new Set(events.map((e) => e.cursor)).size, events.length, 'a cursor delivered twice');
}

export function assertReceived(events, expected, what) {
  const got = new Set(events.map((e) => e.n));
  const missing = expected.filter((a) => !got.has(a.n)).map((a) => a.n);
  assert.deepEqual(missing, [], `${what}: acknowledged but never delivered`);
}

export const epoch = (cursor) => cursor.slice(0, cursor.lastIndexOf(':'));
export const opens = (rec) => rec.states.filter((s) => s.state === 'open').length;
