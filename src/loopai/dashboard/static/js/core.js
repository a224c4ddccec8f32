// The dashboard's shared pieces: DOM building (text only, never HTML), formatting, ring buffers,
// batched rendering, sign-in and the one API + hub client pair every view uses.
//
// Every value from the server reaches the page through `textContent` or an attribute set with
// `setAttribute`/properties: a task named `<img src=x onerror=alert(1)>` is shown as that text.

import { ApiClient, ApiError, HubClient } from '../client/index.js';

export { ApiError };

export const KEY_STORAGE = 'loopai.apiKey';

/** Page-wide counters, read by the browser tests and the rate measurement (docs/dashboard.md). */
export const stats = {
  events: 0, // hub events handled (history replays included)
  renders: 0, // render passes run
  renderMs: 0, // time spent in them
  maxRenderMs: 0,
  gaps: 0,
  reconnects: 0,
  states: [], // every continuity state shown, in order: 'live', 'reconnecting', 'gap', …
};
globalThis.__dashboard = stats;

/**
 * `h('td', {class: 'x', title: 'y'}, 'text', child)`: an element; string children become
 * text nodes; attributes are set one by one (no HTML parsing anywhere).
 */
export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name === 'dataset') Object.assign(el.dataset, value);
      else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
      else if (name === 'text') el.textContent = String(value);
      else if (value === true) el.setAttribute(name, '');
      else el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace `el`'s content with text. */
export function setText(el, value) {
  const text = value === null || value === undefined ? '' : String(value);
  if (el.textContent !== text) el.textContent = text;
}

export const fmt = {
  time(ts) {
    if (ts === null || ts === undefined) return '—';
    const d = new Date(typeof ts === 'number' ? ts : Date.parse(ts));
    return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleTimeString([], { hour12: false });
  },
  dateTime(ts) {
    if (ts === null || ts === undefined) return '—';
    const d = new Date(typeof ts === 'number' ? ts : Date.parse(ts));
    return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString([], { hour12: false });
  },
  ms(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return '—';
    return x >= 100 ? `${Math.round(x)} ms` : `${x.toFixed(x >= 10 ? 1 : 2)} ms`;
  },
  pct(x, digits = 1) {
    if (x === null || x === undefined || Number.isNaN(x)) return '—';
    return `${(x * 100).toFixed(digits)}%`;
  },
  rate(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return '—';
    return x >= 10 ? `${Math.round(x)}/s` : `${x.toFixed(1)}/s`;
  },
  /** JSON, cut to `max` characters (the whole of it goes in a title). */
  json(value, max = 120) {
    if (value === undefined) return '';
    let text;
    try {
      text = typeof value === 'string' ? value : JSON.stringify(value);
    } catch {
      text = String(value);
    }
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  },
  full(value) {
    if (value === undefined || value === null) return '';
    try {
      return typeof value === 'string' ? value : JSON.stringify(value, null, 1);
    } catch {
      return String(value);
    }
  },
  accuracy(acc) {
    if (!acc || acc.accuracy === null || acc.accuracy === undefined) return 'no samples yet';
    return `${fmt.pct(acc.accuracy)} [${fmt.pct(acc.low, 0)}–${fmt.pct(acc.high, 0)}] n=${acc.samples}`;
  },
};

/** A fixed-size ring: the newest `capacity` items, oldest first. */
export class Ring {
  constructor(capacity) {
    this.capacity = capacity;
    this.items = new Array(capacity);
    this.start = 0;
    this.length = 0;
  }

  push(item) {
    if (this.length < this.capacity) {
      this.items[(this.start + this.length) % this.capacity] = item;
      this.length += 1;
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  at(i) {
    return this.items[(this.start + i) % this.capacity];
  }

  /** Newest first, while `fn` returns not false. */
  eachNewest(fn) {
    for (let i = this.length - 1; i >= 0; i -= 1) {
      if (fn(this.at(i)) === false) return;
    }
  }

  toArray() {
    const out = [];
    for (let i = 0; i < this.length; i += 1) out.push(this.at(i));
    return out;
  }

  clear() {
    this.start = 0;
    this.length = 0;
    this.items = new Array(this.capacity);
  }
}

/**
 * Batched rendering: `mark()` as often as events come; `fn` runs at most `hz` times a second,
 * in an animation frame, and only when something was marked.
 */
export function renderLoop(fn, hz = 4) {
  let dirty = false;
  let scheduled = false;
  const run = () => {
    scheduled = false;
    if (!dirty) return;
    dirty = false;
    const t0 = performance.now();
    try {
      fn();
    } finally {
      const took = performance.now() - t0;
      stats.renders += 1;
      stats.renderMs += took;
      stats.maxRenderMs = Math.max(stats.maxRenderMs, took);
    }
  };
  setInterval(() => {
    if (dirty && !scheduled) {
      scheduled = true;
      requestAnimationFrame(run);
    }
  }, 1000 / hz);
  const mark = () => {
    dirty = true;
  };
  mark.now = () => {
    dirty = true;
    run();
  };
  return mark;
}

/** A modal yes/no question; resolves true on confirm. */
export function confirmDialog(title, message, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: 'primary', dataset: { action: 'confirm' } }, confirmLabel);
    const no = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel');
    const dialog = h('dialog', { class: 'confirm' }, h('h3', null, title), h('p', null, message),
      h('div', { class: 'actions' }, no, yes));
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A short message at the top of the page (errors of actions, generation results). */
export function toast(message, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.appendChild(box);
  }
  const item = h('div', { class: `toast ${kind}` }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 10_000 : 5_000);
}

export function describeError(error) {
  if (error instanceof ApiError) {
    const trace = error.traceId ? ` (trace ${error.traceId})` : '';
    return `${error.message || error.code}${trace}`;
  }
  return error?.message ?? String(error);
}

// ---- sign-in -------------------------------------------------------------------------------

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

function askForKey(message) {
  const section = document.getElementById('login');
  const form = document.getElementById('login-form');
  const input = document.getElementById('login-key');
  const error = document.getElementById('login-error');
  section.hidden = false;
  setText(error, message ?? '');
  input.value = '';
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (key) {
        section.hidden = true;
        resolve(key);
      }
    }, { once: true });
  });
}

/**
 * Who the caller is, asking for an API key when auth is on and none (or a refused one) is
 * stored. The key lives in sessionStorage only (this tab, gone when it closes).
 */
async function signIn() {
  let key = storedKey();
  let message = null;
  for (;;) {
    const api = new ApiClient(location.origin, { token: key, timeoutMs: 15_000 });
    try {
      const who = await api.request('GET', '/api/v1/auth/whoami');
      if (who.auth_enabled && key) sessionStorage.setItem(KEY_STORAGE, key);
      return { api, who, key };
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      sessionStorage.removeItem(KEY_STORAGE);
      message = key
        ? `That API key was refused (${error.message}). Check it and try again.`
        : 'This hub needs an API key.';
      key = await askForKey(message);
    }
  }
}

// ---- continuity ----------------------------------------------------------------------------

/**
 * What the status pill says: `live`, `reconnecting`, or `gap` (resumed, but the hub no
 * longer had every event since T: the views refetch what they show).
 */
class Continuity {
  constructor(el) {
    this.el = el;
    this.state = 'connecting';
    this.lostAt = null;
    this.gapSince = null;
    this.lastEventAt = null;
    this.instance = null;
  }

  hub(state, info) {
    if (state === 'open') {
      this.lostAt = null;
      this.show(this.gapSince ? 'gap' : 'live');
    } else if (state === 'reconnecting') {
      if (this.lostAt === null) {
        this.lostAt = Date.now();
        stats.reconnects += 1;
      }
      this.show('reconnecting', info);
    } else if (state === 'closed') {
      this.show('closed', info);
    } else {
      this.show('connecting');
    }
  }

  gap() {
    stats.gaps += 1;
    this.gapSince = this.gapSince ?? this.lostAt ?? this.lastEventAt ?? Date.now();
    this.show('gap');
  }

  dismissGap() {
    this.gapSince = null;
    if (this.state === 'gap') this.show('live');
  }

  show(state, info = {}) {
    this.state = state;
    stats.states.push(state);
    if (stats.states.length > 100) stats.states.shift();
    this.el.dataset.state = state;
    const where = this.instance ? ` on ${this.instance}` : '';
    let text;
    let title;
    switch (state) {
      case 'live':
        text = 'live';
        title = `Connected${where}; every event arrives as it happens.`;
        break;
      case 'reconnecting':
        text = info.attempt ? `reconnecting… (attempt ${info.attempt})` : 'reconnecting…';
        title = `Connection lost${info.reason ? `: ${info.reason}` : ''}. Resuming from the last event seen, nothing is lost while the hub still has it.`;
        break;
      case 'gap':
        text = `resumed with a gap since ${fmt.time(this.gapSince)}`;
        title = `Reconnected${where}, but the hub no longer had every event since ${fmt.dateTime(this.gapSince)}; the views were refetched. Click to dismiss.`;
        break;
      case 'closed':
        text = 'disconnected';
        title = info.reason ? `Stopped: ${info.reason}` : 'Stopped.';
        break;
      default:
        text = 'connecting…';
        title = 'Connecting to the hub.';
    }
    setText(this.el, text);
    this.el.title = title;
  }
}

// ---- the context every view gets -----------------------------------------------------------

/**
 * Signs in, opens the hub connection and returns `{api, hub, who, can, follow}`.
 * `follow(topics, handlers)` fills from history, then goes live (see live.js).
 */
export async function start() {
  const conn = document.getElementById('conn');
  const continuity = new Continuity(conn);
  conn.addEventListener('click', () => continuity.dismissGap());
  const { api, who, key } = await signIn();
  const whoEl = document.getElementById('whoami');
  const signout = document.getElementById('signout');
  if (who.auth_enabled) {
    setText(whoEl, `${who.name} (${who.scopes.join(', ')})`);
    signout.hidden = false;
    signout.addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      location.reload();
    });
  }
  const hub = new HubClient(location.origin, who.auth_enabled
    ? { getToken: async () => (await api.wsToken({})).token }
    : {});
  hub.on('state', ({ state, attempt, reason }) => {
    continuity.instance = hub.welcome?.instance ?? continuity.instance;
    continuity.hub(state, { attempt, reason });
  });
  hub.on('error', (error) => console.warn('hub:', error.message));
  const scopes = new Set(who.scopes);
  const can = (scope) => scopes.has('admin') || scopes.has(scope);
  /** Why a button needing `scope` is disabled, or null when allowed. */
  const why = (scope) => (can(scope) ? null : `Needs the '${scope}' scope; this key (${who.name}) has ${who.scopes.join(', ') || 'none'}.`);
  return { api, hub, who, key, can, why, continuity };
}
