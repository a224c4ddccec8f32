// One task: the live stream of its executions (pause, filter by status and version, search),
// its versions timeline with generate / activate / rollback, accuracy per version over time,
// the latest validations (expected vs actual), a latency histogram and its cases.

import { COLORS, timeChart } from '../chart.js';
import { Ring, confirmDialog, describeError, fmt, h, renderLoop, setText, toast } from '../core.js';
import { debounce, follow } from '../live.js';
import { LiveTable, select, toolbar } from '../table.js';

const HISTOGRAM_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000];

function executionOf(item) {
  // Live events carry the execution resource; REST list items are the same shape.
  return item.data ?? item;
}

export async function mount(ctx, main) {
  const taskId = document.body.dataset.taskId;
  const { api } = ctx;
  let task;
  try {
    task = await api.getTask(taskId);
  } catch (error) {
    main.replaceChildren(h('div', { class: 'card error', role: 'alert' },
      h('h2', null, error.status === 404 ? 'No such task' : 'Could not load the task'),
      h('p', null, describeError(error)), h('p', null, h('a', { href: '/tasks' }, '← all tasks'))));
    return;
  }

  // ---- layout -------------------------------------------------------------------------------
  const title = h('h1', { id: 'task-name' });
  const summary = h('dl', { class: 'totals', id: 'task-summary' });
  const description = h('p', { class: 'muted' });
  const generateBtn = h('button', { type: 'button', class: 'primary', dataset: { action: 'generate' } }, 'Generate a new version');
  const generationStatus = h('p', { id: 'generation-status', class: 'muted', 'aria-live': 'polite' });
  const versionsList = h('ol', { class: 'timeline', id: 'versions' });
  const accuracyBox = h('div', { class: 'chart-box' });
  const accuracyTable = h('tbody');
  const validations = new LiveTable({
    key: (v) => v.id,
    capacity: 500,
    maxRows: 50,
    empty: 'No validations yet: give feedback on an execution (POST /api/v1/executions/{id}/feedback) or let sampling pick some.',
    rowClass: (v) => (v.match ? 'ok' : 'bad'),
    columns: [
      { label: 'time', cell: (v) => fmt.time(v.validated_at) },
      { label: 'version', cell: (v) => `v${v.version}` },
      { label: 'match', cell: (v) => (v.match ? '✓ match' : '✗ mismatch') },
      { label: 'expected', class: 'wide', cell: (v) => h('code', { title: fmt.full(v.expected) }, fmt.json(v.expected)) },
      { label: 'actual', class: 'wide', cell: (v) => h('code', { title: fmt.full(v.actual) }, fmt.json(v.actual)) },
      { label: 'oracle', cell: (v) => `${v.oracle}${v.failure_type ? ` · ${v.failure_type}` : ''}` },
    ],
  });
  const histogram = h('div', { class: 'histogram', id: 'latency-histogram' });
  const casesBody = h('tbody');
  const casesNote = h('p', { class: 'muted' });
  const moreCases = h('button', { type: 'button', hidden: true }, 'Load more');

  const stream = new LiveTable({
    key: (e) => executionOf(e).execution_id,
    capacity: 5000,
    maxRows: 200,
    empty: 'No executions yet. Run the task: POST /api/v1/tasks/{id}/execute.',
    rowClass: (e) => `status-${executionOf(e).status}`,
    columns: [
      { label: 'time', cell: (e) => fmt.time(executionOf(e).executed_at) },
      { label: 'status', cell: (e) => h('span', { class: `pill ${executionOf(e).status}` }, executionOf(e).status) },
      { label: 'version', cell: (e) => `v${executionOf(e).version}` },
      { label: 'latency', class: 'num', cell: (e) => fmt.ms(executionOf(e).latency_ms) },
      { label: 'input', class: 'wide', cell: (e) => h('code', { title: fmt.full(executionOf(e).input) }, fmt.json(executionOf(e).input)) },
      {
        label: 'output',
        class: 'wide',
        cell: (e) => {
          const x = executionOf(e);
          if (x.status !== 'success') return h('span', { class: 'error-text', title: x.error_message ?? '' }, fmt.json(x.error_message ?? x.status, 160));
          if (x.output_omitted) return h('span', { class: 'muted' }, '(too large for events: GET /api/v1/executions/…)');
          return h('code', { title: fmt.full(x.output) }, fmt.json(x.output));
        },
      },
      { label: 'id', class: 'mono small', cell: (e) => executionOf(e).execution_id },
    ],
  });
  const statusSel = select([['', 'all'], ['success', 'success'], ['error', 'error'], ['timeout', 'timeout']], 'status');
  const versionSel = select([['', 'all']], 'version');
  const applyFilters = () => {
    const status = statusSel.value;
    const version = versionSel.value;
    stream.filter = (e) => (!status || executionOf(e).status === status)
      && (!version || String(executionOf(e).version) === version);
    mark.now();
  };
  const bar = toolbar(stream, {
    selects: [{ label: 'status', ...statusSel }, { label: 'version', ...versionSel }],
    onChange: applyFilters,
    placeholder: 'search input / output',
  });

  main.replaceChildren(
    h('p', { class: 'crumbs' }, h('a', { href: '/tasks' }, 'Tasks'), ' / ', h('span', { class: 'mono' }, taskId)),
    title, description, summary,
    h('div', { class: 'grid' },
      h('section', { class: 'card span-2' }, h('h2', null, 'Executions (live)'), bar.element, stream.element),
      h('section', { class: 'card' }, h('h2', null, 'Versions'), generateBtn, generationStatus, versionsList),
      h('section', { class: 'card' }, h('h2', null, 'Accuracy per version'), accuracyBox,
        h('div', { class: 'table-wrap' }, h('table', { class: 'live', id: 'accuracy' },
          h('thead', null, h('tr', null, ['version', 'accuracy', '95% interval', 'samples', 'matches', ''].map((c) => h('th', null, c)))),
          accuracyTable))),
      h('section', { class: 'card span-2' }, h('h2', null, 'Latest validations'), validations.element),
      h('section', { class: 'card' }, h('h2', null, 'Latency (last 1,000 executions)'), histogram),
      h('section', { class: 'card' }, h('h2', null, 'Cases'), casesNote,
        h('div', { class: 'table-wrap' }, h('table', { class: 'live', id: 'cases' },
          h('thead', null, h('tr', null, ['input', 'output', 'source'].map((c) => h('th', null, c)))), casesBody)),
        moreCases)),
  );

  // ---- the task header -------------------------------------------------------------------
  function drawTask() {
    setText(title, task.name);
    setText(description, task.description || '');
    summary.replaceChildren(
      h('div', null, h('dt', null, 'active version'), h('dd', { id: 'active-version' }, task.active_version ? `v${task.active_version}` : 'none')),
      h('div', null, h('dt', null, 'accuracy'), h('dd', { id: 'task-accuracy' }, fmt.accuracy(task.accuracy))),
      h('div', null, h('dt', null, 'target'), h('dd', null, `${fmt.pct(task.accuracy_target, 0)} accuracy · ${fmt.ms(task.latency_target_ms)}`)),
      h('div', null, h('dt', null, 'sampling'), h('dd', null, fmt.pct(task.sampling_rate, 0))),
      h('div', null, h('dt', null, 'generator'), h('dd', null, task.generator ?? 'server default')),
    );
  }
  const refreshTask = debounce(async () => {
    try {
      task = await api.getTask(taskId);
      drawTask();
    } catch (error) {
      console.warn('task refresh:', error.message);
    }
  }, 300);
  drawTask();

  // ---- versions ---------------------------------------------------------------------------
  const writeWhy = ctx.why('write');
  if (writeWhy) {
    generateBtn.disabled = true;
    generateBtn.title = writeWhy;
  } else {
    generateBtn.title = 'Generate a program from the task\'s cases (the task\'s or the server\'s generator backend)';
  }
  let artifacts = [];
  function drawVersions() {
    const active = artifacts.find((a) => a.status === 'active');
    const items = [...artifacts].sort((a, b) => b.version - a.version).map((a) => {
      const generated = Boolean(a.generation_id || a.llm_provider);
      const origin = generated
        ? `generated${a.llm_provider ? ` by ${a.llm_provider}${a.llm_model ? `/${a.llm_model}` : ''}` : ''}${a.generation_id ? ` (job ${a.generation_id.slice(0, 8)})` : ''}`
        : 'uploaded';
      const facts = [
        origin,
        `created ${fmt.dateTime(a.created_at)}`,
        a.example_accuracy !== undefined && a.example_accuracy !== null ? `examples ${fmt.pct(a.example_accuracy)}` : null,
        a.activated_at ? `activated ${fmt.dateTime(a.activated_at)}${a.activated_by ? ` by ${a.activated_by}` : ''}` : null,
        a.status === 'deprecated' ? (active && a.version > active.version ? 'rolled back' : 'replaced') : null,
        a.accuracy_state && a.accuracy_state !== 'ok' ? `accuracy ${a.accuracy_state}` : null,
        a.cost_usd ? `$${a.cost_usd.toFixed(4)}` : null,
      ].filter(Boolean);
      let button = null;
      if (a.status !== 'active') {
        const rollback = active && a.version < active.version;
        const label = rollback ? `Roll back to v${a.version}` : `Activate v${a.version}`;
        button = h('button', { type: 'button', dataset: { action: rollback ? 'rollback' : 'activate', version: a.version } }, label);
        if (writeWhy) {
          button.disabled = true;
          button.title = writeWhy;
        } else if (a.status === 'failed') {
          button.disabled = true;
          button.title = `v${a.version} failed validation: ${(a.validation_errors ?? []).join('; ') || 'see the artifact'}`;
        } else {
          button.addEventListener('click', async () => {
            const ok = await confirmDialog(label,
              `Serve every execution of “${task.name}” with v${a.version} instead of ${active ? `v${active.version}` : 'no version'}?`, label);
            if (!ok) return;
            try {
              await api.activateArtifact(taskId, a.version);
              toast(`v${a.version} is active`);
              await loadVersions();
            } catch (error) {
              toast(`Could not activate v${a.version}: ${describeError(error)}`, 'error');
            }
          });
        }
      }
      return h('li', { class: `version ${a.status}`, dataset: { version: a.version } },
        h('div', { class: 'version-head' }, h('strong', null, `v${a.version}`), h('span', { class: `pill ${a.status}` }, a.status), button),
        h('div', { class: 'muted small' }, facts.join(' · ')));
    });
    versionsList.replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No versions yet: generate one, or upload with POST /api/v1/tasks/{id}/artifacts.')]));
    for (const a of artifacts) versionSel.ensure(a.version, `v${a.version}`);
  }
  async function loadVersions() {
    try {
      artifacts = (await api.listArtifacts(taskId)).items;
    } catch (error) {
      versionsList.replaceChildren(h('li', { class: 'error' }, `Could not list versions: ${describeError(error)}`));
      return;
    }
    drawVersions();
  }
  const reloadVersions = debounce(loadVersions, 300);
  generateBtn.addEventListener('click', async () => {
    const ok = await confirmDialog('Generate a new version',
      `Generate a program for “${task.name}” from its cases? It becomes active if it validates better than the current one.`, 'Generate');
    if (!ok) return;
    try {
      const job = await api.generate(taskId);
      setText(generationStatus, `generation ${job.id.slice(0, 8)}: ${job.status}`);
    } catch (error) {
      toast(`Could not start a generation: ${describeError(error)}`, 'error');
    }
  });
  function onGeneration(item) {
    const job = item.data ?? {};
    const id = (job.generation_id ?? job.id ?? '').slice(0, 8);
    let text;
    if (item.type === 'generation.progress') text = `generation ${id}: attempt ${job.attempt}, ${job.cases_passed}/${job.cases_total} cases passed`;
    else if (item.type === 'generation.completed') text = `generation ${id}: completed, v${job.version}${job.activated ? ' (activated)' : ''}${job.accuracy !== undefined && job.accuracy !== null ? `, accuracy ${fmt.pct(job.accuracy)}` : ''}`;
    else if (item.type === 'generation.failed') text = `generation ${id}: failed: ${fmt.json(job.error, 200)}`;
    else text = `generation ${id}: ${job.status ?? item.type}`;
    setText(generationStatus, `${fmt.time(item.ts)} ${text}`);
    generationStatus.dataset.type = item.type;
    if (item.type === 'generation.completed' || item.type === 'generation.failed') {
      reloadVersions();
      refreshTask();
    }
  }

  // ---- accuracy over time -----------------------------------------------------------------
  const perVersion = new Map(); // version → {points: [[sec, acc]], n, m}
  let accuracyChart = null;
  let chartVersions = null;
  const byValidation = new Set();
  function addValidation(v) {
    if (byValidation.has(v.id)) return;
    byValidation.add(v.id);
    validations.add(v);
    let pv = perVersion.get(v.version);
    if (!pv) {
      pv = { points: [], n: 0, m: 0 };
      perVersion.set(v.version, pv);
    }
    pv.n += 1;
    if (v.match) pv.m += 1;
    const ts = Date.parse(v.validated_at) / 1000;
    pv.points.push([ts, pv.m / pv.n]);
    if (pv.points.length > 2000) pv.points.shift();
  }
  function drawAccuracy() {
    const versions = [...perVersion.keys()].sort((a, b) => a - b);
    const key = versions.join(',');
    if (key !== chartVersions) {
      accuracyBox.replaceChildren();
      chartVersions = key;
      accuracyChart = versions.length
        ? timeChart(accuracyBox, {
          title: 'running accuracy of validated runs',
          yLabel: 'accuracy',
          series: versions.map((v, i) => ({ label: `v${v}`, color: COLORS[i % COLORS.length], spanGaps: true, points: true })),
          valueFmt: (x) => fmt.pct(x),
        })
        : null;
      if (!accuracyChart) accuracyBox.appendChild(h('p', { class: 'muted' }, 'No validations yet.'));
    }
    if (!accuracyChart) return;
    const xs = [...new Set(versions.flatMap((v) => perVersion.get(v).points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = versions.map((v) => {
      const col = new Array(xs.length).fill(null);
      for (const [x, y] of perVersion.get(v).points) col[index.get(x)] = y;
      return col;
    });
    accuracyChart.set(xs, ...ys);
  }
  async function loadAccuracy() {
    try {
      const acc = await api.taskAccuracy(taskId);
      accuracyTable.replaceChildren(...(acc.versions.length ? acc.versions.map((v) => h('tr', { dataset: { version: v.version }, class: v.breached ? 'breached' : null },
        h('td', null, `v${v.version}`),
        h('td', { class: 'num' }, fmt.pct(v.accuracy)),
        h('td', { class: 'num' }, `${fmt.pct(v.low, 0)}–${fmt.pct(v.high, 0)}`),
        h('td', { class: 'num' }, String(v.samples)),
        h('td', { class: 'num' }, String(v.matches)),
        h('td', null, v.breached ? `below target ${fmt.pct(acc.target, 0)}` : ''))) : [h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'No validated runs yet.'))]));
    } catch (error) {
      accuracyTable.replaceChildren(h('tr', null, h('td', { colspan: 6 }, `Could not load accuracy: ${describeError(error)}`)));
    }
  }
  const reloadAccuracy = debounce(loadAccuracy, 500);
  async function loadValidations() {
    const items = [];
    let cursor;
    for (let i = 0; i < 5; i += 1) {
      const page = await api.listValidations(taskId, { limit: 100, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    for (const v of items.reverse()) addValidation(v); // oldest first
  }

  // ---- latency histogram ------------------------------------------------------------------
  const latencies = new Ring(1000);
  const bars = HISTOGRAM_MS.map((limit, i) => {
    const lo = i === 0 ? 0 : HISTOGRAM_MS[i - 1];
    const label = i === HISTOGRAM_MS.length - 1 ? `≥ ${fmt.ms(lo)}` : `${lo}–${limit} ms`;
    const bar = h('span', { class: 'bar' });
    const count = h('span', { class: 'count' });
    histogram.appendChild(h('div', { class: 'hrow' }, h('span', { class: 'label' }, label), h('span', { class: 'track' }, bar), count));
    return { bar, count };
  });
  function drawHistogram() {
    const counts = new Array(HISTOGRAM_MS.length).fill(0);
    latencies.eachNewest((ms) => {
      let i = HISTOGRAM_MS.findIndex((limit) => ms < limit);
      if (i < 0) i = HISTOGRAM_MS.length - 1;
      counts[i] += 1;
    });
    const max = Math.max(1, ...counts);
    counts.forEach((n, i) => {
      bars[i].bar.style.width = `${(100 * n) / max}%`;
      setText(bars[i].count, String(n));
    });
  }

  // ---- cases ------------------------------------------------------------------------------
  let casesCursor = null;
  async function loadCases(more = false) {
    try {
      const page = await api.listCases(taskId, { limit: 50, cursor: more ? casesCursor : undefined });
      const rows = page.items.map((c) => h('tr', null,
        h('td', null, h('code', { title: fmt.full(c.input) }, fmt.json(c.input))),
        h('td', null, h('code', { title: fmt.full(c.output) }, fmt.json(c.output))),
        h('td', null, c.source ?? '')));
      if (more) casesBody.append(...rows);
      else casesBody.replaceChildren(...rows);
      casesCursor = page.next_cursor ?? null;
      moreCases.hidden = !casesCursor;
      setText(casesNote, `${page.total} case(s); ${casesBody.childElementCount} shown.`);
    } catch (error) {
      setText(casesNote, `Could not list cases: ${describeError(error)}`);
    }
  }
  moreCases.addEventListener('click', () => loadCases(true));
  const reloadCases = debounce(() => loadCases(false), 1000);

  // ---- the render loop and the live feeds ---------------------------------------------------
  const mark = renderLoop(() => {
    stream.render();
    bar.update();
    validations.render();
    drawAccuracy();
    drawHistogram();
  }, 4);

  function onExecution(item) {
    const x = executionOf(item);
    if (!x.execution_id) return;
    if (stream.add(item)) {
      versionSel.ensure(x.version, `v${x.version}`);
      if (typeof x.latency_ms === 'number') latencies.push(x.latency_ms);
      mark();
    }
  }
  async function refetchExecutions() {
    // After a gap: the newest executions from the database, merged by id (none twice).
    try {
      const page = await api.listExecutions(taskId, { limit: 200 });
      for (const x of [...page.items].reverse()) onExecution({ data: x });
    } catch (error) {
      console.warn('refetch executions:', error.message);
    }
  }

  await Promise.all([loadVersions(), loadAccuracy(), loadCases(), loadValidations().catch((e) => console.warn(e.message))]);
  mark.now();
  const topic = (name) => `tasks.${taskId}.${name}`;
  await Promise.all([
    follow(ctx, topic('executions'), { onEvent: onExecution, onGap: refetchExecutions }),
    follow(ctx, [topic('artifacts'), topic('generations')], {
      replay: false,
      onEvent: (item) => {
        if (item.topic.endsWith('.generations')) onGeneration(item);
        else {
          reloadVersions();
          refreshTask();
        }
      },
      onGap: () => {
        reloadVersions();
        refreshTask();
      },
    }),
    follow(ctx, topic('validations'), {
      replay: false,
      onEvent: (item) => {
        if (item.type === 'validation.completed' && item.data) {
          addValidation(item.data);
          reloadAccuracy();
          refreshTask();
          reloadCases();
          mark();
        } else if (item.type.startsWith('accuracy.')) {
          reloadAccuracy();
          refreshTask();
        }
      },
      onGap: () => {
        loadValidations().then(mark).catch(() => {});
        reloadAccuracy();
      },
    }),
  ]);
  // Tasks topic: renamed or deleted while open.
  await follow(ctx, 'tasks', {
    replay: false,
    onEvent: (item) => {
      if (item.data?.id !== taskId) return;
      if (item.type === 'task.deleted') toast('This task was deleted.', 'error');
      else {
        task = item.data;
        drawTask();
      }
    },
  });
}
