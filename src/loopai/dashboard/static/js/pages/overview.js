// Overview: the cluster's instances and their connections, live charts of the last minutes
// (events/s, executions/s, error rate, p50/p99 execution latency) and the latest errors.

import { SecondBuckets, quantile, timeChart } from '../chart.js';
import { describeError, fmt, h, renderLoop, setText } from '../core.js';
import { follow } from '../live.js';
import { LiveTable } from '../table.js';
import { errorColumns, errorKey } from './errors.js';

const WINDOW_S = 300;

export async function mount(ctx, main) {
  const instancesBody = h('tbody');
  const instanceNote = h('p', { class: 'muted' });
  const charts = h('div', { class: 'charts' });
  const errors = new LiveTable({ columns: errorColumns().slice(0, 5), key: errorKey, capacity: 200, maxRows: 10, empty: 'No errors.' });
  const totals = h('dl', { class: 'totals' });
  main.replaceChildren(
    h('h1', null, 'Overview'),
    h('section', { class: 'card' }, h('h2', null, 'Instances'), instanceNote,
      h('div', { class: 'table-wrap' }, h('table', { class: 'live', id: 'instances' },
        h('thead', null, h('tr', null, ['instance', 'url', 'up since', 'connections', 'subscriptions',
          'send queue', 'events published', 'last seen'].map((c) => h('th', null, c)))),
        instancesBody))),
    h('section', { class: 'card' }, h('h2', null, `Last ${WINDOW_S / 60} minutes`), totals, charts),
    h('section', { class: 'card' }, h('h2', null, 'Latest errors ', h('a', { href: '/errors', class: 'small' }, 'all errors →')), errors.element),
    h('section', { class: 'card links' }, h('h2', null, 'API'),
      h('ul', null,
        h('li', null, h('a', { href: '/schema/swagger' }, 'API docs (Swagger UI)'), ' — every route, try them out'),
        h('li', null, h('a', { href: '/api/v1/metrics' }, '/api/v1/metrics'), ' — Prometheus metrics of this instance'),
        h('li', null, h('a', { href: '/api/v1/health' }, '/api/v1/health'), ' — this instance\'s health summary'))),
  );

  const throughput = timeChart(charts, { title: 'Throughput', yLabel: 'per second', series: [{ label: 'events/s' }, { label: 'executions/s' }], valueFmt: (v) => v.toFixed(1) });
  const errorRate = timeChart(charts, { title: 'Execution error rate', yLabel: '%', series: [{ label: 'errors %', color: '#ef4444' }], valueFmt: (v) => `${v.toFixed(1)}%` });
  const latency = timeChart(charts, { title: 'Execution latency', yLabel: 'ms', series: [{ label: 'p50' }, { label: 'p99', color: '#f59e0b' }], valueFmt: (v) => `${v.toFixed(2)} ms` });

  // events/s: from each instance's `metrics.snapshot` (cumulative `events_published`, turned
  // into a rate per instance, summed over instances per second).
  const snapshots = new Map(); // instance → latest snapshot data
  const lastCount = new Map(); // instance → {ts, value}
  const eventRates = new SecondBuckets(WINDOW_S, () => new Map()); // sec → instance → rate
  const execs = new SecondBuckets(WINDOW_S, () => ({ n: 0, errors: 0, latencies: [] }));
  let execTotal = 0;
  let errorTotal = 0;

  function onMetrics(item) {
    if (item.type !== 'metrics.snapshot' || !item.data) return;
    const data = item.data;
    snapshots.set(data.instance, { ...data, ts: item.ts });
    const previous = lastCount.get(data.instance);
    lastCount.set(data.instance, { ts: item.ts, value: data.events_published });
    if (previous && item.ts > previous.ts && data.events_published >= previous.value) {
      const rate = ((data.events_published - previous.value) * 1000) / (item.ts - previous.ts);
      eventRates.at(item.ts).set(data.instance, rate);
    }
    mark();
  }

  function onExecution(item) {
    if (!item.data || typeof item.data !== 'object') return;
    const bucket = execs.at(item.ts);
    bucket.n += 1;
    execTotal += 1;
    if (item.data.status !== 'success') {
      bucket.errors += 1;
      errorTotal += 1;
    }
    if (typeof item.data.latency_ms === 'number' && bucket.latencies.length < 5000) bucket.latencies.push(item.data.latency_ms);
    mark();
  }

  const cache = new Map(); // sec → {p50, p99} of finished seconds
  function draw() {
    const now = Math.floor(Date.now() / 1000);
    eventRates.trim(now);
    execs.trim(now);
    for (const sec of cache.keys()) if (sec < now - WINDOW_S) cache.delete(sec);
    const xs = eventRates.seconds(now);
    const ev = [];
    const ex = [];
    const er = [];
    const p50 = [];
    const p99 = [];
    const held = new Map(); // instance → last known rate (carried for up to 3 s)
    for (const sec of xs) {
      const rates = eventRates.map.get(sec);
      if (rates) for (const [inst, r] of rates) held.set(inst, { r, sec });
      let sum = null;
      for (const [inst, { r, sec: at }] of held) {
        if (sec - at > 3) held.delete(inst);
        else sum = (sum ?? 0) + r;
      }
      ev.push(sum);
      const b = execs.map.get(sec);
      ex.push(b ? b.n : 0);
      er.push(b && b.n ? (100 * b.errors) / b.n : null);
      let q = cache.get(sec);
      if (!q && b && b.latencies.length) {
        q = { p50: quantile(b.latencies, 0.5), p99: quantile(b.latencies, 0.99) };
        if (sec < now - 1) cache.set(sec, q);
      }
      p50.push(q ? q.p50 : null);
      p99.push(q ? q.p99 : null);
    }
    throughput.set(xs, ev, ex);
    errorRate.set(xs, er);
    latency.set(xs, p50, p99);
    const recent = (arr) => {
      const vals = arr.slice(-10).filter((v) => v !== null);
      return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
    };
    totals.replaceChildren(
      h('div', null, h('dt', null, 'events/s (10 s)'), h('dd', { id: 'rate-events' }, fmt.rate(recent(ev)))),
      h('div', null, h('dt', null, 'executions/s (10 s)'), h('dd', { id: 'rate-executions' }, fmt.rate(recent(ex)))),
      h('div', null, h('dt', null, 'executions seen'), h('dd', null, String(execTotal))),
      h('div', null, h('dt', null, 'failed'), h('dd', null, String(errorTotal))),
    );
    errors.render();
    drawInstances();
  }

  let instances = [];
  function drawInstances() {
    const byId = new Map(instances.map((i) => [i.id, i]));
    for (const id of snapshots.keys()) if (!byId.has(id)) byId.set(id, { id, url: '', stale: true });
    const mine = ctx.hub.welcome?.instance;
    const rows = [...byId.values()].sort((a, b) => a.id.localeCompare(b.id)).map((inst) => {
      const snap = snapshots.get(inst.id);
      return h('tr', { dataset: { instance: inst.id }, class: inst.stale ? 'stale' : null },
        h('td', null, inst.id, inst.id === mine ? h('span', { class: 'badge' }, 'this page') : null),
        h('td', null, inst.url ?? ''),
        h('td', null, inst.started_at ? fmt.dateTime(inst.started_at) : '—'),
        h('td', { class: 'num' }, String(snap?.connections ?? inst.connections ?? '—')),
        h('td', { class: 'num' }, String(snap?.subscriptions ?? inst.subscriptions ?? '—')),
        h('td', { class: 'num' }, String(snap?.send_queue_depth ?? '—')),
        h('td', { class: 'num' }, String(snap?.events_published ?? '—')),
        h('td', null, inst.seen_at ? fmt.time(inst.seen_at) : (snap ? fmt.time(snap.ts) : '—')));
    });
    instancesBody.replaceChildren(...(rows.length ? rows : [h('tr', null, h('td', { colspan: 8 }, 'loading…'))]));
    const cluster = [...snapshots.values()].sort((a, b) => b.ts - a.ts)[0]?.cluster;
    setText(instanceNote, cluster
      ? `${cluster.instances} instance(s), ${cluster.connections} connection(s), ${cluster.subscriptions} subscription(s) in the cluster.`
      : 'No metrics snapshot yet (LOOPAI_METRICS_INTERVAL_MS=0 turns them off).');
  }

  async function refreshInstances() {
    try {
      instances = await ctx.api.request('GET', '/api/v1/instances');
    } catch (error) {
      setText(instanceNote, `Could not list instances: ${describeError(error)}`);
    }
    mark();
  }

  const mark = renderLoop(draw, 4);
  setInterval(draw, 1000); // the window slides even without events
  await refreshInstances();
  setInterval(refreshInstances, 5000);
  await Promise.all([
    follow(ctx, 'metrics', { onEvent: onMetrics }),
    follow(ctx, 'executions', { onEvent: onExecution }),
    follow(ctx, 'errors', { onEvent: (item) => { if (errors.add(item)) mark(); } }),
  ]);
  mark.now();
}
