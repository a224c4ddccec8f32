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
    const run = await api.execute(task.task_id, { input: { text: 'hi' }, timeout_ms: 100 });
    console.log(run.status, run.latency_ms);
  } catch (err) {
    if (err instanceof ApiError) console.log(err.status, err.code, err.traceId);
    if (err instanceof HubClosedError) console.log(err.closeCode);
  }
  // @ts-expect-error publish needs a string type
  await hub.publish('demo', 42);
  // @ts-expect-error unknown option
  new HubClient('ws://x', { tokenIn: 'cookie' });
}
void main;
