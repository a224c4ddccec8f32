// The README's ten-line example and examples/tail.js, run as written against a real hub (only
// the address is changed to the test server's).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ApiClient } from '../src/index.js';
import { e2eSkipReason, HubProcess, track } from './support/hub-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const skip = e2eSkipReason();

function readmeExample() {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('## Ten lines'));
  return section.match(/```js\n([\s\S]*?)```/)[1];
}

describe('README and examples', { skip: skip ?? false }, () => {
  let hub;
  before(async () => {
    hub = await new HubProcess().start();
  });
  after(() => hub?.kill());

  test('the README example has at most ten lines of code and runs as written', async () => {
    const code = readmeExample();
    const lines = code.split('\n').filter((l) => l.trim() && !l.trim().startsWith('//'));
    assert.ok(lines.length <= 10, `${lines.length} lines`);
    const file = `${root}.readme-example.mjs`; // inside the package, so '@loopai/client' resolves
    writeFileSync(file, code.replaceAll('http://127.0.0.1:8000', hub.http));
    try {
      const out = await new Promise((resolve, reject) => {
        execFile(process.execPath, [file], { cwd: root, timeout: 20_000, env: { ...process.env, LOOPAI_TOKEN: '' } },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
      });
      assert.match(out, /^hello \{ n: 1 \}$/m);
      assert.match(out, /hub: closed/);
    } finally {
      rmSync(file, { force: true });
    }
  });

  test('examples/tail.js prints each event as a JSON line', async () => {
    const tail = track(spawn(process.execPath, ['examples/tail.js', hub.http, 'tail.demo'], { cwd: root }));
    let out = '';
    let err = '';
    tail.stdout.on('data', (d) => { out += d; });
    tail.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((resolve) => tail.once('exit', resolve));
    try {
      const deadline = Date.now() + 15_000;
      while (!err.includes('# open') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const api = new ApiClient(hub.http);
      // The subscription may land just after `open`: publish until the first line shows.
      for (let n = 0; !out.includes('\n') && Date.now() < deadline; n++) {
        await api.publishEvent('tail.demo', 'tick', { n });
        await new Promise((r) => setTimeout(r, 100));
      }
      const first = JSON.parse(out.split('\n')[0]);
      assert.equal(first.kind, 'event');
      assert.equal(first.topic, 'tail.demo');
      assert.equal(first.type, 'tick');
    } finally {
      tail.kill('SIGINT');
      await exited;
    }
    assert.match(err, /# closed/);
  });
});
