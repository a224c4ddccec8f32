// One caller's interest in some topics: events go to its handler, or queue for `for await`.

/** True when `item` is an event (of `type`, if given); in TypeScript it narrows `data`. */
export function isEvent(item, type) {
  return item?.kind === 'event' && (type === undefined || item.type === type);
}

/**
 * Returned by `HubClient.subscribe()`. With a handler, each event and gap is passed to it as it
 * arrives; without one they queue until read with `for await (const item of subscription)`.
 * The queue is unbounded: a subscriber that never reads should pass a handler instead.
 */
export class Subscription {
  /**
   * @param {{_unsubscribe(sub: Subscription): Promise<void>, _reportHandlerError(e: unknown): void}} owner
   * @param {string[]} topics
   * @param {((item: object) => void) | undefined} handler
   */
  constructor(owner, topics, handler) {
    this._owner = owner;
    this.topics = topics;
    /** Topics the server refused, each with its HubRequestError. */
    this.refused = [];
    this._handler = handler;
    this._queue = [];
    this._waiters = [];
    this._ended = false;
    this._error = null;
  }

  /** True once unsubscribed or the client closed. */
  get ended() {
    return this._ended;
  }

  /** Stop receiving; sends `unsubscribe` for topics no other subscription holds. */
  unsubscribe() {
    return this._owner._unsubscribe(this);
  }

  /** Deliver one event or gap (called by the client, in order). */
  _push(item) {
    if (this._ended) return;
    if (this._handler) {
      try {
        this._handler(item);
      } catch (err) {
        this._owner._reportHandlerError(err);
      }
      return;
    }
    const waiter = this._waiters.shift();
    if (waiter) waiter.resolve({ value: item, done: false });
    else this._queue.push(item);
  }

  /** No more items: iteration ends after the queue drains, throwing `error` if given. */
  _end(error = null) {
    if (this._ended) return;
    this._ended = true;
    this._error = error;
    for (const waiter of this._waiters.splice(0)) {
      if (error) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  _next() {
    if (this._queue.length > 0) return Promise.resolve({ value: this._queue.shift(), done: false });
    if (this._ended) {
      return this._error ? Promise.reject(this._error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => this._next(),
      // `break` out of a for-await loop unsubscribes.
      return: async () => {
        await this.unsubscribe();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}

/** Which subscriptions hold each topic; a subscription left with no topic ends. */
export class Routes {
  constructor() {
    /** @type {Map<string, Set<Subscription>>} */
    this._byTopic = new Map();
  }

  add(sub) {
    for (const topic of sub.topics) {
      if (!this._byTopic.has(topic)) this._byTopic.set(topic, new Set());
      this._byTopic.get(topic).add(sub);
    }
  }

  /** The subscriptions holding `topic` (a copy: safe to change routes while iterating). */
  holders(topic) {
    return [...(this._byTopic.get(topic) ?? [])];
  }

  /** Take `topic` away from `sub`; ends `sub` (with `error`) if it has no topic left. */
  removeTopic(sub, topic, error) {
    sub.topics = sub.topics.filter((t) => t !== topic);
    this._drop(sub, topic);
    if (sub.topics.length === 0) sub._end(error);
  }

  /** End `sub`; returns the topics no other subscription holds (to unsubscribe from). */
  remove(sub) {
    sub._end(null);
    return sub.topics.filter((topic) => this._drop(sub, topic));
  }

  /** Forget everything; returns every subscription there was. */
  clear() {
    const all = new Set([...this._byTopic.values()].flatMap((set) => [...set]));
    this._byTopic.clear();
    return [...all];
  }

  // Returns true when `topic` has no holder left.
  _drop(sub, topic) {
    const holders = this._byTopic.get(topic);
    if (!holders) return false;
    holders.delete(sub);
    if (holders.size > 0) return false;
    this._byTopic.delete(topic);
    return true;
  }
}
