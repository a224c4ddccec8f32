import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoff, backoffDelay } from '../src/backoff.js';

test('the ceiling doubles per attempt and stops at maxMs', () => {
  const top = () => 0.999999;
  const opts = { initialMs: 100, maxMs: 1000 };
  assert.deepEqual([0, 1, 2, 3, 4, 10, 1000].map((a) => backoffDelay(a, opts, top)), [100, 200, 400, 800, 1000, 1000, 1000]);
});

test('full jitter: the lowest draw is zero', () => {
  assert.equal(backoffDelay(5, {}, () => 0), 0);
});

test('delays stay within [0, ceiling] and vary', () => {
  const delays = Array.from({ length: 200 }, () => backoffDelay(3, { initialMs: 50, maxMs: 10_000 }));
  assert.ok(delays.every((d) => Number.isInteger(d) && d >= 0 && d <= 400));
  assert.ok(new Set(delays).size > 10, 'jitter should spread delays');
});

test('the generator ends after maxAttempts', () => {
  assert.equal([...backoff({ maxAttempts: 4 })].length, 4);
});

test('nonsense options are refused', () => {
  assert.throws(() => backoffDelay(0, { initialMs: 10, maxMs: 5 }), RangeError);
  assert.throws(() => backoffDelay(0, { factor: 0.5 }), RangeError);
  assert.throws(() => backoffDelay(0, { maxAttempts: 0 }), RangeError);
});
