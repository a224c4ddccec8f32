// The shipped .d.ts compiles under `tsc --strict` and types the README's usage (test/types/).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = `${root}node_modules/typescript/bin/tsc`;

test('types/index.d.ts: usage compiles, misuse is rejected', { skip: existsSync(tsc) ? false : 'typescript not installed (npm ci)' }, async () => {
  const { code, output } = await new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', 'test/types/tsconfig.json'], { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, output: stdout + stderr });
    });
  });
  assert.equal(code, 0, output);
});
