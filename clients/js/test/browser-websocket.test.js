// The browser path, run in Node with its browser-compatible WebSocket (--experimental-websocket):
// no `ws`, no headers, so the token must travel as ?token=, and everything else must still work.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';

import { FakeHub } from './support/fake-hub.js';

const script = `
  import { HubClient } from './src/index.js';
  const [url] = process.argv.slice(-1);
  if (typeof WebSocket.prototype.terminate === 'function') throw new Error('not the browser WebSocket');
  const hub = await HubClient.connect(url, { token: 'browser-token', backoff: { initialMs: 10, maxMs: 50 } });
  const sub = await hub.subscribe('a');
  const { cursor } = await hub.publish('a', 't', { n: 1 });
  const items = [];
  for await (const item of sub) { items.push(item); if (items.length === 1) break; }
  console.log(JSON.stringify({ cursor, items, state: hub.state }));
  await hub.close();
`;

let hub;
before(async () => {
  hub = await new FakeHub().start();
});
after(() => hub.stop());

test('native WebSocket: ?token=, subscribe, publish, iterate, close', async () => {
  const cwd = new URL('..', import.meta.url);
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['--experimental-websocket', '--input-type=module', '-e', script, hub.url],
      { cwd, timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
  });
  const result = JSON.parse(out.trim().split('\n').at(-1));
  assert.equal(result.cursor, 'e:1-0');
  assert.equal(result.items[0].data.n, 1);
  assert.equal(result.state, 'open');
  assert.equal(hub.requests[0].url, '/ws?token=browser-token');
  assert.equal(hub.requests[0].headers.authorization, undefined);
});
