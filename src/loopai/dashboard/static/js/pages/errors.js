// Errors: the live feed of the `errors` topic (failed program runs, unhandled server errors),
// with filters by source and task, search and pause.

import { fmt, h, renderLoop } from '../core.js';
import { follow } from '../live.js';
import { LiveTable, select, toolbar } from '../table.js';

export const errorKey = (item) => item.cursor ?? `${item.ts}:${item.data?.execution_id ?? item.data?.trace_id}`;

export function errorColumns() {
  const d = (item) => item.data ?? {};
  return [
    { label: 'time', cell: (item) => fmt.time(item.ts) },
    { label: 'source', cell: (item) => d(item).source ?? item.type },
    {
      label: 'task',
      cell: (item) => (d(item).task_id
        ? h('a', { href: `/tasks/${encodeURIComponent(d(item).task_id)}` }, d(item).task_id)
        : '—'),
    },
    { label: 'status', cell: (item) => d(item).status ?? d(item).error ?? '' },
    {
      label: 'message',
      class: 'wide',
      cell: (item) => {
        const data = d(item);
        const text = data.message ?? (data.route ? `${data.method ?? ''} ${data.route}` : fmt.json(data));
        return h('span', { title: fmt.full(data) }, fmt.json(text, 200));
      },
    },
    { label: 'version', cell: (item) => (d(item).version !== undefined ? `v${d(item).version}` : '') },
    { label: 'execution / trace', cell: (item) => d(item).execution_id ?? d(item).trace_id ?? '' },
  ];
}

export async function mount(ctx, main) {
  const table = new LiveTable({ columns: errorColumns(), key: errorKey, capacity: 5000, maxRows: 200, empty: 'No errors yet.' });
  const source = select([['', 'all'], ['program', 'program'], ['server', 'server']], 'source');
  const task = select([['', 'all']], 'task');
  const apply = () => {
    table.filter = (item) => (!source.value || item.data?.source === source.value)
      && (!task.value || item.data?.task_id === task.value);
    mark.now();
  };
  const bar = toolbar(table, { selects: [{ label: 'source', ...source }, { label: 'task', ...task }], onChange: apply });
  main.replaceChildren(h('h1', null, 'Errors'),
    h('section', { class: 'card' }, h('p', { class: 'muted' }, 'Failed executions and unhandled server errors, as they happen (newest first).'),
      bar.element, table.element));
  const mark = renderLoop(() => {
    table.render();
    bar.update();
  }, 4);
  await follow(ctx, 'errors', {
    onEvent: (item) => {
      if (item.data?.task_id) task.ensure(item.data.task_id);
      if (table.add(item)) mark();
    },
  });
  mark.now();
}
