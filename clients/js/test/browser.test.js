// The client in a real browser (headless Chromium), loaded straight from src/ as
// <script type="module"> with no build step, against a real hub with auth on: the token must
// travel as ?token= (browsers cannot set WebSocket headers), and a cut link must be survived
// with every event delivered once, in order. The page reports back over HTTP.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ApiClient } from '../src/index.js';
import { e2eSkipReason, freePort, HubProcess, track } from './support/hub-process.js';
import { TcpProxy } from './support/tcp-proxy.js';

const CHROMIUM = process.env.CHROMIUM_BIN || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const skip = e2eSkipReason() ?? (CHROMIUM ? null : 'no Chromium (apt-get install chromium, or set CHROMIUM_BIN)');
if (skip) console.log(`# browser test skipped: ${skip}`);

const root = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'browser-e2e-key-0123456789';

const PAGE = `<!doctype html><meta charset="utf-8"><title>loopai client</title>
<script type="module">
  import { HubClient, isEvent } from '/src/index.js';
  const q = new URLSearchParams(location.search);
  const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
  const wait = async (pred) => { while (!pred()) await new Promise((r) => setTimeout(r, 20)); };
  try {
    const hub = await HubClient.connect(q.get('hub'), { token: q.get('token'), backoff: { initialMs: 50, maxMs: 200 } });
    const states = [];
    hub.on('state', (s) => states.push(s.state));
    const got = [];
    await hub.subscribe('browser.demo', (item) => isEvent(item, 'tick') && got.push(item.data.n));
    for (let n = 0; n < 5; n++) await hub.publish('browser.demo', 'tick', { n });
    await wait(() => got.length >= 5);
    await fetch('/cut');                       // the test cuts the link under the page
    // A publish sent as the cut lands fails with "connection lost before the reply": retried
    // with the same idempotency key, as docs/protocol.md says to; later ones wait for the reconnect.
    const publish = async (n) => {
      for (;;) {
        try { return await hub.publish('browser.demo', 'tick', { n }, { idempotencyKey: 'tick-' + n }); }
        catch (err) { if (!String(err).includes('connection lost')) throw err; }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    for (let n = 5; n < 10; n++) await publish(n);
    await wait(() => got.length >= 10);
    await report({ ok: true, got, states, nativeWs: !('terminate' in WebSocket.prototype) });
    await hub.close();
  } catch (err) {
    await report({ ok: false, error: String(err && err.stack || err) });
  }
</script>`;

describe('in a real browser', { skip: skip ?? false }, () => {
  let hub;
  let pagePort;
  before(async () => {
    pagePort = await freePort();
    hub = await new HubProcess({
      env: {
        LOOPAI_API_KEYS: JSON.stringify([{ name: 'browser', key: KEY, scopes: ['admin'] }]),
        // The page comes from another origin than the hub's: it must be allowed by name.
        LOOPAI_ALLOWED_ORIGINS: JSON.stringify([`http://127.0.0.1:${pagePort}`]),
      },
    }).start();
  });
  after(() => hub?.kill());

  test('loads from src/ unbundled, authenticates with ?token=, survives a cut link', async (t) => {
    const proxy = await new TcpProxy(hub.port).start();
    t.after(() => proxy.stop());
    const { token } = await new ApiClient(hub.http, { token: KEY }).wsToken({ scopes: ['subscribe', 'publish'] });

    let resolveResult;
    const result = new Promise((resolve) => { resolveResult = resolve; });
    const server = createServer((req, res) => {
      const path = new URL(req.url, 'http://x').pathname;
      if (path === '/page.html') return send(res, 200, PAGE, 'text/html');
      if (path === '/cut') return send(res, 200, String(proxy.cut()), 'text/plain');
      if (path === '/result') {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => { resolveResult(JSON.parse(body)); send(res, 200, 'ok', 'text/plain'); });
        return undefined;
      }
      if (/^\/src\/[\w-]+\.js$/.test(path)) return send(res, 200, readFileSync(join(root, path)), 'text/javascript');
      return send(res, 404, 'not found', 'text/plain');
    });
    await new Promise((resolve) => server.listen(pagePort, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));

    const profile = mkdtempSync(join(tmpdir(), 'loopai-chromium-'));
    t.after(() => rmSync(profile, { recursive: true, force: true }));
    const page = `http://127.0.0.1:${server.address().port}/page.html?hub=${encodeURIComponent(`ws://127.0.0.1:${proxy.port}/ws`)}&token=${encodeURIComponent(token)}`;
    const browser = track(spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--no-first-run', `--user-data-dir=${profile}`, page], { stdio: 'ignore' }));
    const exited = new Promise((resolve) => browser.once('exit', resolve));
    t.after(async () => {
      browser.kill('SIGKILL');
      await exited;
    });

    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, error: 'no report within 60 s' }), 60_000);
    });
    const report = await Promise.race([result, timeout]);
    clearTimeout(timer);
    assert.equal(report.ok, true, report.error);
    assert.equal(report.nativeWs, true);
    assert.deepEqual(report.got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(report.states.includes('reconnecting'), JSON.stringify(report.states));
    assert.ok(proxy.accepted >= 2);
  });
});

function send(res, status, body, type) {
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(body);
}

