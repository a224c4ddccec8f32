// A sans-I/O protocol session: text frames in, plain records out; frames to send are built here.
// No sockets, no timers, no promises: the driver (hub.js) owns those, so every rule of the
// protocol that decides what the caller sees can be tested with strings alone.

/** Close codes of protocol v1 (docs/protocol.md). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  SERVICE_RESTART: 1012,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  SLOW_CONSUMER: 4408,
  RATE_LIMITED: 4429,
});

// Codes after which reconnecting cannot help: the same credentials or the same frames would be
// refused again, so the client stops and reports why instead of looping.
const FATAL_CLOSE_CODES = new Set([
  1002, // protocol error
  1003, // unsupported data
  1007, // invalid payload
  CloseCode.POLICY,
  CloseCode.TOO_BIG,
  CloseCode.UNAUTHORIZED,
  CloseCode.FORBIDDEN,
]);

/**
 * What the client does after the server closed with `code`.
 * @param {number} code
 * @returns {'reconnect' | 'stop'}
 */
export function closeAction(code) {
  return FATAL_CLOSE_CODES.has(code) ? 'stop' : 'reconnect';
}

// Cursors remembered per topic to drop replayed duplicates. A correct server replays strictly
// after the resume cursor, so overlaps are rare and short; 512 bounds memory (~40 KB a topic)
// while covering any plausible sloppy replay.
const RECENT_CURSORS = 512;

/** A bounded set of the newest cursors seen on one topic, to drop replayed duplicates. */
class RecentCursors {
  constructor(limit = RECENT_CURSORS) {
    this.limit = limit;
    this.set = new Set();
  }

  /** Adds `cursor`; false when it was already there (a duplicate). */
  add(cursor) {
    if (this.set.has(cursor)) return false;
    this.set.add(cursor);
    if (this.set.size > this.limit) {
      // Sets iterate in insertion order: the first entry is the oldest.
      this.set.delete(this.set.values().next().value);
    }
    return true;
  }
}

// Error codes that say "try again later" rather than "never": a subscribe refused with one of
// these is retried, not given up.
const TRANSIENT_CODES = new Set(['unavailable', 'rate_limited', 'internal']);

const isString = (v) => typeof v === 'string';
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// Required fields of each server op and their checks; anything else is a malformed message.
const SHAPES = {
  welcome: { session: isString, heartbeat_ms: Number.isFinite },
  event: { topic: isString, cursor: isString, type: isString },
  gap: { topic: isString },
  subscribed: { topics: Array.isArray },
  unsubscribed: { topics: Array.isArray },
  published: { topic: isString, cursor: isString },
  pong: {},
  error: { code: isString, message: isString },
  reconnect: {},
};

function shapeProblem(msg) {
  const shape = SHAPES[msg.op];
  for (const [field, check] of Object.entries(shape)) {
    if (!check(msg[field])) return `'${msg.op}' without a valid '${field}'`;
  }
  return null;
}

/**
 * One client's protocol state across connections: which topics it wants, the last cursor seen
 * on each, and the requests waiting for a reply. `receive()` turns a frame into records:
 *
 * - `{kind:'welcome', welcome}`: a connection is ready; send `resubscribeFrames()` next.
 * - `{kind:'event', event}` / `{kind:'gap', gap}`: hand to the topic's subscribers.
 * - `{kind:'reply', ref, op, msg}`: settle the request with that `ref`.
 * - `{kind:'active', topic, cursor, recovered}` / `{kind:'refused', topic, error}`: a topic's fate.
 * - `{kind:'subscribe_failed', topics, error}`: a transient refusal; reconnect to ask again.
 * - `{kind:'error', error}`: a server error tied to no request; report it.
 * - `{kind:'reconnect', retryMs, reason}`: the server is draining; reconnect and resume.
 * - `{kind:'pong'}`: liveness only.
 * - `{kind:'protocol_error', problem, frame}`: the server misbehaved; report and carry on.
 */
export class Session {
  constructor() {
    /** @type {Map<string, {cursor: string|null, recent: RecentCursors, active: boolean}>} */
    this.topics = new Map();
    /** @type {Map<string, {op: string, topics?: string[]}>} */
    this.pending = new Map();
    /** Topics unsubscribed whose `unsubscribed` has not come yet: their late events are normal. */
    this.leaving = new Set();
    this.welcome = null;
    this.nextRef = 1;
  }

  /** Forget the connection (not the topics or cursors); returns the refs that never got a reply. */
  connectionLost() {
    this.welcome = null;
    for (const state of this.topics.values()) state.active = false;
    this.leaving.clear();
    const lost = [...this.pending.keys()];
    this.pending.clear();
    return lost;
  }

  /** The last cursor seen on `topic`, or null. */
  cursor(topic) {
    return this.topics.get(topic)?.cursor ?? null;
  }

  /** Topics wanted, in the order they were first asked for. */
  wanted() {
    return [...this.topics.keys()];
  }

  /** True once the server confirmed `topic` on the current connection. */
  isActive(topic) {
    return this.topics.get(topic)?.active === true;
  }

  /**
   * Start wanting `topics` and build the frame asking for them, with `resume` for topics given a
   * starting cursor in `since` (say, one saved from an earlier run). Returns `{ref, frame}`;
   * both are null when no topic is new. Call `cancel(ref)` if the frame is not sent.
   */
  subscribe(topics, since = {}) {
    const fresh = topics.filter((t) => !this.topics.has(t));
    const resume = {};
    for (const topic of fresh) {
      const cursor = isString(since[topic]) ? since[topic] : null;
      this.topics.set(topic, { cursor, recent: new RecentCursors(), active: false, held: false });
      this.leaving.delete(topic);
      if (cursor) resume[topic] = cursor;
    }
    if (fresh.length === 0) return { ref: null, frame: null };
    const msg = { op: 'subscribe', topics: fresh };
    if (Object.keys(resume).length > 0) msg.resume = resume;
    return this._request(msg, fresh);
  }

  /**
   * Stop wanting `topics`; their late events are dropped quietly. Returns `{ref, frame}`; both
   * are null when none was wanted. Call `cancel(ref)` if the frame is not sent.
   */
  unsubscribe(topics) {
    const known = topics.filter((t) => this.topics.has(t));
    for (const topic of known) {
      this.topics.delete(topic);
      this.leaving.add(topic);
    }
    if (known.length === 0) return { ref: null, frame: null };
    return this._request({ op: 'unsubscribe', topics: known });
  }

  /** Forget a request whose frame was never sent (no connection). */
  cancel(ref) {
    this.pending.delete(ref);
  }

  /** Build a publish frame; returns `{ref, frame}`. */
  publish(topic, type, data, idempotencyKey) {
    const msg = { op: 'publish', topic, type, data: data ?? null };
    if (idempotencyKey != null) msg.idempotency_key = idempotencyKey;
    return this._request(msg);
  }

  /** A ping frame; the reply is a `pong` (liveness for browsers, which never see WS pings). */
  ping() {
    return JSON.stringify({ op: 'ping' });
  }

  /**
   * Frames re-asking for every wanted topic on a new connection, each topic with `resume` set
   * to its last cursor. Split so no frame exceeds `maxBytes`. Returns `[{ref, frame}]`.
   */
  resubscribeFrames(maxBytes = 65536) {
    const out = [];
    let topics = [];
    let resume = {};
    let size = 64;
    const flush = () => {
      if (topics.length === 0) return;
      const msg = { op: 'subscribe', topics };
      if (Object.keys(resume).length > 0) msg.resume = resume;
      out.push(this._request(msg, topics));
      topics = [];
      resume = {};
      size = 64;
    };
    for (const [topic, state] of this.topics) {
      const cost = topic.length * 2 + (state.cursor ? state.cursor.length : 0) + 16;
      if (size + cost > maxBytes * 0.9) flush();
      topics.push(topic);
      if (state.cursor) resume[topic] = state.cursor;
      size += cost;
    }
    flush();
    return out;
  }

  _request(msg, topics) {
    const ref = `r${this.nextRef++}`;
    this.pending.set(ref, { op: msg.op, topics });
    return { ref, frame: JSON.stringify({ ...msg, ref }) };
  }

  /**
   * Decode one text frame (an object or an array of objects) into records, in order.
   * Never throws: whatever the server sends, the worst outcome is a `protocol_error` record.
   */
  receive(text) {
    if (typeof text !== 'string') {
      return [{ kind: 'protocol_error', problem: 'binary frame on a JSON connection', frame: null }];
    }
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      return [{ kind: 'protocol_error', problem: 'frame is not JSON', frame: text.slice(0, 200) }];
    }
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    const out = [];
    for (const msg of messages) this._receiveOne(msg, out);
    return out;
  }

  _receiveOne(msg, out) {
    if (!isObject(msg) || !isString(msg.op)) {
      out.push({ kind: 'protocol_error', problem: 'message without an op', frame: msg });
      return;
    }
    if (!Object.hasOwn(SHAPES, msg.op)) {
      out.push({ kind: 'protocol_error', problem: `unknown op '${msg.op}'`, frame: msg });
      return;
    }
    const problem = shapeProblem(msg);
    if (problem) {
      out.push({ kind: 'protocol_error', problem, frame: msg });
      return;
    }
    this[`_on_${msg.op}`](msg, out);
  }

  _on_welcome(msg, out) {
    this.welcome = msg;
    out.push({ kind: 'welcome', welcome: msg });
  }

  _on_event(msg, out) {
    const state = this.topics.get(msg.topic);
    if (!state) {
      // Late events after an unsubscribe are normal; any other is the server's mistake.
      if (this.leaving.has(msg.topic)) return;
      out.push({ kind: 'protocol_error', problem: `event for unsubscribed topic '${msg.topic}'`, frame: msg });
      return;
    }
    if (!state.recent.add(msg.cursor)) return; // a replayed duplicate: already delivered
    state.cursor = msg.cursor;
    const event = {
      kind: 'event',
      topic: msg.topic,
      cursor: msg.cursor,
      type: msg.type,
      ts: Number.isFinite(msg.ts) ? msg.ts : null,
      data: msg.data ?? null,
    };
    out.push({ kind: 'event', event });
  }

  _on_gap(msg, out) {
    if (!this.topics.has(msg.topic)) {
      if (this.leaving.has(msg.topic)) return;
      out.push({ kind: 'protocol_error', problem: `gap for unsubscribed topic '${msg.topic}'`, frame: msg });
      return;
    }
    const gap = { kind: 'gap', topic: msg.topic, since: msg.since ?? null, oldest: msg.oldest ?? null };
    out.push({ kind: 'gap', gap });
  }

  _on_subscribed(msg, out) {
    for (const entry of msg.topics) {
      if (!isObject(entry) || !isString(entry.topic)) continue;
      const state = this.topics.get(entry.topic);
      if (!state) continue; // unsubscribed while the request was in flight
      if (state.held && state.cursor === null) {
        // Held before, but the topic was empty then and no event came: there was no cursor to
        // resume from, so whatever was published while disconnected cannot be replayed. Say so
        // (a gap with `since: null`) rather than leave a silent hole.
        const gap = { kind: 'gap', topic: entry.topic, since: null, oldest: entry.cursor ?? null };
        out.push({ kind: 'gap', gap });
      }
      state.active = true;
      state.held = true;
      // A fresh subscription starts at the topic's latest cursor, so a reconnect before the
      // first event still resumes from there. A resumed one keeps its own: replay follows.
      if (state.cursor === null && isString(entry.cursor)) state.cursor = entry.cursor;
      out.push({ kind: 'active', topic: entry.topic, cursor: entry.cursor ?? null, recovered: entry.recovered ?? null });
    }
    this._reply(msg, out);
  }

  _on_unsubscribed(msg, out) {
    for (const topic of msg.topics) this.leaving.delete(topic);
    this._reply(msg, out);
  }

  _on_published(msg, out) {
    this._reply(msg, out);
  }

  _on_pong(_msg, out) {
    out.push({ kind: 'pong' });
  }

  _on_error(msg, out) {
    const error = { code: msg.code, message: msg.message, ref: msg.ref ?? null, topic: msg.topic ?? null };
    if (Array.isArray(msg.topics) && msg.topics.every(isString)) error.topics = msg.topics;
    const request = isString(msg.ref) ? this.pending.get(msg.ref) : undefined;
    if (request?.op === 'subscribe') {
      this._subscribeError(msg.ref, request, error, out);
      return;
    }
    if (request) {
      this.pending.delete(msg.ref);
      out.push({ kind: 'reply', ref: msg.ref, op: 'error', msg: error });
      return;
    }
    out.push({ kind: 'error', error });
  }

  // A subscribe error names the topics it refuses for one reason (`topics`, or just `topic`;
  // the others still get `subscribed`) or, without either, fails the whole request. Transient codes (backplane down, rate limit) keep the
  // topics wanted, for the caller to ask again on a new connection; others refuse them for good.
  _subscribeError(ref, request, error, out) {
    const topics = error.topics ?? (error.topic ? [error.topic] : request.topics);
    request.topics = request.topics.filter((t) => !topics.includes(t));
    if (TRANSIENT_CODES.has(error.code)) {
      out.push({ kind: 'subscribe_failed', topics, error });
    } else {
      for (const topic of topics) {
        if (this.topics.get(topic)?.active) continue; // held already through another request
        this.topics.delete(topic);
        out.push({ kind: 'refused', topic, error });
      }
    }
    if (request.topics.length === 0) {
      // No `subscribed` may follow for this request: settle it here.
      this.pending.delete(ref);
      out.push({ kind: 'reply', ref, op: 'subscribed', msg: { op: 'subscribed', topics: [] } });
    }
  }

  _on_reconnect(msg, out) {
    const retryMs = Number.isFinite(msg.retry_ms) && msg.retry_ms >= 0 ? msg.retry_ms : 0;
    out.push({ kind: 'reconnect', retryMs, reason: isString(msg.reason) ? msg.reason : '' });
  }

  _reply(msg, out) {
    if (!isString(msg.ref) || !this.pending.has(msg.ref)) return;
    this.pending.delete(msg.ref);
    out.push({ kind: 'reply', ref: msg.ref, op: msg.op, msg });
  }
}
