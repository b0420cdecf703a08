/**
 * Live-feed benchmark: `eventLogged` over graphql-ws on one auditgraph API
 * process (PostgreSQL + Redis, one worker), beside a bare `ws` server that
 * sends frames of the same shape to the same clients, in the same run.
 *
 *   broadcast: N unfiltered subscribers (1,000), events posted at 50 and 100/s;
 *   selective: M subscribers (10,000), each filtered to its own session, events
 *              posted at 1,000/s spread over those sessions.
 *
 * Each prints delivered messages/s, end-to-end latency p50/p99 (from the
 * `POST /log` answer to the client's receipt, over a sample of subscribers) and
 * the server process's memory (RSS) before the subscribers, while held, and at
 * the end.
 *
 * Run: `npx tsx bench/live/run.ts [--quick] [--duration S] [--only broadcast|selective] [--client raw|ws]`.
 * The subscribers use a minimal WebSocket client (raw-client.ts) unless `--client ws`. Writes
 * bench/live/results.json. Removes its database, stream and processes at the end.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { parseArgs } from 'node:util';
import { freshServerSetup } from '../support/backends.js';
import { loadAverage } from '../support/machine.js';
import { freePort } from '../support/ports.js';
import { BIN, createCleanups, startProcess, waitForHttp } from '../support/processes.js';
import { writeResults } from '../support/results.js';
import { markdownTable } from '../support/table.js';
import { startClients } from './clients-process.js';
import { scenario, type ScenarioResult } from './scenario.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    'broadcast-subscribers': { type: 'string' },
    'selective-subscribers': { type: 'string' },
    'pg-url': { type: 'string', default: 'postgresql://postgres@127.0.0.1:5432/postgres' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    out: { type: 'string', default: path.join(HERE, 'results.json') },
    only: { type: 'string' },
    client: { type: 'string', default: 'raw' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
if (args.client !== 'raw' && args.client !== 'ws') throw new Error('--client is raw or ws');
const durationS = Number(args.duration ?? (args.quick ? 5 : 15));
const broadcastSubscribers = Number(args['broadcast-subscribers'] ?? (args.quick ? 200 : 1000));
const selectiveSubscribers = Number(args['selective-subscribers'] ?? (args.quick ? 1000 : 10_000));
const SELECTIVE_RATE = 1000;
const BROADCAST_RATES = [50, 100];

const cleanups = createCleanups();

async function main(): Promise<void> {
  const setup = await freshServerSetup(cleanups, {
    pgUrl: args['pg-url'] as string,
    redisUrl: args['redis-url'] as string,
    label: 'live',
  });
  const { port, adminKey: apiKey } = setup;
  const env = {
    ...setup.env,
    LIVE_MAX_SUBSCRIPTIONS_PER_KEY: '100000',
  };
  const api = startProcess(cleanups, [...NODE_FLAGS, BIN, 'serve'], env, 'auditgraph serve');
  await waitForHttp(`http://127.0.0.1:${port}/health/ready`, { intervalMs: 200 });
  startProcess(cleanups, [...NODE_FLAGS, BIN, 'worker'], env, 'auditgraph worker');

  const barePort = await freePort();
  const bare = startProcess(
    cleanups,
    ['--import', 'tsx', path.join(HERE, 'bare-server.ts'), String(barePort)],
    {},
    'bare ws',
  );
  await new Promise<void>((resolve) =>
    bare.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('listening') && resolve()),
  );

  const clients = startClients(cleanups);
  await clients.ready;

  const targets = [
    { target: 'bare ws' as const, baseUrl: `http://127.0.0.1:${barePort}`, pid: bare.pid as number },
    { target: 'auditgraph' as const, baseUrl: `http://127.0.0.1:${port}`, pid: api.pid as number },
  ];
  const results: ScenarioResult[] = [];
  const plans = [
    ...BROADCAST_RATES.map((rate) => ({
      name: `broadcast ${rate}/s`,
      subscribers: broadcastSubscribers,
      rate,
      selective: false,
    })),
    {
      name: `selective ${SELECTIVE_RATE}/s`,
      subscribers: selectiveSubscribers,
      rate: SELECTIVE_RATE,
      selective: true,
    },
  ];
  const chosen = plans.filter((plan) => args.only === undefined || plan.name.startsWith(args.only));
  for (const plan of chosen) {
    for (const target of targets) {
      console.error(`… ${plan.name} on ${target.target} (${plan.subscribers} subscribers, ${durationS} s)`);
      results.push(await scenario({ ...target, ...plan, apiKey, clients, durationS, client: args.client }));
    }
  }

  const header = [
    'scenario',
    'target',
    'subscribers',
    'posted',
    'delivered/s',
    'of expected',
    'p50 ms',
    'p99 ms',
    'server CPU',
    'RSS before',
    'RSS held',
    'RSS end',
  ];
  const rows = results.map((result) => [
    result.scenario,
    result.target,
    String(result.subscribers),
    String(result.posted),
    String(result.deliveredPerSecond),
    `${((100 * result.deliveredMessages) / Math.max(1, result.expectedMessages)).toFixed(1)}%`,
    String(result.latencyP50Ms),
    String(result.latencyP99Ms),
    `${result.serverCpuPercent}%`,
    `${result.rssBeforeMiB} MiB`,
    `${result.rssHeldMiB} MiB`,
    `${result.rssEndMiB} MiB`,
  ]);
  console.log(
    `\nbench/live on ${os.cpus().length} cores, load ${loadAverage()}, ${durationS} s per scenario`,
  );
  console.log(markdownTable(header, rows, 2));
  console.log('\nauditgraph against the bare ws server (delivered messages/s):');
  for (const plan of plans) {
    const ours = results.find((result) => result.scenario === plan.name && result.target === 'auditgraph');
    const ceiling = results.find((result) => result.scenario === plan.name && result.target === 'bare ws');
    if (ours && ceiling) {
      console.log(
        `  ${plan.name.padEnd(18)} ${ours.deliveredPerSecond} / ${ceiling.deliveredPerSecond} = ${((100 * ours.deliveredPerSecond) / Math.max(1, ceiling.deliveredPerSecond)).toFixed(0)}%`,
      );
    }
  }
  writeResults(args.out as string, {
    at: new Date().toISOString(),
    cores: os.cpus().length,
    durationS,
    results,
  });
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanups.run());
