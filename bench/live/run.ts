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
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { markdownTable } from '../support/table.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = path.join(ROOT, 'bin/auditgraph.mjs');

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
const SAMPLE_EVERY = 20;
const QUERY = `subscription($filter: EventFilter) {
  eventLogged(filter: $filter) { cursor node { id seq eventType sessionId payload receivedAt } }
}`;

const cleanups: Array<() => Promise<void> | void> = [];
async function cleanup(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

const now = () => performance.timeOrigin + performance.now();

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function startProcess(command: string[], env: Record<string, string>, name: string): ChildProcess {
  // e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the servers.
  const nodeArgs = process.env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...command], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/tmp',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
      console.error(`${name} exited (${code ?? signal}):\n${output.slice(-4000)}`);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    // SIGTERM first: a server stops cleanly (and writes its --cpu-prof); then no mercy.
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(force);
  });
  return child;
}

async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready`);
    await sleep(200);
  }
}

/** The subscriber process, driven over IPC. */
function startClients() {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'clients.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  const waiting: Array<{ type: string; resolve: (message: Record<string, unknown>) => void }> = [];
  child.on('message', (message: Record<string, unknown>) => {
    if (message['type'] === 'error') throw new Error(`clients: ${String(message['message'])}`);
    const index = waiting.findIndex((waiter) => waiter.type === message['type']);
    if (index >= 0) waiting.splice(index, 1)[0]?.resolve(message);
  });
  const request = (command: Record<string, unknown>, answer: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      waiting.push({ type: answer, resolve });
      child.send(command);
    });
  const ready = new Promise<void>((resolve) => waiting.push({ type: 'ready', resolve: () => resolve() }));
  return { child, ready, request };
}

/** Posts `rate` events per second for `seconds`; returns each event's id and the time its 202 arrived. */
async function postAtRate(
  baseUrl: string,
  apiKey: string,
  rate: number,
  seconds: number,
  sessionOf: (index: number) => string,
): Promise<{ answeredAt: Map<string, number>; startedAt: number; refused: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL('/log', baseUrl);
  const answeredAt = new Map<string, number>();
  let refused = 0;
  const inFlight = new Set<Promise<void>>();
  const post = (index: number) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({
        session_id: sessionOf(index),
        event_type: 'review_started',
        payload: { code_language: 'typescript', file_count: index % 40 },
      });
      const request = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-api-key': apiKey,
          },
        },
        (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => {
            const at = now();
            if (response.statusCode === 202) {
              answeredAt.set((JSON.parse(text) as { event_id: string }).event_id, at);
            } else refused += 1;
            resolve();
          });
        },
      );
      request.on('error', () => {
        refused += 1;
        resolve();
      });
      request.end(body);
    });
  const startedAt = now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - startedAt) / 1000) * rate) + 1);
    while (sent < due) {
      const pending = post(sent);
      inFlight.add(pending);
      void pending.then(() => inFlight.delete(pending));
      sent += 1;
    }
    await sleep(5);
  }
  await Promise.all(inFlight);
  agent.destroy();
  return { answeredAt, startedAt, refused };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface ScenarioResult {
  target: 'auditgraph' | 'bare ws';
  scenario: string;
  subscribers: number;
  eventsPerSecond: number;
  posted: number;
  expectedMessages: number;
  deliveredMessages: number;
  deliveredPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** The server process's CPU over the posting and draining window, in % of one core. */
  serverCpuPercent: number;
  rssBeforeMiB: number;
  rssHeldMiB: number;
  rssEndMiB: number;
}

async function liveSubscriptions(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return Number(/^auditgraph_live_subscriptions (\d+)/m.exec(text)?.[1] ?? 0);
}

async function scenario(options: {
  target: 'auditgraph' | 'bare ws';
  name: string;
  baseUrl: string;
  pid: number;
  apiKey: string;
  clients: ReturnType<typeof startClients>;
  subscribers: number;
  rate: number;
  selective: boolean;
}): Promise<ScenarioResult> {
  const { clients, pid, subscribers, rate, selective } = options;
  const prefix = `bench-${randomBytes(3).toString('hex')}-`;
  const rssBeforeMiB = rssMiB(pid);
  await clients.request(
    {
      type: 'connect',
      url: `${options.baseUrl.replace('http', 'ws')}/graphql`,
      protocol: options.target === 'auditgraph' ? 'graphql-ws' : 'bare',
      apiKey: options.apiKey,
      connections: subscribers,
      sessionPrefix: selective ? prefix : undefined,
      query: QUERY,
      sampleEvery: selective ? 1 : SAMPLE_EVERY,
      client: args.client,
    },
    'connected',
  );
  if (options.target === 'auditgraph') {
    const deadline = Date.now() + 60_000;
    while ((await liveSubscriptions(`${options.baseUrl}/metrics`)) < subscribers && Date.now() < deadline) {
      await sleep(200);
    }
  } else await sleep(1000);
  await sleep(1000);
  const rssHeldMiB = rssMiB(pid);
  await clients.request({ type: 'reset' }, 'reset');

  const cpuBefore = cpuSeconds(pid);
  const posting = await postAtRate(options.baseUrl, options.apiKey, rate, durationS, (index) =>
    selective ? `${prefix}${index % subscribers}` : 'broadcast',
  );
  const posted = posting.answeredAt.size;
  const expectedMessages = selective ? posted : posted * subscribers;
  let report: Record<string, unknown> = {};
  const drainDeadline = Date.now() + 15_000;
  for (;;) {
    report = await clients.request({ type: 'report' }, 'report');
    if ((report['messages'] as number) >= expectedMessages || Date.now() > drainDeadline) break;
    await sleep(250);
  }
  const rssEndMiB = rssMiB(pid);
  const serverCpuPercent = Math.round(
    (100 * (cpuSeconds(pid) - cpuBefore)) / ((now() - posting.startedAt) / 1000),
  );
  const latencies: number[] = [];
  for (const [id, times] of report['receipts'] as Array<[string, number[]]>) {
    const answered = posting.answeredAt.get(id);
    if (answered === undefined) continue;
    for (const at of times) latencies.push(Math.max(0, at - answered));
  }
  latencies.sort((a, b) => a - b);
  const delivered = report['messages'] as number;
  const windowS = ((report['lastAt'] as number) - posting.startedAt) / 1000;
  await clients.request({ type: 'close' }, 'closed');
  await sleep(1500);
  return {
    target: options.target,
    scenario: options.name,
    subscribers,
    eventsPerSecond: rate,
    posted,
    expectedMessages,
    deliveredMessages: delivered,
    deliveredPerSecond: Math.round(delivered / Math.max(windowS, durationS)),
    latencyP50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    latencyP99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    serverCpuPercent,
    rssBeforeMiB: Math.round(rssBeforeMiB),
    rssHeldMiB: Math.round(rssHeldMiB),
    rssEndMiB: Math.round(rssEndMiB),
  };
}

async function main(): Promise<void> {
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const dbName = `ag_bench_live_${runId}`;
  const admin = new pg.Client({ connectionString: args['pg-url'] });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: args['pg-url'] });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await client.end();
  });
  await admin.end();
  const dbUrl = new URL(args['pg-url'] as string);
  dbUrl.pathname = `/${dbName}`;
  const stream = `ag-bench-live:${runId}`;
  cleanups.push(async () => {
    const redis = new Redis(args['redis-url'] as string);
    await redis.del(stream, `${stream}:dead`);
    redis.disconnect();
  });

  const apiKey = `bench_${randomBytes(16).toString('hex')}`;
  const port = await freePort();
  const env = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: args['redis-url'] as string,
    QUEUE_STREAM: stream,
    ADMIN_API_KEY: apiKey,
    PRODUCER_PORT: String(port),
    QUERY_SERVICE_PORT: String(port),
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '10000000',
    LIVE_MAX_SUBSCRIPTIONS_PER_KEY: '100000',
    NODE_ENV: 'production',
  };
  const api = startProcess([...NODE_FLAGS, BIN, 'serve'], env, 'auditgraph serve');
  await waitForHttp(`http://127.0.0.1:${port}/health/ready`);
  startProcess([...NODE_FLAGS, BIN, 'worker'], env, 'auditgraph worker');

  const barePort = await freePort();
  const bare = startProcess(
    ['--import', 'tsx', path.join(HERE, 'bare-server.ts'), String(barePort)],
    {},
    'bare ws',
  );
  await new Promise<void>((resolve) =>
    bare.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('listening') && resolve()),
  );

  const clients = startClients();
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
      results.push(await scenario({ ...target, ...plan, apiKey, clients }));
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
    `\nbench/live on ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')}, ${durationS} s per scenario`,
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
  writeFileSync(
    args.out as string,
    `${JSON.stringify({ at: new Date().toISOString(), cores: os.cpus().length, durationS, results }, null, 2)}\n`,
  );
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
