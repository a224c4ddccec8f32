// Tasks: every task with its active version, accuracy (interval and samples), executions/s and
// success rate, kept current from the `tasks`, `executions`, `validations` and `artifacts` topics.

import { describeError, fmt, h, renderLoop, setText } from '../core.js';
import { debounce, follow } from '../live.js';

const RATE_WINDOW_S = 10;

async function allTasks(api) {
  const out = [];
  let cursor;
  for (let i = 0; i < 20; i += 1) {
    const page = await api.listTasks({ limit: 100, cursor });
    out.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

export async function mount(ctx, main) {
  const tbody = h('tbody');
  const note = h('p', { class: 'muted' });
  const search = h('input', { type: 'search', placeholder: 'filter by name or id', 'aria-label': 'filter tasks' });
  main.replaceChildren(h('h1', null, 'Tasks'),
    h('section', { class: 'card' }, h('div', { class: 'toolbar' }, search), note,
      h('div', { class: 'table-wrap' }, h('table', { class: 'live', id: 'tasks' },
        h('thead', null, h('tr', null, ['task', 'id', 'active version', 'accuracy', 'target',
          'executions/s', 'success rate', 'executions seen'].map((c) => h('th', null, c)))),
        tbody))));

  const tasks = new Map(); // id → task resource
  const counts = new Map(); // id → {times: [ms], n, ok}
  const count = (id) => {
    let c = counts.get(id);
    if (!c) {
      c = { times: [], n: 0, ok: 0 };
      counts.set(id, c);
    }
    return c;
  };

  function draw() {
    const now = Date.now();
    const needle = search.value.trim().toLowerCase();
    const rows = [];
    const sorted = [...tasks.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const task of sorted) {
      if (needle && !task.name.toLowerCase().includes(needle) && !task.id.includes(needle)) continue;
      const c = counts.get(task.id);
      let rate = 0;
      if (c) {
        while (c.times.length && c.times[0] < now - RATE_WINDOW_S * 1000) c.times.shift();
        rate = c.times.length / RATE_WINDOW_S;
      }
      const acc = task.accuracy;
      rows.push(h('tr', { dataset: { task: task.id }, class: acc?.breached ? 'breached' : null },
        h('td', null, h('a', { href: `/tasks/${encodeURIComponent(task.id)}`, class: 'task-name' }, task.name)),
        h('td', { class: 'mono' }, task.id),
        h('td', { class: 'num' }, task.active_version ? `v${task.active_version}` : 'none'),
        h('td', { title: acc ? `${acc.matches} of ${acc.samples} validated runs matched (v${acc.version}); Wilson 95% interval` : 'no validated runs yet' }, fmt.accuracy(acc)),
        h('td', { class: 'num' }, fmt.pct(task.accuracy_target, 0)),
        h('td', { class: 'num' }, fmt.rate(rate)),
        h('td', { class: 'num' }, c && c.n ? fmt.pct(c.ok / c.n) : '—'),
        h('td', { class: 'num' }, String(c?.n ?? 0))));
    }
    tbody.replaceChildren(...(rows.length ? rows : [h('tr', { class: 'empty' }, h('td', { colspan: 8 }, tasks.size ? 'No task matches.' : 'No tasks yet.'))]));
    setText(note, `${tasks.size} task(s). Executions/s over the last ${RATE_WINDOW_S} s; success rate over the executions seen by this page (history included).`);
  }
  const mark = renderLoop(draw, 2);
  search.addEventListener('input', () => mark.now());
  setInterval(mark, 1000);

  const refetch = new Map();
  const refresh = (id) => {
    if (!refetch.has(id)) {
      refetch.set(id, debounce(async () => {
        try {
          tasks.set(id, await ctx.api.getTask(id));
        } catch (error) {
          if (error.status === 404) tasks.delete(id);
        }
        mark();
      }, 500));
    }
    refetch.get(id)();
  };

  try {
    for (const task of await allTasks(ctx.api)) tasks.set(task.id, task);
  } catch (error) {
    setText(note, `Could not list tasks: ${describeError(error)}`);
  }
  mark.now();
  await Promise.all([
    follow(ctx, 'tasks', {
      onEvent: (item) => {
        const data = item.data ?? {};
        if (item.type === 'task.deleted') tasks.delete(data.id);
        else if (data.id) tasks.set(data.id, data);
        mark();
      },
      onGap: async () => {
        for (const task of await allTasks(ctx.api)) tasks.set(task.id, task);
        mark();
      },
      replay: false, // the list above is current
    }),
    follow(ctx, 'executions', {
      onEvent: (item) => {
        const data = item.data ?? {};
        if (!data.task_id) return;
        const c = count(data.task_id);
        c.n += 1;
        if (data.status === 'success') c.ok += 1;
        if (item.ts > Date.now() - RATE_WINDOW_S * 1000) c.times.push(item.ts);
        mark();
      },
    }),
    follow(ctx, ['validations', 'artifacts'], {
      onEvent: (item) => {
        if (item.data?.task_id) refresh(item.data.task_id);
      },
      replay: false,
    }),
  ]);
}
