// A minimal listener registry that works the same in browsers and Node (no EventEmitter, whose
// unhandled 'error' throws; no EventTarget, whose events carry their payload awkwardly).

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Add `listener` for `name`; returns a function that removes it. */
  on(name, listener) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(listener);
    return () => this.off(name, listener);
  }

  off(name, listener) {
    this._listeners.get(name)?.delete(listener);
  }

  /** Call every listener of `name`; one that throws is reported on 'error', never propagated. */
  _emit(name, payload) {
    for (const listener of [...(this._listeners.get(name) ?? [])]) {
      try {
        listener(payload);
      } catch (err) {
        if (name !== 'error') this._emit('error', err);
      }
    }
  }
}
