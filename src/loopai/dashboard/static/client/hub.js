// HubClient: the driver around the sans-I/O Session. It owns the socket, the timers (connect,
// heartbeat, reconnect) and the promises; every protocol decision is the Session's.

import { backoffDelay, backoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { HubClosedError, HubError, HubProtocolError, HubRequestError } from './errors.js';
import { CloseCode, closeAction, Session } from './session.js';
import { Routes, Subscription } from './subscription.js';
import { closeSocket, dropSocket, openSocket, resolveToken, resolveWebSocket } from './transport.js';
import { Waiters } from './waiters.js';

const DEFAULT_OPTIONS = Object.freeze({
  token: null,
  getToken: null,
  WebSocket: null,
  tokenIn: 'auto',
  backoff: {},
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  heartbeatMs: null,
  stableMs: 5_000,
  logger: null,
});

const DEFAULT_HEARTBEAT_MS = 25_000;
const encoder = new TextEncoder();

function topicList(topics) {
  const list = typeof topics === 'string' ? [topics] : [...(topics ?? [])];
  if (list.length === 0 || !list.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new TypeError('topics must be a non-empty string or a non-empty array of them');
  }
  return [...new Set(list)];
}

/**
 * A hub connection that lives across socket losses. It reconnects with backoff and jitter,
 * resubscribes every topic with `resume` from its last cursor, and hands each event to the
 * caller once, in order. States: idle → connecting → open ⇄ reconnecting → closed.
 */
export class HubClient extends Emitter {
  /**
   * @param {string} url `ws(s)://host/ws`, or the hub's http(s) origin (then `/ws` is used)
   * @param {object} [options] see types/index.d.ts `HubClientOptions`
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { ...DEFAULT_OPTIONS, ...options };
    if (this.options.getToken != null && this.options.token != null) {
      throw new TypeError('pass token or getToken, not both');
    }
    if (this.options.getToken != null && typeof this.options.getToken !== 'function') {
      throw new TypeError('getToken must be a function');
    }
    this._backoff = backoffOptions(this.options.backoff);
    this._session = new Session();
    this._routes = new Routes();
    this._topicWaiters = new Waiters(); // topic → subscribe() calls waiting for `subscribed`
    this._replies = new Waiters(); // ref → a publish or unsubscribe waiting for its reply
    this._opened = new Waiters(); // 'open' → calls waiting for a connection
    this._state = 'idle';
    this._conn = null;
    this._attempt = 0;
    this._timer = null;
    this._closing = false;
    this._closedError = null;
  }

  /** Create a client and wait for its first connection. */
  static async connect(url, options) {
    const client = new HubClient(url, options);
    await client.connect();
    return client;
  }

  /** 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this._state;
  }

  /** The latest `welcome` (session, instance, heartbeat_ms, …), or null while not open. */
  get welcome() {
    return this._session.welcome;
  }

  /** Why the client stopped (a HubClosedError), or null. */
  get closedError() {
    return this._closedError;
  }

  /** The last cursor delivered on `topic`: save it to resume a later client with `since`. */
  cursor(topic) {
    return this._session.cursor(topic);
  }

  // on(name, listener) / off(name, listener) come from Emitter: 'state' gets {state, previous,
  // …}, 'error' gets an Error (protocol errors, server errors tied to no request, handler bugs).

  /** Connect (if not yet) and resolve once a connection is open; rejects when the client stops. */
  async connect() {
    await this._whenOpen(Infinity);
    return this;
  }

  /**
   * Subscribe to `topics`. Resolves with a Subscription once the server confirmed them; each
   * item is `{kind:'event', topic, cursor, type, ts, data}` or `{kind:'gap', topic, since, oldest}`.
   * @param {string|string[]} topics
   * @param {Function|object} [handler] a function, or the options object
   * @param {{handler?: Function, since?: Record<string, string>}} [options]
   */
  async subscribe(topics, handler, options = {}) {
    if (handler && typeof handler === 'object') [options, handler] = [handler, undefined];
    const list = topicList(topics);
    this._throwIfClosed();
    const sub = new Subscription(this, list, handler ?? options.handler);
    this._routes.add(sub);
    const { ref, frame } = this._session.subscribe(list, options.since ?? {});
    const waits = list.map((t) => (this._session.isActive(t) ? null : this._waitForTopic(t)));
    if (frame && !this._sendNow(frame)) this._session.cancel(ref); // the next welcome asks
    if (this._state === 'idle') this._whenOpen(Infinity).catch(() => {});
    const results = await Promise.allSettled(waits);
    const closed = results.find((r) => r.status === 'rejected' && r.reason instanceof HubClosedError);
    if (closed) throw closed.reason;
    if (sub.topics.length === 0) throw results.find((r) => r.status === 'rejected').reason;
    return sub;
  }

  /** Stop receiving `topics` (every subscription holding them), or end one Subscription. */
  async unsubscribe(target) {
    if (target instanceof Subscription) return this._unsubscribe(target);
    const list = topicList(target);
    for (const topic of list) {
      for (const sub of this._routes.holders(topic)) this._routes.removeTopic(sub, topic, null);
    }
    return this._sendUnsubscribe(list);
  }

  /**
   * Publish one event; resolves with `{topic, cursor}` once the server stored it. With
   * `options.idempotencyKey`, publishing again with the same key after `unavailable` or a
   * lost connection is safe: the server returns the first publish's cursor.
   */
  async publish(topic, type, data = null, options = {}) {
    if (typeof topic !== 'string' || typeof type !== 'string') {
      throw new TypeError('publish(topic, type, data) needs string topic and type');
    }
    await this._whenOpen(this.options.requestTimeoutMs);
    const { ref, frame } = this._session.publish(topic, type, data, options.idempotencyKey);
    const limit = this._session.welcome?.max_frame_bytes;
    const size = encoder.encode(frame).length;
    if (limit && size > limit) {
      this._session.cancel(ref);
      throw new HubError(`publish of ${size} bytes exceeds the hub's max_frame_bytes ${limit}`, { code: 'too_large' });
    }
    const reply = this._expectReply(ref);
    if (!this._sendNow(frame)) {
      this._settle(ref, null, new HubError('connection lost before the publish was sent', { code: 'connection_lost' }));
    }
    const msg = await reply;
    return { topic: msg.topic, cursor: msg.cursor };
  }

  /** Close for good: subscriptions end, pending requests fail with HubClosedError. */
  async close(code = CloseCode.NORMAL, reason = 'client closed') {
    if (this._state === 'closed') return;
    this._closing = true;
    clearTimeout(this._timer);
    const conn = this._conn;
    if (conn) {
      this._release(conn);
      this._replies.failAll(new HubClosedError('client closed', { closeCode: code, reason }));
      await closeSocket(conn.socket, code, reason);
    }
    this._stop(null, new HubClosedError('client closed', { closeCode: code, reason }));
  }

  // ---- connection lifecycle ------------------------------------------------------------

  async _attemptConnection() {
    this._timer = null;
    this._setState('connecting', { attempt: this._attempt });
    let socket;
    try {
      const [WebSocketClass, token] = await Promise.all([
        resolveWebSocket(this.options.WebSocket),
        resolveToken(this._tokenSource()),
      ]);
      if (this._state !== 'connecting') return; // closed while waiting for the token
      socket = openSocket(WebSocketClass, this.url, token, this.options.tokenIn);
    } catch (err) {
      // A bad URL or token type will not fix itself; a token callback that failed might.
      if (err instanceof TypeError) this._stop(err, new HubClosedError(err.message, { code: 'bad_config' }));
      else this._retry(null, 0, `cannot open: ${err.message}`);
      return;
    }
    const conn = { socket, welcomed: false, openedAt: 0, lastFrameAt: Date.now(), lastPingAt: 0 };
    this._conn = conn;
    const onMessage = (ev) => this._onFrame(conn, ev.data);
    const onClose = (ev) => this._onClose(conn, ev.code, ev.reason);
    socket.addEventListener('message', onMessage);
    socket.addEventListener('close', onClose);
    conn.detach = () => {
      socket.removeEventListener('message', onMessage);
      socket.removeEventListener('close', onClose);
    };
    conn.connectTimer = setTimeout(
      () => this._abandon(conn, CloseCode.ABNORMAL, `no welcome within ${this.options.connectTimeoutMs} ms`),
      this.options.connectTimeoutMs,
    );
  }

  _onFrame(conn, data) {
    if (conn !== this._conn) return;
    conn.lastFrameAt = Date.now();
    // Every record is handled, even after one of them asks to reconnect: the session has
    // already counted the events of this frame as seen, so they must reach the subscribers.
    for (const record of this._session.receive(data)) this._handle(conn, record);
    if (conn.drain) this._abandon(conn, CloseCode.SERVICE_RESTART, conn.drain.reason, conn.drain.retryMs);
    else if (conn.retrySubscribe) this._abandon(conn, CloseCode.INTERNAL, conn.retrySubscribe);
  }

  _handle(conn, record) {
    switch (record.kind) {
      case 'welcome':
        return this._onWelcome(conn, record.welcome);
      case 'event':
      case 'gap': {
        const item = record.event ?? record.gap;
        for (const sub of this._routes.holders(item.topic)) sub._push(item);
        return undefined;
      }
      case 'active':
        return this._settleTopic(record.topic, null);
      case 'refused':
        return this._onRefused(record.topic, new HubRequestError(record.error));
      case 'subscribe_failed':
        conn.retrySubscribe = `subscribe failed: ${record.error.code}: ${record.error.message}`;
        return this._emit('error', new HubRequestError(record.error));
      case 'reply':
        if (record.op === 'error') return this._settle(record.ref, null, new HubRequestError(record.msg));
        return this._settle(record.ref, record.msg, null);
      case 'error':
        return this._emit('error', new HubRequestError(record.error));
      case 'reconnect':
        conn.drain = record;
        return undefined;
      case 'protocol_error':
        this._log('warn', 'hub protocol error', { problem: record.problem });
        return this._emit('error', new HubProtocolError(record.problem, record.frame));
      default:
        return undefined; // pong: liveness only, already counted
    }
  }

  _onWelcome(conn, welcome) {
    if (conn.welcomed) {
      this._emit('error', new HubProtocolError('a second welcome on one connection', welcome));
      return;
    }
    clearTimeout(conn.connectTimer);
    conn.welcomed = true;
    conn.openedAt = Date.now();
    const heartbeatMs = this.options.heartbeatMs
      ?? (welcome.heartbeat_ms > 0 ? welcome.heartbeat_ms : DEFAULT_HEARTBEAT_MS);
    conn.heartbeatMs = heartbeatMs;
    conn.lastPingAt = conn.openedAt;
    conn.ticker = setInterval(() => this._tick(conn), Math.max(10, Math.floor(heartbeatMs / 4)));
    for (const { frame } of this._session.resubscribeFrames(welcome.max_frame_bytes || 65536)) {
      this._send(conn, frame);
    }
    this._setState('open', { session: welcome.session, instance: welcome.instance ?? null });
    this._opened.settle('open');
  }

  // Browsers never see WebSocket pings, so liveness is judged on frames: a `ping` goes out every
  // heartbeat, and two heartbeats without any frame back means the link is dead.
  _tick(conn) {
    if (conn !== this._conn) return;
    const now = Date.now();
    const silent = now - conn.lastFrameAt;
    if (silent > 2 * conn.heartbeatMs) {
      this._abandon(conn, CloseCode.ABNORMAL, `no frame for ${silent} ms (heartbeat ${conn.heartbeatMs} ms)`);
    } else if (now - conn.lastPingAt >= conn.heartbeatMs) {
      conn.lastPingAt = now;
      this._send(conn, this._session.ping());
    }
  }

  _onClose(conn, code, reason) {
    if (conn !== this._conn) return;
    this._ended(conn, code ?? CloseCode.ABNORMAL, reason ?? '', null);
  }

  /** Give up on a connection without waiting for the server (dead link, drain, retry). */
  _abandon(conn, code, reason, retryMs = null) {
    if (conn !== this._conn) return;
    this._release(conn);
    if (retryMs !== null) closeSocket(conn.socket, CloseCode.NORMAL, 'reconnecting');
    else dropSocket(conn.socket, 4000, reason);
    this._ended(conn, code, reason, retryMs);
  }

  _release(conn) {
    if (this._conn === conn) this._conn = null;
    conn.detach();
    clearTimeout(conn.connectTimer);
    clearInterval(conn.ticker);
    for (const ref of this._session.connectionLost()) {
      this._settle(ref, null, new HubError('connection lost before the reply', { code: 'connection_lost' }));
    }
  }

  _ended(conn, code, reason, retryMs) {
    this._release(conn);
    if (this._closing) return;
    this._log('info', 'hub connection closed', { code, reason });
    // 4401 after `welcome`: the connection token expired. With a way to get a new one that is
    // a reconnect (resuming from the cursors); 4401 before `welcome` is a refused token: stop.
    const expired = code === CloseCode.UNAUTHORIZED && conn.welcomed && this._refreshes();
    if (expired) {
      this._attempt = 0;
      this._retry(code, null, reason);
      return;
    }
    if (closeAction(code) === 'stop') {
      const text = `hub refused the connection: ${code}${reason ? ` ${reason}` : ''}`;
      this._stop(null, new HubClosedError(text, { code: 'refused', closeCode: code, reason }));
      return;
    }
    const stable = conn.welcomed && Date.now() - conn.openedAt >= this.options.stableMs;
    if (stable || retryMs !== null) this._attempt = 0;
    this._retry(code, retryMs, reason);
  }

  /** Where each attempt's token comes from: `getToken`, else `token` (a string or function). */
  _tokenSource() {
    return this.options.getToken ?? this.options.token;
  }

  /** Whether a new token can be had for the next attempt (a callback, not a fixed string). */
  _refreshes() {
    return typeof this._tokenSource() === 'function';
  }

  _retry(code, retryMs, reason) {
    if (this._attempt >= this._backoff.maxAttempts) {
      const text = `gave up after ${this._attempt} attempts (last: ${code ?? '-'} ${reason})`;
      this._stop(null, new HubClosedError(text, { code: 'gave_up', closeCode: code, reason }));
      return;
    }
    // A drain says how soon to come back; a full-jitter draw inside it spreads the crowd.
    const delayMs = retryMs > 0 ? Math.floor(Math.random() * (retryMs + 1)) : backoffDelay(this._attempt, this._backoff);
    this._attempt += 1;
    this._setState('reconnecting', { attempt: this._attempt, delayMs, code, reason });
    this._timer = setTimeout(() => this._attemptConnection(), delayMs);
  }

  /** The client stops: everything waiting fails with `closedError`, subscriptions end. */
  _stop(cause, closedError) {
    if (this._state === 'closed') return;
    clearTimeout(this._timer);
    if (this._conn) this._release(this._conn);
    this._closedError = closedError;
    const byOwner = this._closing;
    this._opened.failAll(closedError);
    this._topicWaiters.failAll(closedError);
    this._replies.failAll(closedError);
    for (const sub of this._routes.clear()) sub._end(byOwner ? null : closedError);
    this._setState('closed', { code: closedError.closeCode, reason: closedError.reason, error: byOwner ? null : closedError, cause });
  }

  // ---- requests, topics, subscriptions --------------------------------------------------

  _whenOpen(timeoutMs) {
    if (this._state === 'open') return Promise.resolve();
    if (this._state === 'closed') return Promise.reject(this._closedError);
    const opened = this._opened.wait('open', {
      timeoutMs,
      onTimeout: () => new HubError(`hub not reachable within ${timeoutMs} ms`, { code: 'timeout' }),
    });
    if (this._state === 'idle') this._attemptConnection();
    return opened;
  }

  _expectReply(ref) {
    const timeoutMs = this.options.requestTimeoutMs;
    return this._replies.wait(ref, {
      timeoutMs,
      onTimeout: () => {
        this._session.cancel(ref);
        return new HubError(`no reply within ${timeoutMs} ms`, { code: 'timeout' });
      },
    });
  }

  _settle(ref, value, error) {
    this._replies.settle(ref, value, error);
  }

  _waitForTopic(topic) {
    return this._topicWaiters.wait(topic);
  }

  _settleTopic(topic, error) {
    this._topicWaiters.settle(topic, undefined, error);
  }

  _onRefused(topic, error) {
    for (const sub of this._routes.holders(topic)) {
      sub.refused.push({ topic, error });
      this._routes.removeTopic(sub, topic, error);
    }
    this._settleTopic(topic, error);
    this._emit('error', error);
  }

  async _unsubscribe(sub) {
    if (sub.ended) return;
    await this._sendUnsubscribe(this._routes.remove(sub));
  }

  async _sendUnsubscribe(topics) {
    if (topics.length === 0 || this._state === 'closed') return;
    const { ref, frame } = this._session.unsubscribe(topics);
    if (!frame) return;
    const reply = this._expectReply(ref);
    if (!this._sendNow(frame)) {
      // No connection: the next one will simply not ask for these topics.
      this._session.cancel(ref);
      this._settle(ref, {}, null);
    }
    // Whatever the server says, the topics are gone on this side and their late events dropped.
    await reply.catch(() => {});
  }

  _sendNow(frame) {
    return this._state === 'open' && this._conn !== null && this._send(this._conn, frame);
  }

  _send(conn, frame) {
    try {
      conn.socket.send(frame);
      return true;
    } catch {
      return false; // the close event follows and starts the reconnect
    }
  }

  _throwIfClosed() {
    if (this._state === 'closed') throw this._closedError;
  }

  _reportHandlerError(error) {
    this._emit('error', error);
  }

  _setState(state, info = {}) {
    const previous = this._state;
    this._state = state;
    this._log(state === 'closed' && info.error ? 'warn' : 'info', `hub ${previous} → ${state}`, info);
    this._emit('state', { state, previous, ...info });
  }

  _log(level, message, fields) {
    this.options.logger?.[level]?.(message, fields);
  }
}
