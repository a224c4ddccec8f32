// Follow topics from a terminal, one JSON line per event; connection changes go to stderr.
//   node examples/tail.js http://127.0.0.1:8000 tasks executions
// The token, if the hub wants one, comes from $LOOPAI_TOKEN.
import { HubClient } from '@loopai/client';

const [url, ...topics] = process.argv.slice(2);
if (!url || topics.length === 0) {
  console.error('usage: node examples/tail.js <hub url> <topic> [topic …]');
  process.exit(2);
}
const hub = new HubClient(url, { token: process.env.LOOPAI_TOKEN });
hub.on('state', ({ state, reason, delayMs }) => {
  const retry = delayMs === undefined ? '' : `, retrying in ${delayMs} ms`;
  console.error(`# ${state}${reason ? ` (${reason})` : ''}${retry}`);
});
hub.on('error', (err) => console.error(`# ${err.name}: ${err.message}`));
process.once('SIGINT', () => hub.close());
process.once('SIGTERM', () => hub.close());

try {
  for await (const item of await hub.subscribe(topics)) console.log(JSON.stringify(item));
} catch (err) {
  console.error(`# stopped: ${err.message}`);
  process.exitCode = 1;
}
