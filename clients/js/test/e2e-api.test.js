// The REST helper against a real server: a task's life (create, upload, activate, execute,
// list) and the server's error shape surfacing as ApiError.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApiClient, ApiError } from '../src/index.js';
import { e2eSkipReason, HubProcess } from './support/hub-process.js';

const skip = e2eSkipReason();

const CLASSIFIER = [
  'import re',
  'def classify(text):',
  "    return 'positive' if re.search(r'good|love', text) else 'negative'",
  '',
].join('\n');

describe('e2e: REST helper', { skip: skip ?? false }, () => {
  let hub;
  let api;
  before(async () => {
    hub = await new HubProcess({ env: { LOOPAI_SANDBOX_WORKERS: '1' } }).start();
    api = new ApiClient(hub.http);
  });
  after(async () => {
    await hub?.kill();
  });

  test('a task from creation to execution records', async () => {
    const task = await api.createTask({
      name: `js-sentiment-${Date.now()}`,
      input_schema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
      output_schema: { type: 'string', enum: ['positive', 'negative'] },
      examples: [{ input: { text: 'I love it' }, output: 'positive' }],
    });
    const artifact = await api.uploadArtifact(task.id, { code: CLASSIFIER }, { activate: true });
    assert.equal(artifact.status, 'active');
    assert.equal(artifact.example_accuracy, 1);
    const result = await api.execute(task.id, { input: { text: 'good day' } });
    assert.equal(result.status, 'success');
    assert.equal(result.output, 'positive');
    const batch = await api.executeBatch(task.id, { inputs: [{ text: 'meh' }, { nope: 1 }] });
    assert.deepEqual([batch.succeeded, batch.failed], [1, 1]);
    const page = await api.listExecutions(task.id, { limit: 10 });
    assert.equal(page.items.length, 2);
    assert.equal((await api.getExecution(result.execution_id)).output, 'positive');
    await api.uploadArtifact(task.id, { code: "def run(input):\n    return 'negative'\n" });
    const forced = await api.activateArtifact(task.id, 2, { force: true });
    assert.equal(forced.status, 'active');
    assert.equal((await api.getTask(task.id)).active_version, 2);
    assert.equal(await api.deleteTask(task.id, { force: true }), null);
  });

  test('server errors become ApiError with code, message and trace id', async () => {
    await assert.rejects(api.getTask('missing'), (err) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'not_found');
      assert.match(err.message, /task missing not found/);
      assert.ok(err.traceId);
      return true;
    });
    await assert.rejects(api.createTask({ name: 'x' }), (err) => err.status === 400
      && err.code === 'validation_error');
  });
});
