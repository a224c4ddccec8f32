// A live table: items in a ring buffer (deduplicated by key), at most `maxRows` rows in the
// DOM, newest first, with pause, filters and search. `render()` is called by the view's render
// loop; rows are built once per item and reused.

import { Ring, h, setText } from './core.js';

export class LiveTable {
  /**
   * @param {object} o
   * @param {Array<{label: string, cell: (item) => Node|string, class?: string}>} o.columns
   * @param {(item) => string} o.key a unique key per item (dedup across history, replays, refetch)
   */
  constructor({ columns, key, capacity = 5000, maxRows = 200, empty = 'Nothing yet.', rowClass = null }) {
    this.columns = columns;
    this.key = key;
    this.ring = new Ring(capacity);
    this.keys = new Set();
    this.maxRows = maxRows;
    this.rowClass = rowClass;
    this.paused = false;
    this.pending = 0;
    this.filter = () => true;
    this.search = '';
    this.rows = new WeakMap();
    this.tbody = h('tbody');
    this.emptyRow = h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty));
    this.table = h('table', { class: 'live' },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class ?? null }, c.label)))),
      this.tbody);
    this.element = h('div', { class: 'table-wrap' }, this.table);
    this.shown = 0;
    this.matching = 0;
  }

  /** Adds an item; false when its key was already seen. */
  add(item) {
    const key = this.key(item);
    if (this.keys.has(key)) return false;
    if (this.ring.length === this.ring.capacity) this.keys.delete(this.key(this.ring.at(0)));
    this.keys.add(key);
    this.ring.push(item);
    if (this.paused) this.pending += 1;
    return true;
  }

  has(key) {
    return this.keys.has(key);
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) this.pending = 0;
  }

  _row(item) {
    let row = this.rows.get(item);
    if (!row) {
      row = h('tr', { dataset: { key: this.key(item) }, class: this.rowClass ? this.rowClass(item) : null },
        this.columns.map((c) => {
          const value = c.cell(item);
          return h('td', { class: c.class ?? null }, value);
        }));
      row.searchText = row.textContent.toLowerCase();
      this.rows.set(item, row);
    }
    return row;
  }

  /** The rows to show now: newest first, filtered, at most maxRows. Skipped while paused. */
  render() {
    if (this.paused && this.tbody.childElementCount > 0) return;
    const wanted = [];
    const needle = this.search.trim().toLowerCase();
    let matching = 0;
    this.ring.eachNewest((item) => {
      if (!this.filter(item)) return true;
      if (needle) {
        const row = this._row(item);
        if (!row.searchText.includes(needle)) return true;
      }
      matching += 1;
      if (wanted.length < this.maxRows) wanted.push(this._row(item));
      return true;
    });
    this.matching = matching;
    this.shown = wanted.length;
    if (wanted.length === 0) {
      this.tbody.replaceChildren(this.emptyRow);
      return;
    }
    // Cheap path: unchanged order → nothing to do.
    const current = this.tbody.children;
    let same = current.length === wanted.length;
    for (let i = 0; same && i < wanted.length; i += 1) same = current[i] === wanted[i];
    if (!same) this.tbody.replaceChildren(...wanted);
  }

  clear() {
    this.ring.clear();
    this.keys.clear();
    this.tbody.replaceChildren();
  }
}

/** A toolbar: pause button, selects, a search box; calls `onChange` on any change. */
export function toolbar(table, { selects = [], onChange, placeholder = 'search' }) {
  const pause = h('button', { type: 'button', dataset: { action: 'pause' } }, 'Pause');
  const counter = h('span', { class: 'muted counter' });
  pause.addEventListener('click', () => {
    table.setPaused(!table.paused);
    setText(pause, table.paused ? 'Resume' : 'Pause');
    pause.classList.toggle('active', table.paused);
    onChange();
  });
  const search = h('input', { type: 'search', placeholder, 'aria-label': placeholder });
  search.addEventListener('input', () => {
    table.search = search.value;
    onChange();
  });
  const bar = h('div', { class: 'toolbar' }, pause,
    selects.map((s) => h('label', null, `${s.label} `, s.element)), search, counter);
  for (const s of selects) s.element.addEventListener('change', onChange);
  return {
    element: bar,
    update() {
      const paused = table.paused ? ` · paused, ${table.pending} new` : '';
      setText(counter, `${table.shown} shown of ${table.matching} (${table.ring.length} kept)${paused}`);
    },
  };
}

/** A <select> with `options` ([value, label]); `ensure(value)` adds an option once. */
export function select(options, name) {
  const el = h('select', { name }, options.map(([v, l]) => h('option', { value: v }, l)));
  const known = new Set(options.map(([v]) => v));
  return {
    element: el,
    get value() {
      return el.value;
    },
    ensure(value, label = value) {
      const v = String(value);
      if (known.has(v)) return;
      known.add(v);
      el.appendChild(h('option', { value: v }, label));
    },
  };
}
