// Compiled (never run) by test/types.test.js with `tsc --strict`: the shipped types must accept
// the README's usage and reject misuse.
import { ApiClient, ApiError, HubClient, HubClosedError, isEvent, type SubscriptionItem } from '@loopai/client';

async function main(): Promise<void> {
  const hub = await HubClient.connect('http://127.0.0.1:8000', { token: () => 'key', backoff: { maxMs: 5000 } });
  hub.on('state', (s) => console.log(s.state, s.previous, s.delayMs, s.error?.closeCode));
  const sub = await hub.subscribe(['tasks', 'executions'], { since: { tasks: 'x:1-0' } });
  for await (const item of sub) {
    if (item.kind === 'gap') {
      console.log(item.since, item.oldest);
      continue;
    }
    if (isEvent(item, 'execution.completed')) {
      const latency: number | undefined = item.data.latency_ms; // typed by EventDataMap
      console.log(latency, item.cursor);
    }
  }
  await hub.subscribe('demo', (item: SubscriptionItem) => console.log(item.topic));
  const api2 = new ApiClient('http://127.0.0.1:8000', { token: 'key' });
  await HubClient.connect('http://127.0.0.1:8000', { getToken: async () => (await api2.wsToken()).token });
  const { cursor } = await hub.publish('demo', 'hello', { n: 1 });
  console.log(cursor.length, hub.cursor('demo'));
  await hub.close();

  const api = new ApiClient('http://127.0.0.1:8000', { token: 'key' });
  try {
    const task = await api.createTask({ name: 'classify' });
    const run = await api.execute(task.id, { input: { text: 'hi' }, timeout_ms: 100 });
    console.log(run.status, run.latency_ms);
  } catch (err) {
    if (err instanceof ApiError) console.log(err.status, err.code, err.traceId);
    if (err instanceof HubClosedError) console.log(err.closeCode);
  }
  // the loop
  const loopTask = await api.createTask({ name: 'tickets', generator: 'examples' });
  await api.addCases(loopTask.id, [{ input: { text: 'refund please' }, output: 'billing' }]);
  const added = await api.importCases(loopTask.id, '{"input": {"text": "crash"}, "output": "technical"}\n');
  console.log(added.added + added.total);
  const job = await api.generate(loopTask.id, { backend: 'examples', activate: 'if_validated' });
  const done = await api.waitForGeneration(job.id, { timeoutMs: 60_000 });
  const version: number | undefined = done.version;
  console.log(done.status === 'completed', version, done.error?.message);
  const jobs = await api.listGenerations(loopTask.id, { limit: 5 });
  console.log(jobs.items[0]?.activated);
  const cases = await api.listCases(loopTask.id, { limit: 10 });
  if (cases.next_cursor) await api.listCases(loopTask.id, { cursor: cases.next_cursor });
  await api.deleteCase(loopTask.id, cases.items[0].id);
  const fb = await api.feedback('exec-1', { expectedOutput: 'billing' });
  const matched: boolean | undefined = fb.validation?.match;
  console.log(fb.case.source, matched, fb.already_validated);
  await api.feedback('exec-2', { correct: true });
  const validations = await api.listValidations(loopTask.id, { version: 1, limit: 20 });
  console.log(validations.items.map((v) => v.score));
  const accuracy = await api.taskAccuracy(loopTask.id);
  for (const v of accuracy.versions) console.log(v.version, v.accuracy ?? null, v.low, v.high, v.breached);
  const loopSub = await hub.subscribe([`tasks.${loopTask.id}.generations`, `tasks.${loopTask.id}.validations`]);
  for await (const item of loopSub) {
    if (isEvent(item, 'generation.progress')) console.log(item.data.cases_passed, item.data.cases_total);
    if (isEvent(item, 'generation.completed')) console.log(item.data.version, item.data.activated);
    if (isEvent(item, 'validation.completed')) console.log(item.data.match, item.data.execution_id);
    if (isEvent(item, 'accuracy.breached')) console.log(item.data.accuracy, item.data.target);
  }
  // @ts-expect-error activate is one of never | if_validated | if_better
  await api.generate(loopTask.id, { activate: 'always' });
  // @ts-expect-error feedback takes camelCase options
  await api.feedback('exec-3', { expected_output: 'x' });
  // @ts-expect-error publish needs a string type
  await hub.publish('demo', 42);
  // @ts-expect-error unknown option
  new HubClient('ws://x', { tokenIn: 'cookie' });
}
void main;
