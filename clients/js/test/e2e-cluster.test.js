// A move to another instance: two `loopai serve` processes sharing one Redis; the subscriber's
// "load balancer" (a TCP proxy) sends it to instance B when A drains or dies. With history in
// Redis, the resume on B must lose nothing and repeat nothing, and no gap may appear.
// Runs once the Redis backplane is in the package; skips (saying why) before that.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { e2eSkipReason, hasRedisBackplane, HubProcess } from './support/hub-process.js';
import { RedisServer, redisAvailable } from './support/redis-server.js';
import { assertOnceInOrder, assertReceived, opens, startStream, startSubscriber, until } from './support/streams.js';
import { TcpProxy } from './support/tcp-proxy.js';

function skipReason() {
  const base = e2eSkipReason();
  if (base) return base;
  if (!redisAvailable()) return 'redis-server is not installed';
  if (!hasRedisBackplane()) return 'this loopai has no Redis backplane yet (loopai.hub.backplane.redis)';
  return null;
}

const skip = skipReason();
if (skip) console.log(`# cluster e2e skipped: ${skip}`);

describe('e2e: two instances on one Redis', { skip: skip ?? false }, () => {
  let redis;
  before(async () => {
    redis = await new RedisServer().start();
  });
  after(() => redis?.stop());

  for (const how of ['drain', 'kill']) {
    test(`${how} of the subscriber's instance: it moves to the other and misses nothing`, async (t) => {
      const env = { LOOPAI_REDIS_URL: redis.url, LOOPAI_TOKEN_SECRET: 'cluster-e2e-secret' };
      const a = await new HubProcess({ env: { ...env, LOOPAI_INSTANCE_ID: `a-${how}` } }).start();
      t.after(() => a.kill());
      const b = await new HubProcess({ env: { ...env, LOOPAI_INSTANCE_ID: `b-${how}` } }).start();
      t.after(() => b.kill());
      const proxy = await new TcpProxy(a.port).start();
      t.after(() => proxy.stop());

      const topic = `e2e.cluster.${how}`;
      const sub = await startSubscriber(`ws://127.0.0.1:${proxy.port}/ws`, topic);
      t.after(() => sub.client.close());
      assert.equal(sub.client.welcome.instance, `a-${how}`);
      const stream = await startStream(b.ws, topic); // published on B, delivered on A via Redis
      try {
        await until(() => stream.acked.length >= 30 && sub.events.length >= 10, 'events crossing instances');
        proxy.retarget(b.port);
        if (how === 'drain') await a.terminate();
        else await a.kill();
        await until(() => opens(sub) === 2, 'the move to B');
        const moved = stream.acked.length;
        await until(() => stream.acked.length >= moved + 30, 'more events after the move');
      } finally {
        await stream.stop();
      }
      await until(() => sub.events.at(-1)?.n === stream.acked.at(-1).n, 'the last event', 10_000).catch(() => {});

      assert.equal(sub.client.welcome.instance, `b-${how}`);
      assert.deepEqual(stream.failed, []);
      assert.deepEqual(sub.gaps, []);
      assertOnceInOrder(sub.events);
      assertReceived(sub.events, stream.acked, `${how} and move`);
      assert.equal(sub.events.length, stream.acked.length);
    });
  }
});
