// Real `loopai serve` processes for the end-to-end tests, on free ports, with their logs kept.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');

/** The `loopai` executable: `$LOOPAI_BIN`, else the repository's `.venv/bin/loopai`. */
export const LOOPAI_BIN = process.env.LOOPAI_BIN || join(REPO, '.venv/bin/loopai');

/** Why the e2e tests cannot run here, or null when they can. */
export function e2eSkipReason() {
  return existsSync(LOOPAI_BIN)
    ? null
    : `no loopai executable at ${LOOPAI_BIN} (run \`make venv\` at the repo root, or set LOOPAI_BIN)`;
}

/** Whether this `loopai` has the Redis backplane (it landed after the hub core). */
export function hasRedisBackplane() {
  try {
    execFileSync(join(dirname(LOOPAI_BIN), 'python'), ['-c', 'import loopai.hub.backplane.redis'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every server a test file starts, so none outlives it: a test that fails before its cleanup,
// or a file the runner stops (--test-timeout sends SIGTERM), still has them killed.
const live = new Set();
const killAll = () => {
  for (const proc of live) proc.kill('SIGKILL');
  live.clear();
};
process.once('exit', killAll);
for (const [signal, number] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + number);
  });
}

/** Registers a child process to be killed when this process ends. */
export function track(proc) {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

export class HubProcess {
  /** @param {{port?: number, env?: Record<string,string>}} [options] */
  constructor({ port = 0, env = {} } = {}) {
    this.port = port;
    this.env = env;
    this.dir = mkdtempSync(join(tmpdir(), 'loopai-js-e2e-'));
    this.logPath = join(this.dir, 'server.log');
    this.proc = null;
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Start (or restart on the same port) and wait until it answers /api/v1/health/live. */
  async start(timeoutMs = 30_000) {
    if (!this.port) this.port = await freePort();
    const log = openSync(this.logPath, 'a');
    this.proc = spawn(LOOPAI_BIN, ['serve', '--port', String(this.port), '--log-level', 'warning'], {
      cwd: this.dir,
      env: {
        ...process.env,
        LOOPAI_METRICS_INTERVAL_MS: '0',
        LOOPAI_DATABASE_URL: `sqlite:///${join(this.dir, 'loopai.db')}`,
        ...this.env,
      },
      stdio: ['ignore', log, log],
    });
    track(this.proc);
    closeSync(log);
    const exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    this.exited = exited;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`loopai exited early:\n${this.log()}`);
      try {
        const res = await fetch(`${this.http}/api/v1/health/live`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return this;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    await this.kill(); // never left running by a start that failed
    throw new Error(`loopai on ${this.port} not ready:\n${this.log()}`);
  }

  /** SIGTERM (drain: `reconnect`, then close 1012) and wait for the exit. */
  async terminate(timeoutMs = 20_000) {
    return this._signal('SIGTERM', timeoutMs);
  }

  /** SIGKILL: the process vanishes, sockets drop without a close frame. */
  async kill() {
    return this._signal('SIGKILL', 5_000);
  }

  async _signal(signal, timeoutMs) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return null;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  }
}
