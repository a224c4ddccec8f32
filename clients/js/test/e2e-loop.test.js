// The loop through the REST helper against a real server: labelled cases, a program generated
// by the built-in `examples` backend, execution, feedback, validations, accuracy, and the
// generation and validation events on the hub.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApiClient, ApiError, HubClient, isEvent, LoopaiError } from '../src/index.js';
import { e2eSkipReason, HubProcess } from './support/hub-process.js';

const skip = e2eSkipReason();

const INPUT = { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] };
const OUTPUT = { type: 'string', enum: ['billing', 'technical', 'account'] };
const KEYWORDS = { billing: ['refund', 'invoice'], technical: ['crash', 'error'], account: ['password', 'login'] };
const TEMPLATES = ['I need help with my {w}', 'the {w} is wrong again', 'question about a {w} today',
  'why is there a {w} on my screen', 'please look at this {w} asap', 'my {w} problem since yesterday',
  '{w} issue, can you check'];

/** 42 labelled tickets: each keyword of each label in each template. */
function tickets() {
  return Object.entries(KEYWORDS).flatMap(([label, words]) => words.flatMap((w) => TEMPLATES.map(
    (t) => ({ input: { text: t.replace('{w}', w) }, output: label }))));
}

const unique = (prefix) => `${prefix}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;

describe('e2e: the loop through the REST helper', { skip: skip ?? false }, () => {
  let hub;
  let api;
  before(async () => {
    hub = await new HubProcess({ env: { LOOPAI_SANDBOX_WORKERS: '1' } }).start();
    api = new ApiClient(hub.http);
  });
  after(async () => {
    await hub?.kill();
  });

  test('cases, generate with examples, execute, feedback, validations, accuracy', async () => {
    const examples = tickets();
    const task = await api.createTask({
      name: unique('js-loop'), input_schema: INPUT, output_schema: OUTPUT,
      examples: examples.slice(0, 36), sampling_rate: 0,
    });
    assert.equal((await api.listCases(task.id, { limit: 500 })).total, 36);
    assert.equal((await api.addCases(task.id, examples.slice(36, 39))).added, 3);
    assert.deepEqual(await api.importCases(task.id, examples.slice(39)), { added: 3, total: 42 });
    const first = await api.listCases(task.id, { limit: 10 });
    assert.equal(first.items.length, 10);
    assert.equal(first.total, 42);
    const rest = await api.listCases(task.id, { limit: 500, cursor: first.next_cursor });
    assert.equal(first.items.length + rest.items.length, 42);

    const job = await api.generate(task.id);
    assert.ok(['queued', 'running'].includes(job.status), job.status);
    assert.equal(job.backend, 'examples');
    const done = await api.waitForGeneration(job.id, { timeoutMs: 120_000 });
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.deepEqual([done.version, done.activated, done.cases_total], [1, true, 42]);
    assert.ok(done.accuracy >= 0.9, `accuracy ${done.accuracy}`);
    assert.deepEqual((await api.listGenerations(task.id)).items.map((g) => g.id), [job.id]);
    assert.ok((await api.getGeneration(job.id)).finished_at);
    const artifact = await api.getArtifact(task.id, 1);
    assert.equal(artifact.status, 'active');
    assert.equal(artifact.generation_id, job.id);
    assert.equal(artifact.activated_by, `generation ${job.id}`);

    const run = await api.execute(task.id, { input: { text: 'my invoice shows a double charge' } });
    assert.deepEqual([run.status, run.output], ['success', 'billing']);
    const confirmed = await api.feedback(run.execution_id, { correct: true });
    assert.equal(confirmed.case.source, 'feedback');
    assert.equal(confirmed.validation.match, true);
    const again = await api.feedback(run.execution_id, { expectedOutput: 'billing' });
    assert.equal(again.already_validated, true);
    assert.equal(again.validation.id, confirmed.validation.id);
    const other = await api.execute(task.id, { input: { text: 'the app keeps showing an error on start' } });
    const wrong = other.output === 'account' ? 'billing' : 'account';
    const miss = await api.feedback(other.execution_id, { expectedOutput: wrong });
    assert.equal(miss.validation.match, false);
    assert.equal(miss.validation.expected, wrong);

    const page = await api.listValidations(task.id, { limit: 1 });
    assert.deepEqual(page.items.map((v) => v.execution_id), [other.execution_id]);
    const older = await api.listValidations(task.id, { cursor: page.next_cursor, version: 1 });
    assert.deepEqual(older.items.map((v) => v.execution_id), [run.execution_id]);
    assert.deepEqual((await api.listValidations(task.id, { version: 2 })).items, []);
    const accuracy = await api.taskAccuracy(task.id);
    assert.deepEqual([accuracy.task_id, accuracy.target], [task.id, 0.9]);
    const [v1] = accuracy.versions;
    assert.deepEqual([v1.version, v1.samples, v1.matches, v1.accuracy], [1, 2, 1, 0.5]);
    assert.ok(v1.low >= 0 && v1.low <= 0.5 && v1.high >= 0.5 && v1.high <= 1);
    assert.equal((await api.getTask(task.id)).accuracy.samples, 2);

    assert.equal(await api.deleteCase(task.id, miss.case.id), null);
    await assert.rejects(api.deleteCase(task.id, miss.case.id), (err) => err instanceof ApiError && err.status === 404);
    await assert.rejects(api.getGeneration('nope'), (err) => err instanceof ApiError && err.status === 404);
    await assert.rejects(api.feedback(run.execution_id, {}), (err) => err instanceof ApiError && err.status === 400);
    await api.deleteTask(task.id, { force: true });
  });

  test('generation and validation events carry the resources', async () => {
    const task = await api.createTask({ name: unique('js-loop-events'), input_schema: INPUT, output_schema: OUTPUT, sampling_rate: 0 });
    assert.equal((await api.importCases(task.id, tickets().map((c) => JSON.stringify(c)).join('\n'))).total, 42);
    const client = await HubClient.connect(hub.http);
    try {
      const generations = await client.subscribe(`tasks.${task.id}.generations`);
      const validations = await client.subscribe(`tasks.${task.id}.validations`);
      const job = await api.generate(task.id, { backend: 'examples', activate: 'if_validated' });
      assert.equal(job.activate, 'if_validated');
      const done = await api.waitForGeneration(job.id);
      assert.equal(done.status, 'completed');
      const seen = [];
      for await (const item of generations) {
        assert.equal(item.kind, 'event');
        seen.push(item);
        if (item.type === 'generation.completed') break;
      }
      assert.equal(seen[0].type, 'generation.started');
      assert.equal(seen[0].data.status, 'running');
      assert.equal(seen.at(-1).data.version, done.version);
      const progress = seen.filter((e) => isEvent(e, 'generation.progress')).map((e) => e.data);
      assert.ok(progress.length > 0 && progress.every((p) => p.generation_id === job.id));
      assert.equal(progress.at(-1).cases_total, 42);

      const run = await api.execute(task.id, { input: { text: 'cannot login, password reset fails' } });
      assert.equal(run.output, 'account');
      const result = await api.feedback(run.execution_id, { expectedOutput: 'account' });
      let validation = null;
      for await (const item of validations) {
        if (isEvent(item, 'validation.completed')) {
          validation = item.data;
          break;
        }
      }
      assert.deepEqual([validation.id, validation.oracle, validation.match], [result.validation.id, 'feedback', true]);
      const cases = await api.listCases(task.id, { limit: 500 });
      assert.equal(cases.total, 43);
      assert.deepEqual(new Set(cases.items.map((c) => c.source)), new Set(['manual', 'feedback']));
      const accuracy = await api.taskAccuracy(task.id);
      assert.deepEqual(accuracy.versions.map((v) => [v.version, v.samples, v.matches]), [[1, 1, 1]]);
    } finally {
      await client.close();
    }
    await api.deleteTask(task.id, { force: true });
  });

  test('waitForGeneration rejects with a TimeoutError while the job runs', async () => {
    let polls = 0;
    const fake = new ApiClient('http://hub.invalid', {
      fetch: async () => {
        polls += 1;
        return new Response(JSON.stringify({ id: 'g1', task_id: 't1', status: 'running' }), { status: 200 });
      },
    });
    await assert.rejects(fake.waitForGeneration('g1', { timeoutMs: 200, intervalMs: 40 }), (err) => {
      assert.ok(err instanceof LoopaiError);
      assert.equal(err.name, 'TimeoutError');
      assert.equal(err.code, 'timeout');
      assert.equal(err.generation.status, 'running');
      assert.match(err.message, /generation g1 still running after 200 ms/);
      return true;
    });
    assert.ok(polls >= 3, `${polls} polls`);
    const controller = new AbortController();
    const waiting = fake.waitForGeneration('g1', { signal: controller.signal });
    controller.abort(new Error('stop'));
    await assert.rejects(waiting, /stop/);
  });
});
