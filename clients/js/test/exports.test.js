// The public surface is what index.js exports; this pins it, and checks every source file can
// load untouched in a browser as <script type="module"> (relative `.js` imports, no Node
// built-ins, `ws` only through the lazy dynamic import).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as client from '../src/index.js';

test('exported names', () => {
  assert.deepEqual(Object.keys(client).sort(), [
    'ApiClient', 'ApiError', 'CloseCode', 'DEFAULT_BACKOFF', 'HubClient', 'HubClosedError', 'HubError',
    'HubProtocolError', 'HubRequestError', 'LoopaiError', 'Session', 'Subscription', 'backoff',
    'backoffDelay', 'closeAction', 'isEvent',
  ]);
});

test('every exported name is declared in types/index.d.ts', () => {
  const dts = readFileSync(new URL('../types/index.d.ts', import.meta.url), 'utf8');
  for (const name of Object.keys(client)) {
    assert.match(dts, new RegExp(`export declare (class|function|const) ${name}\\b`), name);
  }
});

test('errors share one root', () => {
  for (const E of [client.HubError, client.HubRequestError, client.HubProtocolError, client.HubClosedError, client.ApiError]) {
    assert.ok(new E({ code: 'x', message: 'm', status: 0 }) instanceof client.LoopaiError, E.name);
  }
});

const srcDir = new URL('../src/', import.meta.url);
for (const file of readdirSync(srcDir).filter((f) => f.endsWith('.js'))) {
  test(`src/${file} loads in a browser without a build step`, () => {
    const text = readFileSync(new URL(file, srcDir), 'utf8');
    const staticImports = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]);
    for (const spec of staticImports) assert.match(spec, /^\.\/[\w-]+\.js$/, `${file} imports ${spec}`);
    const dynamicImports = [...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]);
    assert.ok(dynamicImports.every((s) => s === 'ws'), `${file}: ${dynamicImports}`);
    assert.doesNotMatch(text, /\brequire\(|\bprocess\.|\bBuffer\b|__dirname|node:/, file);
  });
}
