// A throwaway redis-server on a free port for the multi-instance tests (never the shared one).

import { execFileSync, spawn } from 'node:child_process';
import { createConnection } from 'node:net';

import { freePort, track } from './hub-process.js';

export function redisAvailable() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = createConnection(port, '127.0.0.1');
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
  });
}

export class RedisServer {
  async start() {
    this.port = await freePort();
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no'], { stdio: 'ignore' });
    track(this.proc);
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (Date.now() > deadline) {
        await this.stop(); // never left running by a start that failed
        throw new Error('redis-server did not start');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.url = `redis://127.0.0.1:${this.port}/0`;
    return this;
  }

  async stop() {
    if (this.proc?.exitCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}
