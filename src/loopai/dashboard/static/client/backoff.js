// Reconnect delays: exponential backoff with full jitter, bounded. Pure, so it is tested alone.
// Full jitter (a uniform draw in [0, ceiling]) spreads a crowd of clients that lost the same
// server, so they do not all come back at the same instant.

export const DEFAULT_BACKOFF = Object.freeze({
  /** Ceiling of the first delay, in milliseconds. */
  initialMs: 250,
  /** Upper bound of any delay, in milliseconds. */
  maxMs: 10_000,
  /** Growth of the ceiling per failed attempt. */
  factor: 2,
  /** Failed attempts in a row after which the client gives up; Infinity never gives up. */
  maxAttempts: Infinity,
});

/**
 * Checks and completes backoff options; throws RangeError on nonsense values.
 * @param {Partial<typeof DEFAULT_BACKOFF>} [options]
 */
export function backoffOptions(options = {}) {
  const opts = { ...DEFAULT_BACKOFF, ...options };
  if (!(opts.initialMs >= 0) || !(opts.maxMs >= opts.initialMs) || !(opts.factor >= 1)) {
    throw new RangeError('backoff needs 0 <= initialMs <= maxMs and factor >= 1');
  }
  if (!(opts.maxAttempts >= 1)) throw new RangeError('backoff maxAttempts must be >= 1');
  return opts;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry after a loss).
 * @param {number} attempt
 * @param {Partial<typeof DEFAULT_BACKOFF>} [options]
 * @param {() => number} [random] uniform in [0, 1); injectable for tests
 * @returns {number} milliseconds, an integer in [0, min(maxMs, initialMs * factor ** attempt)]
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const opts = backoffOptions(options);
  const ceiling = Math.min(opts.maxMs, opts.initialMs * opts.factor ** Math.max(0, attempt));
  return Math.floor(random() * (ceiling + 1));
}

/**
 * Delays for successive attempts; ends after `maxAttempts` of them.
 * @param {Partial<typeof DEFAULT_BACKOFF>} [options]
 * @param {() => number} [random]
 */
export function* backoff(options = {}, random = Math.random) {
  const opts = backoffOptions(options);
  for (let attempt = 0; attempt < opts.maxAttempts; attempt++) {
    yield backoffDelay(attempt, opts, random);
  }
}
