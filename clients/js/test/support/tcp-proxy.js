// A TCP proxy between the client and the hub that can cut or stall the link on demand: the
// fault hook for "the connection was lost" without touching either end.

import { createConnection, createServer } from 'node:net';

export class TcpProxy {
  constructor(targetPort, targetHost = '127.0.0.1') {
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.pairs = new Set();
    this.holes = new Set();
    this.accepted = 0;
  }

  async start() {
    this.server = createServer((client) => this._accept(client));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  _accept(client) {
    this.accepted += 1;
    const upstream = createConnection(this.targetPort, this.targetHost);
    const pair = { client, upstream, stalled: false };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      upstream.destroy();
      // A stalled link stays a black hole for the client even after the server gave up on it,
      // so only the client's own heartbeat can notice.
      if (pair.stalled) this.holes.add(client);
      else client.destroy();
    };
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      from.on('data', (chunk) => {
        if (!pair.stalled) to.write(chunk);
      });
      from.on('error', end);
      from.on('close', end);
    }
  }

  /** Send new links to another port (a load balancer moving clients to another instance). */
  retarget(port) {
    this.targetPort = port;
  }

  /** Destroy every open link at once (both sides see a reset, no close frame). */
  cut() {
    const n = this.pairs.size;
    for (const { client, upstream } of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    return n;
  }

  /** Keep the links open but drop everything on them: a dead peer behind a live TCP socket. */
  stall() {
    for (const pair of this.pairs) pair.stalled = true;
    return this.pairs.size;
  }

  async stop() {
    this.cut();
    for (const socket of this.holes) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
