/**
 * GraphQL flood benchmark: does one key flooding expensive GraphQL documents
 * slow everyone else down? One `auditgraph serve` and one worker on PostgreSQL
 * and Redis (a fresh database and stream), in one run:
 *
 *   no flood   `GET /health` and `POST /log` (another key) probed at a fixed
 *              rate each, their latency p50/p99/max recorded;
 *   flood …    right after, the same probes while one key posts a document to
 *              /graphql from several keep-alive connections, each again as
 *              soon as answered (bench/flood/flooder.ts, its own process).
 *
 * Flood documents (FLOODS below): the issue's 450 repeated `events` fields
 * (19 KB), the most tokens that fit (names, 20 KB), 990 distinct unknown fields
 * (within every shape limit, so graphql's own rules run and refuse it), the
 * cheapest valid document (`{ __typename }`, the HTTP path's own cost), and the
 * 450 repeated fields once more from a key at the default limit (1,000/min;
 * the rest are 429), and from that key sending at its limit only (17/s on a
 * timer). The other floods' key is allowed 10,000,000/min, so every document
 * is parsed and refused: the worst case for the refusal itself.
 *
 * Prints a table with each probe's p99 under a flood against the phase without
 * one just before (target: < 2×) and writes bench/flood/results.json.
 *
 * Run: `npx tsx bench/flood/run.ts [--quick] [--duration S] [--connections N] [--rate R] [--root DIR]
 * [--only TEXT]` (only the floods whose name contains TEXT).
 * `--root` starts auditgraph from another copy of the repository (e.g. `git archive` of an
 * older commit, with this one's node_modules linked), to compare before and after.
 */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { freshServerSetup } from '../support/backends.js';
import { cpuSecondsOf } from '../support/cpu.js';
import { loadAverage } from '../support/machine.js';
import { BIN, createCleanups, startProcess, waitForHttp } from '../support/processes.js';
import { writeResults } from '../support/results.js';
import { percentile } from '../support/stats.js';
import { markdownTable } from '../support/table.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    connections: { type: 'string', default: '8' },
    rate: { type: 'string', default: '50' },
    'pg-url': { type: 'string', default: 'postgresql://postgres@127.0.0.1:5432/postgres' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    out: { type: 'string', default: path.join(HERE, 'results.json') },
    only: { type: 'string' },
    root: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'Usage: npx tsx bench/flood/run.ts [--quick] [--duration S] [--connections N] [--rate R] [--root DIR] [--only TEXT]',
  );
  process.exit(0);
}
const durationS = Number(args.duration ?? (args.quick ? 6 : 20));
const connections = Number(args.connections);
const probeRate = Number(args.rate);

const repeated = `{ ${Array.from({ length: 450 }, () => 'events { nodes { id payload eventType } }').join('\n')} }`;
const FLOODS = [
  { name: '450 repeated fields', query: repeated, limited: false },
  { name: '9,950 field names', query: `{ ${'a '.repeat(9950)}}`, limited: false },
  {
    name: '990 unknown fields',
    query: `{ ${Array.from({ length: 990 }, (_, index) => `f${index}`).join(' ')} }`,
    limited: false,
  },
  { name: '{ __typename }', query: '{ __typename }', limited: false },
  { name: '450 repeated, key at 1,000/min', query: repeated, limited: true },
  { name: '450 repeated at 1,000/min offered', query: repeated, limited: true, fresh: true, rate: 1000 / 60 },
];

const cleanups = createCleanups();
const now = () => performance.now();

/** Sends `rate` requests per second for `seconds` (open loop: on a timer, whatever the answers) and times each. */
async function probe(
  rate: number,
  seconds: number,
  send: (agent: http.Agent, done: (ok: boolean) => void) => void,
): Promise<{ latencies: number[]; failed: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  let failed = 0;
  const pending: Array<Promise<void>> = [];
  const startedAt = now();
  const total = Math.round(rate * seconds);
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor(((now() - startedAt) / 1000) * rate) + 1);
    for (; sent < due; sent += 1) {
      const at = now();
      pending.push(
        new Promise<void>((resolve) =>
          send(agent, (ok) => {
            if (ok) latencies.push(now() - at);
            else failed += 1;
            resolve();
          }),
        ),
      );
    }
    await sleep(2);
  }
  await Promise.all(pending);
  agent.destroy();
  return { latencies: latencies.sort((a, b) => a - b), failed };
}

function request(
  agent: http.Agent,
  url: URL,
  options: { method: string; headers?: http.OutgoingHttpHeaders; body?: string; expect: number },
  done: (ok: boolean) => void,
): void {
  const outgoing = http.request(
    url,
    { method: options.method, agent, headers: options.headers },
    (response) => {
      response.on('data', () => undefined);
      response.on('end', () => done(response.statusCode === options.expect));
    },
  );
  outgoing.on('error', () => done(false));
  outgoing.end(options.body);
}

function startFlooder() {
  const child: ChildProcess = startProcess(
    cleanups,
    ['--import', 'tsx', path.join(HERE, 'flooder.ts')],
    {},
    'flooder',
    { ipc: true },
  );
  const waiting = new Map<string, (message: Record<string, unknown>) => void>();
  child.on('message', (message: Record<string, unknown>) => {
    waiting.get(String(message['type']))?.(message);
    waiting.delete(String(message['type']));
  });
  const answer = (type: string) =>
    new Promise<Record<string, unknown>>((resolve) => waiting.set(type, resolve));
  const ready = answer('ready');
  return {
    ready,
    async start(command: {
      url: string;
      apiKey: string;
      query: string;
      connections: number;
      rate?: number | undefined;
    }) {
      const started = answer('started');
      child.send({ type: 'start', ...command });
      await started;
    },
    async stop(): Promise<{ seconds: number; statuses: Record<string, number> }> {
      const report = answer('report');
      child.send({ type: 'stop' });
      return (await report) as unknown as { seconds: number; statuses: Record<string, number> };
    },
  };
}

interface PhaseResult {
  phase: string;
  documentBytes: number;
  floodPerSecond: number;
  floodStatuses: Record<string, number>;
  serveCpuPercent: number;
  /** serve's CPU per flood request, in ms (its CPU during the phase, less the baseline's, per request). */
  serveCpuMsPerFlood: number;
  health: { p50: number; p99: number; max: number; failed: number };
  log: { p50: number; p99: number; max: number; failed: number };
  /** The phase without a flood just before this one. */
  baseline: PhaseResult | undefined;
}

async function main(): Promise<void> {
  // The probing key's limit must not refuse its probes; the flood keys get their own below.
  const { adminKey, port, env } = await freshServerSetup(cleanups, {
    pgUrl: args['pg-url'] as string,
    redisUrl: args['redis-url'] as string,
    label: 'flood',
  });
  const root = args.root ? path.resolve(args.root) : undefined;
  const bin = root ? path.join(root, 'bin/auditgraph.mjs') : BIN;
  const serve = startProcess(cleanups, [...NODE_FLAGS, bin, 'serve'], env, 'auditgraph serve', { cwd: root });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${baseUrl}/health/ready`);
  startProcess(cleanups, [...NODE_FLAGS, bin, 'worker'], env, 'auditgraph worker', { cwd: root });

  const createKey = async (rateLimitPerMinute: number): Promise<string> => {
    const response = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
      body: JSON.stringify({
        query: `mutation { createApiKey(input: { name: "flood", scopes: [read], rateLimitPerMinute: ${rateLimitPerMinute} }) { secret } }`,
      }),
    });
    return ((await response.json()) as { data: { createApiKey: { secret: string } } }).data.createApiKey
      .secret;
  };
  const unlimitedKey = await createKey(10_000_000);
  const limitedKey = await createKey(1000);
  // Its own key: the closed-loop flood at 1,000/min used up the other one's minute.
  const offeringKey = await createKey(1000);

  const flooder = startFlooder();
  await flooder.ready;
  const healthUrl = new URL('/health', baseUrl);
  const logUrl = new URL('/log', baseUrl);
  const logBody = JSON.stringify({ session_id: 'flood-probe', event_type: 'review_started' });
  const probes = () =>
    Promise.all([
      probe(probeRate, durationS, (agent, done) =>
        request(agent, healthUrl, { method: 'GET', expect: 200 }, done),
      ),
      probe(probeRate, durationS, (agent, done) =>
        request(
          agent,
          logUrl,
          {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(logBody),
              'x-api-key': adminKey,
            },
            body: logBody,
            expect: 202,
          },
          done,
        ),
      ),
    ]);
  const summary = (result: { latencies: number[]; failed: number }) => ({
    p50: Math.round(percentile(result.latencies, 50) * 100) / 100,
    p99: Math.round(percentile(result.latencies, 99) * 100) / 100,
    max: Math.round((result.latencies.at(-1) ?? Number.NaN) * 100) / 100,
    failed: result.failed,
  });

  console.error(`… warm-up (${Math.min(durationS, 5)} s)`);
  await Promise.all([
    probe(probeRate, Math.min(durationS, 5), (agent, done) =>
      request(agent, healthUrl, { method: 'GET', expect: 200 }, done),
    ),
    flooder.start({ url: baseUrl, apiKey: unlimitedKey, query: repeated, connections }),
  ]);
  await flooder.stop();
  await sleep(2000);

  // Each flood right after a phase without one, compared with it: the machine's other load drifts.
  const results: PhaseResult[] = [];
  let baselineCpuPerSecond = 0;
  const chosen = FLOODS.filter((flood) => args.only === undefined || flood.name.includes(args.only));
  for (const flood of chosen.flatMap((each) => [undefined, each])) {
    const phase = flood?.name ?? 'no flood';
    console.error(`… ${phase} (${durationS} s)`);
    const serveCpuBefore = cpuSecondsOf(serve.pid!) ?? Number.NaN;
    const startedAt = now();
    if (flood) {
      await flooder.start({
        url: baseUrl,
        apiKey: 'fresh' in flood ? offeringKey : flood.limited ? limitedKey : unlimitedKey,
        query: flood.query,
        connections,
        rate: 'rate' in flood ? flood.rate : undefined,
      });
      await sleep(1000);
    }
    const [health, log] = await probes();
    const report = flood ? await flooder.stop() : { seconds: 1, statuses: {} };
    const seconds = (now() - startedAt) / 1000;
    const cpuPerSecond = ((cpuSecondsOf(serve.pid!) ?? Number.NaN) - serveCpuBefore) / seconds;
    if (!flood) baselineCpuPerSecond = cpuPerSecond;
    const floodRequests = Object.values(report.statuses).reduce((sum, count) => sum + count, 0);
    results.push({
      phase,
      documentBytes: flood ? Buffer.byteLength(JSON.stringify({ query: flood.query })) : 0,
      floodPerSecond: Math.round(floodRequests / report.seconds),
      floodStatuses: report.statuses,
      serveCpuPercent: Math.round(cpuPerSecond * 100),
      serveCpuMsPerFlood:
        floodRequests > 0
          ? Math.round((((cpuPerSecond - baselineCpuPerSecond) * seconds) / floodRequests) * 1e5) / 100
          : 0,
      health: summary(health),
      log: summary(log),
      baseline: flood ? results.at(-1) : undefined,
    });
    await sleep(2000);
  }

  const ratio = (value: number, base: number | undefined) =>
    base === undefined ? '' : `${(value / base).toFixed(2)}×`;
  const rows = results.map((result) => [
    result.phase,
    result.documentBytes ? `${(result.documentBytes / 1024).toFixed(1)} KiB` : '',
    result.floodPerSecond ? String(result.floodPerSecond) : '',
    Object.entries(result.floodStatuses)
      .map(([status, count]) => `${status}: ${count}`)
      .join(', '),
    result.floodPerSecond ? String(result.serveCpuMsPerFlood) : '',
    `${result.serveCpuPercent}%`,
    `${result.health.p50} / ${result.health.p99} / ${result.health.max}`,
    ratio(result.health.p99, result.baseline?.health.p99),
    `${result.log.p50} / ${result.log.p99} / ${result.log.max}`,
    ratio(result.log.p99, result.baseline?.log.p99),
    String(result.health.failed + result.log.failed),
  ]);
  console.log(
    `\nbench/flood on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${loadAverage()}; ${durationS} s per phase, ${connections} flooding connections, probes ${probeRate}/s each` +
      (root ? `; auditgraph from ${root}` : ''),
  );
  console.log(
    markdownTable(
      [
        'phase',
        'document',
        'flood req/s',
        'flood answers',
        'serve CPU ms/req',
        'serve CPU',
        '/health p50 / p99 / max ms',
        'p99 vs no flood',
        'POST /log p50 / p99 / max ms',
        'p99 vs no flood',
        'probe failures',
      ],
      rows,
    ),
  );
  writeResults(args.out as string, {
    at: new Date().toISOString(),
    cores: os.cpus().length,
    root: root ?? null,
    durationS,
    connections,
    probeRate,
    results: results.map(({ baseline: _baseline, ...result }) => result),
  });
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanups.run());
