// Promises waiting on a key (a request ref, a topic, "open"), settled together, each with its
// own optional deadline. Keeps the client's bookkeeping of who waits for what in one place.

export class Waiters {
  constructor() {
    /** @type {Map<string, Set<{resolve: Function, reject: Function, timer: any}>>} */
    this._byKey = new Map();
  }

  /**
   * A promise settled by `settle(key, …)` or `failAll()`; with `timeoutMs`, rejected by
   * `onTimeout()`'s error if nothing settles it first.
   * @param {string} key
   * @param {{timeoutMs?: number, onTimeout?: () => Error}} [options]
   */
  wait(key, { timeoutMs = Infinity, onTimeout } = {}) {
    return new Promise((resolve, reject) => {
      if (!this._byKey.has(key)) this._byKey.set(key, new Set());
      const set = this._byKey.get(key);
      const waiter = { resolve, reject, timer: null };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          set.delete(waiter);
          if (set.size === 0 && this._byKey.get(key) === set) this._byKey.delete(key);
          reject(onTimeout ? onTimeout() : new Error(`timed out waiting for ${key}`));
        }, timeoutMs);
      }
      set.add(waiter);
    });
  }

  has(key) {
    return this._byKey.has(key);
  }

  /** Settle every waiter of `key`: rejected with `error` if given, else resolved with `value`. */
  settle(key, value, error = null) {
    const set = this._byKey.get(key);
    if (!set) return;
    this._byKey.delete(key);
    for (const waiter of set) {
      clearTimeout(waiter.timer);
      if (error) waiter.reject(error);
      else waiter.resolve(value);
    }
  }

  /** Reject every waiter of every key with `error`. */
  failAll(error) {
    for (const key of [...this._byKey.keys()]) this.settle(key, undefined, error);
  }
}
