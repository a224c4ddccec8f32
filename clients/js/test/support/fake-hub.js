// A small hub speaking protocol v1 over real sockets (the `ws` server), with hooks to misbehave.
// It is a test peer, not a model of the real hub: just enough to drive the client's paths.

import { WebSocketServer } from 'ws';

export class FakeHub {
  /**
   * @param {object} [options]
   * @param {number} [options.heartbeatMs] sent in `welcome`
   * @param {boolean} [options.replayInclusive] replay the resume cursor itself too (a sloppy server)
   * @param {(socket: WebSocket, request: import('http').IncomingMessage) => boolean|void} [options.onConnection]
   *   runs first for each connection; return true to skip the normal welcome and handling
   * @param {(socket: WebSocket, msg: object) => boolean|void} [options.onMessage]
   *   runs first for each client message; return true when it handled the message
   */
  constructor(options = {}) {
    this.options = { heartbeatMs: 25000, replayInclusive: false, ...options };
    this.history = new Map(); // topic → [{cursor, type, data, ts}]
    this.seq = 0;
    this.connections = 0;
    this.requests = []; // {url, headers} of every upgrade
    this.received = []; // every client message, parsed
    this.sockets = new Set();
    this.subs = new Map(); // socket → Set<topic>
  }

  async start(port = 0) {
    this.server = new WebSocketServer({ port, host: '127.0.0.1' });
    await new Promise((resolve) => this.server.once('listening', resolve));
    this.port = this.server.address().port;
    this.url = `ws://127.0.0.1:${this.port}/ws`;
    this.server.on('connection', (socket, request) => this._accept(socket, request));
    return this;
  }

  async stop() {
    for (const socket of this.sockets) socket.terminate();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Drop every connection without a close frame (as a crash or a cut cable would). */
  cutAll() {
    for (const socket of this.sockets) socket.terminate();
  }

  /** Store an event and send it to every subscriber of its topic. */
  append(topic, type, data) {
    this.seq += 1;
    const event = { cursor: `e:${this.seq}-0`, type, data, ts: Date.now() };
    if (!this.history.has(topic)) this.history.set(topic, []);
    this.history.get(topic).push(event);
    for (const [socket, topics] of this.subs) {
      if (topics.has(topic)) socket.send(JSON.stringify({ op: 'event', topic, ...event }));
    }
    return event.cursor;
  }

  welcomeFrame() {
    return JSON.stringify({
      op: 'welcome', session: `s${this.connections}`, instance: 'fake', protocol: 1,
      heartbeat_ms: this.options.heartbeatMs, max_frame_bytes: 4096,
    });
  }

  _accept(socket, request) {
    this.connections += 1;
    this.requests.push({ url: request.url, headers: request.headers });
    this.sockets.add(socket);
    this.subs.set(socket, new Set());
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.subs.delete(socket);
    });
    if (this.options.onConnection?.(socket, request)) return;
    socket.send(this.welcomeFrame());
    socket.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      this.received.push(msg);
      if (this.options.onMessage?.(socket, msg)) return;
      this._handle(socket, msg);
    });
  }

  _handle(socket, msg) {
    const reply = (body) => socket.send(JSON.stringify({ ...body, ref: msg.ref }));
    if (msg.op === 'ping') reply({ op: 'pong' });
    else if (msg.op === 'publish') reply({ op: 'published', topic: msg.topic, cursor: this.append(msg.topic, msg.type, msg.data) });
    else if (msg.op === 'unsubscribe') {
      for (const topic of msg.topics) this.subs.get(socket)?.delete(topic);
      reply({ op: 'unsubscribed', topics: msg.topics });
    } else if (msg.op === 'subscribe') this._subscribe(socket, msg, reply);
    else reply({ op: 'error', code: 'unknown_op', message: msg.op });
  }

  _subscribe(socket, msg, reply) {
    const entries = msg.topics.map((topic) => {
      const events = this.history.get(topic) ?? [];
      return { topic, cursor: events.at(-1)?.cursor ?? null, recovered: true };
    });
    reply({ op: 'subscribed', topics: entries });
    for (const topic of msg.topics) {
      this.subs.get(socket)?.add(topic);
      const since = msg.resume?.[topic];
      if (!since) continue;
      const events = this.history.get(topic) ?? [];
      const at = events.findIndex((e) => e.cursor === since);
      const from = this.options.replayInclusive ? at : at + 1;
      const replay = events.slice(Math.max(0, from)).map((e) => ({ op: 'event', topic, ...e }));
      if (replay.length > 0) socket.send(JSON.stringify(replay)); // one batched frame
    }
  }
}

/** Resolve when `predicate()` holds, polling; reject after `timeoutMs` with `what`. */
export async function until(predicate, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolve with the first 'state' event of `client` matching `predicate`. */
export function nextState(client, predicate, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('timed out waiting for a state'));
    }, timeoutMs);
    const off = client.on('state', (info) => {
      if (!predicate(info)) return;
      clearTimeout(timer);
      off();
      resolve(info);
    });
  });
}
