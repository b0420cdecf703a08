/**
 * Ingest benchmark: how close does auditgraph come to what this machine can do?
 *
 *   1. HTTP path: `POST /log` on `auditgraph serve` (auth, validation, enqueue
 *      into Redis; no worker running) beside a bare `node:http` server that
 *      answers 202 to the same POST, with the same load tool and connections.
 *   2. Persistence: `auditgraph worker` draining a pre-filled stream into an
 *      empty `audit_events`, beside a raw `INSERT ... SELECT unnest(...)` of the
 *      same rows into a copy of the table (`LIKE audit_events INCLUDING ALL`)
 *      from one Node process on one connection.
 *   3. The same with both tables already holding `--preload` rows (5,000,000).
 *   With `--only ...,instructions`: the user-space instructions each HTTP target
 *   spends on a request, counted by valgrind (callgrind), which no other load on
 *   the machine moves.
 *
 * Run: `npx tsx bench/ingest/run.ts [--quick] [--help]`. Prints a table and
 * writes bench/ingest/results.json. Every database, stream and process it makes
 * is removed at the end, also on failure or Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { environmentSchema } from '../../src/config/index.js';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import { requestMessageText, type QueuedEvent } from '../../src/events/queue-message.js';
import { markdownTable } from '../support/table.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = path.join(ROOT, 'bin/auditgraph.mjs');
const rel = (file: string) => path.relative(ROOT, file) || '.';

// ---------------------------------------------------------------------------
// Options

type Phase = 'http' | 'empty' | 'preloaded' | 'instructions';

interface Options {
  quick: boolean;
  phases: Phase[];
  warmupS: number;
  durationS: number;
  connections: number;
  threads: number;
  rounds: number;
  persistRounds: number;
  loadTool: 'wrk' | 'node';
  events: number;
  preload: number;
  batchSize: number;
  rawBatch: number;
  profile: boolean;
  breakdown: boolean;
  out: string;
  quietTimeoutS: number;
  retries: number;
  pgUrl: string;
  redisUrl: string;
}

const HELP = `Usage: npx tsx bench/ingest/run.ts [options]

  --quick               short run (~1-2 min): 2 s warm-up, 8 s per HTTP target,
                        100k events, 500k preloaded rows
  --only LIST           phases to run, comma-separated: http,empty,preloaded (default) and
                        instructions (user-space instructions per request under valgrind's
                        callgrind, bare and serve; ~3 min; apt-get install -y valgrind)
  --warmup S            HTTP warm-up seconds per target (default 5; quick 2)      env BENCH_WARMUP
  --duration S          HTTP measured seconds per target (default 15; quick 8)    env BENCH_DURATION
  --connections N       HTTP connections (default 64)                             env BENCH_CONNECTIONS
  --threads N           wrk threads (default 1)                                   env BENCH_THREADS
  --rounds N            HTTP rounds, bare then serve each round; medians reported
                        (default 3; quick 1)                                      env BENCH_ROUNDS
  --persist-rounds N    persistence rounds per scenario, raw then worker each on fresh rows; the
                        round with the median ratio is reported (default 3; quick 1)
                                                                                  env BENCH_PERSIST_ROUNDS
  --load-tool wrk|node  load generator (default wrk when installed, else node)    env BENCH_LOAD_TOOL
  --events N            events drained by the worker per scenario (default 300000; quick 100000)
                                                                                  env BENCH_EVENTS
  --preload N           rows already in the table for scenario 3 (default 5000000; quick 500000)
                                                                                  env BENCH_PRELOAD
  --batch-size N        WORKER_BATCH_SIZE for the worker (default 1000, the service default)
  --raw-batch N         rows per raw INSERT (default: same as --batch-size)
  --profile             run serve and worker under node --cpu-prof and print where their CPU
                        time goes (profiles kept in bench/ingest/profiles/; figures are slower)
  --breakdown           also drain a second stream with the worker code run in this process,
                        instrumented, to split a batch's time into read/validate/insert/ack
  --out FILE            results file (default bench/ingest/results.json)
  --quiet-timeout S     before each measurement, wait up to S seconds for other processes on the
                        machine to go idle (default 120; quick 20; 0: do not wait) env BENCH_QUIET_TIMEOUT
  --retries N           measure again, at most N times, when other processes took over a quarter of
                        a core during a measurement (default 2; quick 0)         env BENCH_RETRIES
  --pg URL              PostgreSQL server, no database (default postgresql://postgres@127.0.0.1:5432)
  --redis URL           Redis (default redis://127.0.0.1:6379)
`;

function parseOptions(argv: readonly string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`Unexpected argument '${arg}'.\n\n${HELP}`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
      continue;
    }
    const name = arg.slice(2);
    const next = argv[i + 1];
    if (
      ['quick', 'profile', 'breakdown', 'help'].includes(name) ||
      next === undefined ||
      next.startsWith('--')
    ) {
      flags.set(name, true);
    } else {
      flags.set(name, next);
      i += 1;
    }
  }
  if (flags.has('help')) {
    console.log(HELP);
    process.exit(0);
  }
  const known = [
    'quick',
    'only',
    'warmup',
    'duration',
    'connections',
    'threads',
    'rounds',
    'persist-rounds',
    'load-tool',
    'events',
    'preload',
    'batch-size',
    'raw-batch',
    'profile',
    'breakdown',
    'out',
    'quiet-timeout',
    'retries',
    'pg',
    'redis',
  ];
  for (const name of flags.keys())
    if (!known.includes(name)) throw new Error(`Unknown option --${name}.\n\n${HELP}`);

  const quick = flags.has('quick') || process.env.BENCH_QUICK === '1';
  const str = (name: string, envName: string | undefined, fallback: string): string => {
    const flag = flags.get(name);
    if (typeof flag === 'string') return flag;
    const fromEnv = envName ? process.env[envName] : undefined;
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : fallback;
  };
  const num = (name: string, envName: string | undefined, fallback: number, min = 0): number => {
    const value = Number(str(name, envName, String(fallback)).replaceAll('_', ''));
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min}`);
    return value;
  };
  const phases = str('only', 'BENCH_ONLY', 'http,empty,preloaded')
    .split(',')
    .map((phase) => phase.trim())
    .filter(Boolean);
  for (const phase of phases) {
    if (!['http', 'empty', 'preloaded', 'instructions'].includes(phase))
      throw new Error(`--only: unknown phase '${phase}'`);
  }
  const wrkInstalled = spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined;
  const loadTool = str('load-tool', 'BENCH_LOAD_TOOL', wrkInstalled ? 'wrk' : 'node');
  if (loadTool !== 'wrk' && loadTool !== 'node') throw new Error('--load-tool must be wrk or node');
  if (loadTool === 'wrk' && !wrkInstalled) throw new Error('wrk is not installed (apt-get install -y wrk)');
  const batchSize = Math.round(num('batch-size', 'WORKER_BATCH_SIZE', 1000, 1));
  return {
    quick,
    phases: phases as Phase[],
    warmupS: num('warmup', 'BENCH_WARMUP', quick ? 2 : 5),
    durationS: num('duration', 'BENCH_DURATION', quick ? 8 : 15, 1),
    connections: Math.round(num('connections', 'BENCH_CONNECTIONS', 64, 1)),
    threads: Math.round(num('threads', 'BENCH_THREADS', 1, 1)),
    // Three: the median of two rounds is their mean, and one disturbed round moves it by a quarter.
    rounds: Math.round(num('rounds', 'BENCH_ROUNDS', quick ? 1 : 3, 1)),
    persistRounds: Math.round(num('persist-rounds', 'BENCH_PERSIST_ROUNDS', quick ? 1 : 3, 1)),
    loadTool,
    events: Math.round(num('events', 'BENCH_EVENTS', quick ? 100_000 : 300_000, 1)),
    preload: Math.round(num('preload', 'BENCH_PRELOAD', quick ? 500_000 : 5_000_000, 0)),
    batchSize,
    rawBatch: Math.round(num('raw-batch', 'BENCH_RAW_BATCH', batchSize, 1)),
    profile: flags.has('profile'),
    breakdown: flags.has('breakdown'),
    out: path.resolve(str('out', 'BENCH_OUT', path.join(HERE, 'results.json'))),
    quietTimeoutS: num('quiet-timeout', 'BENCH_QUIET_TIMEOUT', quick ? 20 : 120),
    retries: Math.round(num('retries', 'BENCH_RETRIES', quick ? 0 : 2)),
    pgUrl: str('pg', 'BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432').replace(/\/+$/, ''),
    redisUrl: str('redis', 'BENCH_REDIS_URL', 'redis://127.0.0.1:6379'),
  };
}

// ---------------------------------------------------------------------------
// Small helpers

const log = (message: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
const fmtInt = (value: number) => Math.round(value).toLocaleString('en-US');
const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const seconds = (fromMs: number, toMs = performance.now()) => (toMs - fromMs) / 1000;

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]*$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// CPU time of processes, from /proc, to tell who was busy during a measurement.
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] and [12] are utime and stime (fields 14 and 15 of the full line).
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/**
 * The PostgreSQL processes working for one database (its backends, parallel
 * workers) and for everyone (checkpointer, background writer, WAL writer),
 * refreshed every 250 ms, so another database's load counts as "other".
 */
async function postgresPidsOf(database: string) {
  let pids: number[] = [];
  const refresh = async () => {
    const result = await adminPool!.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = $1 OR backend_type IN ('checkpointer', 'background writer', 'walwriter')`,
      [database],
    );
    pids = result.rows.map((row) => row.pid);
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => undefined), 250);
  return { pids: () => pids, stop: () => clearInterval(timer) };
}

type CpuTarget = { label: string; pids: () => number[] };

/**
 * Starts a CPU-time meter over some processes; `stop()` returns each one's
 * share of one core. Sampled every 100 ms, so a process that ends before
 * `stop()` (the load generator) still counts up to its last sample.
 */
function cpuMeter(targets: CpuTarget[]) {
  const startedAt = performance.now();
  const first = new Map<string, Map<number, number>>();
  const last = new Map<string, Map<number, number>>();
  const sample = (into: Map<string, Map<number, number>>, keepOld: boolean) => {
    for (const target of targets) {
      const byPid = into.get(target.label) ?? new Map<number, number>();
      for (const pid of target.pids()) {
        const used = cpuSecondsOf(pid);
        if (used !== undefined) byPid.set(pid, used);
        else if (!keepOld) byPid.delete(pid);
      }
      into.set(target.label, byPid);
    }
  };
  sample(first, false);
  sample(last, true);
  const machineBefore = machineCpuSeconds();
  const timer = setInterval(() => sample(last, true), 100);
  return {
    stop(): Record<string, number> {
      clearInterval(timer);
      sample(last, true);
      const wall = seconds(startedAt);
      const result: Record<string, number> = {};
      let tracked = 0;
      for (const target of targets) {
        const start = first.get(target.label)!;
        let used = 0;
        for (const [pid, now] of last.get(target.label)!) used += now - (start.get(pid) ?? 0);
        result[target.label] = wall > 0 ? used / wall : 0;
        tracked += result[target.label]!;
      }
      // Whatever else ran on the machine meanwhile (another test suite, say) skews the figures.
      const machine = wall > 0 ? (machineCpuSeconds() - machineBefore) / wall : 0;
      result.other = Math.max(0, machine - tracked);
      return result;
    },
  };
}

/** Busy CPU seconds of the whole machine, all cores, since boot. */
function machineCpuSeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: everything but idle and iowait.
  const busy = fields
    .slice(0, 8)
    .reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
  return busy / CLK_TCK;
}

/**
 * Waits until the machine is quiet (other processes using under `threshold` of
 * one core over a second) so a measurement does not share the two cores with,
 * say, a test suite. Gives up after `timeoutS` and says so.
 */
async function waitForQuiet(timeoutS: number, threshold = 0.15): Promise<void> {
  if (timeoutS <= 0) return;
  const deadline = Date.now() + timeoutS * 1000;
  let warned = false;
  let quietFor = 0;
  for (;;) {
    const before = machineCpuSeconds();
    await sleep(1000);
    const busy = machineCpuSeconds() - before;
    quietFor = busy < threshold ? quietFor + 1 : 0;
    if (quietFor >= 2) return;
    if (Date.now() > deadline) {
      log(`  the machine is still busy (${(busy * 100).toFixed(0)}% of a core); measuring anyway`);
      return;
    }
    if (!warned) {
      log(`  waiting for the machine to be quiet: other processes use ${(busy * 100).toFixed(0)}% of a core`);
      warned = true;
    }
  }
}

const fmtCpu = (cpu: Record<string, number>) =>
  Object.entries(cpu)
    .map(([label, share]) => `${label} ${(share * 100).toFixed(0)}%`)
    .join(', ');

// ---------------------------------------------------------------------------
// Resources: everything made here is registered, and removed in cleanup().

interface Child {
  name: string;
  proc: ChildProcess;
  output: string;
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
}

const commands: string[] = [];
const children = new Set<Child>();
const databases = new Set<string>();
const streams = new Set<string>();
let adminPool: pg.Pool | undefined;
let redis: Redis | undefined;

/** The service's own configuration variables are cleared, so nothing leaks in from the caller's shell. */
function serviceEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(environmentSchema.shape)) delete env[key];
  return { ...env, ...vars };
}

function recordCommand(vars: Record<string, string>, argv: readonly string[]) {
  const prefix = Object.entries(vars).map(([key, value]) => `${key}=${shellQuote(value)}`);
  commands.push(
    [...prefix, ...argv.map((arg) => shellQuote(arg.startsWith(ROOT) ? rel(arg) : arg))].join(' '),
  );
}

function startChild(
  name: string,
  file: string,
  args: readonly string[],
  vars: Record<string, string>,
): Child {
  recordCommand(vars, [file === process.execPath ? 'node' : file, ...args]);
  const proc = spawn(file, args, { cwd: ROOT, env: serviceEnv(vars), stdio: ['ignore', 'pipe', 'pipe'] });
  const child: Child = { name, proc, output: '', exited: Promise.resolve(null), exitCode: undefined };
  const keep = (chunk: Buffer) => {
    child.output = (child.output + chunk.toString('utf8')).slice(-200_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  child.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      child.exitCode = code ?? (signal ? -1 : null);
      resolve(code);
    });
    proc.once('error', (error) => {
      child.output += `\n${error.message}`;
      child.exitCode = -1;
      resolve(-1);
    });
  });
  children.add(child);
  return child;
}

async function stopChild(child: Child, timeoutMs = 20_000): Promise<void> {
  if (child.exitCode === undefined) {
    child.proc.kill('SIGTERM');
    const done = await Promise.race([child.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!done) {
      log(`${child.name} (pid ${child.proc.pid}) did not stop in ${timeoutMs} ms; killing it`);
      child.proc.kill('SIGKILL');
      await child.exited;
    }
  }
  children.delete(child);
}

function childFailed(child: Child, what: string): Error {
  return new Error(
    `${child.name} ${what} (exit ${child.exitCode}). Its last output:\n${child.output.slice(-4000)}`,
  );
}

async function waitReady(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== undefined) throw childFailed(child, 'exited before it was ready');
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw childFailed(child, `was not ready at ${url} within ${timeoutMs} ms`);
}

async function waitOutput(child: Child, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(child.output)) {
    if (child.exitCode !== undefined) throw childFailed(child, 'exited before it started');
    if (Date.now() > deadline) throw childFailed(child, `did not print ${pattern} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

const dbUrl = (options: Options, name: string) => `${options.pgUrl}/${name}`;

async function createDatabase(options: Options, name: string): Promise<string> {
  databases.add(name);
  await adminPool!.query(`CREATE DATABASE "${name}"`);
  return dbUrl(options, name);
}

async function dropDatabase(name: string): Promise<void> {
  await adminPool!.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  databases.delete(name);
}

/** Deletes the stream and every key the service derived from its name (dead letters, rate-limit counters). */
async function deleteStream(name: string): Promise<void> {
  const keys = new Set([name, `${name}:dead`]);
  let cursor = '0';
  do {
    const [next, found] = await redis!.scan(
      cursor,
      'MATCH',
      `${name.replace(/[*?[\]\\]/g, '\\$&')}:*`,
      'COUNT',
      1000,
    );
    cursor = next;
    for (const key of found) keys.add(key);
  } while (cursor !== '0');
  await redis!.del(...keys);
  streams.delete(name);
}

async function cleanup(): Promise<void> {
  for (const child of [...children]) await stopChild(child, 10_000).catch(() => undefined);
  for (const stream of [...streams]) {
    await deleteStream(stream).catch((error: unknown) =>
      log(`could not delete stream ${stream}: ${String(error)}`),
    );
  }
  for (const name of [...databases]) {
    await dropDatabase(name).catch((error: unknown) =>
      log(`could not drop database ${name}: ${String(error)}`),
    );
  }
}

// ---------------------------------------------------------------------------
// Machine facts

interface Machine {
  nproc: string;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  loadTool: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  redis: string;
}

async function machineFacts(options: Options): Promise<Machine> {
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
  const wrk = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  const wrkVersion = `${wrk.stdout}${wrk.stderr}`
    .split('\n')[0]!
    .replace(/ Copyright.*$/, '')
    .trim();
  const version = (await adminPool!.query<{ version: string }>('SELECT version()')).rows[0]!.version;
  const settings = await adminPool!.query<{ name: string; setting: string; unit: string | null }>(
    `SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)`,
    [
      [
        'shared_buffers',
        'synchronous_commit',
        'fsync',
        'full_page_writes',
        'wal_level',
        'max_wal_size',
        'checkpoint_timeout',
        'autovacuum',
      ],
    ],
  );
  const info = await redis!.info('server');
  return {
    nproc,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadTool: options.loadTool === 'wrk' ? wrkVersion : `node-load.ts (${process.version})`,
    postgres: version.split(' on ')[0]!,
    postgresSettings: Object.fromEntries(
      settings.rows.map((row) => [
        row.name,
        row.unit === '8kB' ? `${(Number(row.setting) * 8) / 1024}MB` : `${row.setting}${row.unit ?? ''}`,
      ]),
    ),
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
  };
}

// ---------------------------------------------------------------------------
// 1. HTTP path

const API_KEY = `bench-${randomBytes(12).toString('hex')}`;
const HTTP_BODY = JSON.stringify({
  session_id: 123456,
  event_type: 'review_started',
  payload: {
    code_language: 'python',
    file_count: 12,
    repo: 'github.com/example/auditgraph',
    commit: '9f3c2a7b1e4d5f6a8b9c0d1e2f3a4b5c6d7e8f90',
    user: 'reviewer@example.com',
  },
});

interface LoadResult {
  requests: number;
  duration_us: number;
  bytes: number;
  errors_connect: number;
  errors_read: number;
  errors_write: number;
  errors_status: number;
  errors_timeout: number;
  lat_mean_us: number;
  lat_p50_us: number;
  lat_p90_us: number;
  lat_p99_us: number;
  lat_max_us: number;
}

interface LoadSummary {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
  non2xx: number;
  cpu: Record<string, number>;
}

async function runLoad(
  options: Options,
  url: string,
  durationS: number,
  apiKey: string,
  record: boolean,
  onStart?: (loadPid: number) => void,
) {
  const vars = { BENCH_BODY: HTTP_BODY, BENCH_API_KEY: apiKey };
  const [file, args] =
    options.loadTool === 'wrk'
      ? [
          'wrk',
          [
            '-t',
            String(options.threads),
            '-c',
            String(options.connections),
            '-d',
            `${durationS}s`,
            '--latency',
            '-s',
            path.join(HERE, 'wrk-post.lua'),
            url,
          ],
        ]
      : [
          process.execPath,
          [
            '--import',
            'tsx',
            path.join(HERE, 'node-load.ts'),
            url,
            String(options.connections),
            String(durationS),
          ],
        ];
  const before = commands.length;
  const child = startChild(`load(${url})`, file, args, vars);
  if (!record) commands.length = before;
  onStart?.(child.proc.pid!);
  const deadline = sleep((durationS + 60) * 1000).then(() => 'timeout' as const);
  const result = await Promise.race([child.exited, deadline]);
  if (result === 'timeout') {
    await stopChild(child);
    throw new Error(`the load generator did not finish:\n${child.output.slice(-2000)}`);
  }
  children.delete(child);
  const line = child.output.split('\n').find((text) => text.startsWith('BENCH_JSON '));
  if (!line) throw childFailed(child, 'printed no result');
  return { result: JSON.parse(line.slice('BENCH_JSON '.length)) as LoadResult, pid: child.proc.pid! };
}

/** Measures, and measures again (twice at most) when other processes took more than a quarter of a core. */
async function measureTarget(
  options: Options,
  url: string,
  apiKey: string,
  server: Child,
  withRedis: boolean,
): Promise<LoadSummary> {
  return measureQuietly(options.retries, () =>
    measureTargetOnce(options, url, apiKey, server, withRedis).catch((error: unknown) => {
      // A load generator that cannot connect usually means the server died: say why.
      throw server.exitCode !== undefined ? childFailed(server, 'exited during the measurement') : error;
    }),
  );
}

/**
 * Runs `measure`, and again (at most `retries` more times) while other processes on the machine
 * took over a quarter of a core during it; answers the last result.
 */
async function measureQuietly<T extends { cpu: Record<string, number> }>(
  retries: number,
  measure: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const result = await measure(attempt);
    const other = result.cpu.other ?? 0;
    if (other <= 0.25 || attempt > retries) return result;
    log(`  other processes used ${pct(other)} of a core meanwhile; measuring again`);
  }
}

async function measureTargetOnce(
  options: Options,
  url: string,
  apiKey: string,
  server: Child,
  withRedis: boolean,
): Promise<LoadSummary> {
  const serverPid = server.proc.pid!;
  await waitForQuiet(options.quietTimeoutS);
  if (options.warmupS > 0) await runLoad(options, url, options.warmupS, apiKey, false);
  const redisPid = Number(/process_id:(\d+)/.exec(await redis!.info('server'))?.[1] ?? 0);
  let meter: ReturnType<typeof cpuMeter> | undefined;
  const { result } = await runLoad(options, url, options.durationS, apiKey, true, (loadPid) => {
    const targets: CpuTarget[] = [{ label: 'server', pids: () => [serverPid] }];
    targets.push({ label: options.loadTool === 'wrk' ? 'wrk' : 'node-load', pids: () => [loadPid] });
    if (withRedis) targets.push({ label: 'redis', pids: () => (redisPid ? [redisPid] : []) });
    meter = cpuMeter(targets);
  });
  const cpu = meter!.stop();
  const errors =
    result.errors_connect +
    result.errors_read +
    result.errors_write +
    result.errors_status +
    result.errors_timeout;
  return {
    rps: result.requests / (result.duration_us / 1e6),
    p50Ms: result.lat_p50_us / 1000,
    p90Ms: result.lat_p90_us / 1000,
    p99Ms: result.lat_p99_us / 1000,
    maxMs: result.lat_max_us / 1000,
    requests: result.requests,
    errors,
    non2xx: result.errors_status,
    cpu,
  };
}

interface HttpResult {
  loadTool: string;
  connections: number;
  threads: number;
  warmupS: number;
  durationS: number;
  bodyBytes: number;
  rounds: Array<{ bare: LoadSummary; serve: LoadSummary & { streamEntries: number } }>;
  bare: { rps: number; p50Ms: number; p99Ms: number };
  serve: { rps: number; p50Ms: number; p99Ms: number };
  ratio: number;
  target: number;
  /** False when over 0.1% of the requests of a measured run failed or were not 2xx (e.g. 429 from a rate limit). */
  valid: boolean;
  pass: boolean;
  profile?: ProfileSummary;
}

/** `auditgraph serve`'s environment in the HTTP measurements: one port, its own stream, no limit in the way. */
async function serveVars(options: Options, databaseUrl: string, stream: string, port: number) {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: options.redisUrl,
    ADMIN_API_KEY: API_KEY,
    HOST: '127.0.0.1',
    PRODUCER_PORT: String(port),
    QUERY_SERVICE_PORT: String(port),
    QUEUE_STREAM: stream,
    QUEUE_MAX_LENGTH: '10000000',
    // The per-key limit (1000/min by default) would answer most of the load with 429.
    RATE_LIMIT_PER_MINUTE: '10000000',
    METRICS_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
  };
}

async function httpPhase(options: Options, runId: string): Promise<HttpResult> {
  const rounds: HttpResult['rounds'] = [];
  const dbName = `${runId}_http`;
  const url = await createDatabase(options, dbName);
  let profile: ProfileSummary | undefined;
  try {
    for (let round = 1; round <= options.rounds; round += 1) {
      // Bare node:http first.
      const barePort = await freePort();
      const bare = startChild(
        'bare-server',
        process.execPath,
        ['--import', 'tsx', path.join(HERE, 'bare-server.ts')],
        {
          PORT: String(barePort),
          HOST: '127.0.0.1',
        },
      );
      let bareResult: LoadSummary;
      try {
        await waitReady(bare, `http://127.0.0.1:${barePort}/`);
        log(`HTTP round ${round}/${options.rounds}: bare node:http on :${barePort}`);
        bareResult = await measureTarget(options, `http://127.0.0.1:${barePort}/log`, API_KEY, bare, false);
        log(
          `  bare: ${fmtInt(bareResult.rps)} req/s, p99 ${bareResult.p99Ms.toFixed(2)} ms (${fmtCpu(bareResult.cpu)})`,
        );
      } finally {
        await stopChild(bare);
      }

      // Then auditgraph serve, on a stream of its own.
      const stream = `${runId}:http:${round}`;
      streams.add(stream);
      const port = await freePort();
      const profileDir = path.join(HERE, 'profiles', runId, `serve-${round}`);
      const serve = startChild(
        'serve',
        process.execPath,
        [...NODE_FLAGS, ...profileFlags(options, profileDir), BIN, 'serve'],
        await serveVars(options, url, stream, port),
      );
      let serveResult: LoadSummary;
      try {
        await waitReady(serve, `http://127.0.0.1:${port}/health/ready`);
        log(`HTTP round ${round}/${options.rounds}: auditgraph serve on :${port} (stream ${stream})`);
        serveResult = await measureTarget(options, `http://127.0.0.1:${port}/log`, API_KEY, serve, true);
        log(
          `  serve: ${fmtInt(serveResult.rps)} req/s, p99 ${serveResult.p99Ms.toFixed(2)} ms (${fmtCpu(serveResult.cpu)})`,
        );
      } finally {
        await stopChild(serve);
      }
      const streamEntries = await redis!.xlen(stream);
      await deleteStream(stream);
      if (serveResult.non2xx > 0) log(`  WARNING: ${serveResult.non2xx} responses from serve were not 2xx`);
      rounds.push({ bare: bareResult, serve: { ...serveResult, streamEntries } });
      if (options.profile && round === options.rounds) profile = summarizeProfileDir(profileDir);
    }
  } finally {
    await dropDatabase(dbName);
  }
  const pick = (side: 'bare' | 'serve') => ({
    rps: median(rounds.map((round) => round[side].rps)),
    p50Ms: median(rounds.map((round) => round[side].p50Ms)),
    p99Ms: median(rounds.map((round) => round[side].p99Ms)),
  });
  const bare = pick('bare');
  const serve = pick('serve');
  const ratio = serve.rps / bare.rps;
  const valid = rounds.every((round) =>
    [round.bare, round.serve].every((side) => side.errors <= side.requests * 0.001),
  );
  return {
    loadTool: options.loadTool,
    connections: options.connections,
    threads: options.threads,
    warmupS: options.warmupS,
    durationS: options.durationS,
    bodyBytes: Buffer.byteLength(HTTP_BODY),
    rounds,
    bare,
    serve,
    ratio,
    target: 0.5,
    valid,
    pass: valid && ratio >= 0.5,
    ...(profile ? { profile } : {}),
  };
}

// ---------------------------------------------------------------------------
// 1b. Instructions per request

interface InstructionsResult {
  warmupRequests: number;
  requests: number;
  /** User-space instructions per request (valgrind callgrind's Ir), kernel time not included. */
  bare: number;
  serve: number;
  /** bare / serve: the share of serve's instructions the bare server needs. */
  ratio: number;
}

/**
 * req/s on a shared two-core machine moves by a quarter between runs of the same code (see the
 * README); an instruction count moves by under one percent, so it tells whether a change to the
 * request path made it cheaper. Both targets run under callgrind with counting off, take
 * `warmup` requests (so the JIT has compiled the path), then count over `requests` more.
 */
async function instructionsPhase(options: Options, runId: string): Promise<InstructionsResult> {
  if (spawnSync('valgrind', ['--version']).error !== undefined)
    throw new Error('valgrind is not installed (apt-get install -y valgrind)');
  const warmupRequests = options.quick ? 1000 : 3000;
  const requests = options.quick ? 3000 : 10_000;
  const dbName = `${runId}_instr`;
  const url = await createDatabase(options, dbName);
  try {
    const barePort = await freePort();
    const bare = await countInstructions(options, runId, {
      name: 'bare-server',
      args: ['--import', 'tsx', path.join(HERE, 'bare-server.ts')],
      vars: { PORT: String(barePort), HOST: '127.0.0.1' },
      readyUrl: `http://127.0.0.1:${barePort}/`,
      port: barePort,
      warmupRequests,
      requests,
    });
    const stream = `${runId}:instructions`;
    streams.add(stream);
    const port = await freePort();
    const serve = await countInstructions(options, runId, {
      name: 'serve',
      args: [...NODE_FLAGS, BIN, 'serve'],
      vars: await serveVars(options, url, stream, port),
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      port,
      warmupRequests,
      requests,
    });
    await deleteStream(stream);
    return { warmupRequests, requests, bare, serve, ratio: bare / serve };
  } finally {
    await dropDatabase(dbName);
  }
}

async function countInstructions(
  options: Options,
  runId: string,
  target: {
    name: string;
    args: string[];
    vars: Record<string, string>;
    readyUrl: string;
    port: number;
    warmupRequests: number;
    requests: number;
  },
): Promise<number> {
  const outFile = path.join(os.tmpdir(), `${runId}-${target.name}.callgrind`);
  const child = startChild(
    `${target.name} (callgrind)`,
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${outFile}`,
      process.execPath,
      ...target.args,
    ],
    target.vars,
  );
  // callgrind_control finds the process by a name made of the user and HOST variables: same environment.
  const control = (state: 'on' | 'off') => {
    const result = spawnSync('callgrind_control', ['-i', state, String(child.proc.pid)], {
      env: serviceEnv(target.vars),
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new Error(`callgrind_control -i ${state} failed: ${result.stderr}`);
  };
  try {
    // Everything runs some 50 times slower under valgrind, start-up too.
    await waitReady(child, target.readyUrl, 600_000);
    log(`instructions: ${target.name} under callgrind, ${fmtInt(target.warmupRequests)} requests to warm up`);
    await postMany(target.port, target.warmupRequests, options.connections);
    control('on');
    await postMany(target.port, target.requests, options.connections);
    control('off');
  } finally {
    await stopChild(child, 120_000);
  }
  try {
    // "totals:" closes the file; its header's "summary:" was written while counting was still off.
    const totals = /^totals:\s*(\d+)/m.exec(readFileSync(outFile, 'utf8'));
    if (!totals) throw childFailed(child, `left no instruction count in ${outFile}`);
    const perRequest = Number(totals[1]) / target.requests;
    log(`  ${target.name}: ${fmtInt(perRequest)} instructions per request`);
    return perRequest;
  } finally {
    rmSync(outFile, { force: true });
  }
}

/** `count` POSTs of the benchmark's body over `connections` keep-alive connections; any non-2xx fails. */
async function postMany(port: number, count: number, connections: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let started = 0;
  let finished = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const next = () => {
        if (started >= count) return;
        started += 1;
        const request = http.request(
          {
            host: '127.0.0.1',
            port,
            path: '/log',
            method: 'POST',
            agent,
            // As wrk sends it: a declared length, not a chunked body.
            headers: {
              'content-type': 'application/json',
              'content-length': String(Buffer.byteLength(HTTP_BODY)),
              'x-api-key': API_KEY,
            },
          },
          (response) => {
            if ((response.statusCode ?? 0) >= 300) {
              reject(new Error(`POST /log answered ${response.statusCode}`));
              return;
            }
            response.resume();
            response.once('end', () => {
              finished += 1;
              if (finished === count) resolve();
              else next();
            });
          },
        );
        request.once('error', reject);
        request.end(HTTP_BODY);
      };
      for (let i = 0; i < Math.min(connections, count); i += 1) next();
    });
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// 2 and 3. Persistence

const LANGUAGES = ['python', 'typescript', 'go', 'rust'];

/** Events as the worker stores them; {@link fillStream} queues them as `POST /log` does. */
function makeEvents(count: number): QueuedEvent[] {
  const events: QueuedEvent[] = [];
  const receivedAt = new Date().toISOString();
  for (let i = 0; i < count; i += 1) {
    events.push({
      v: 1,
      id: uuidv7(),
      eventType: EVENT_TYPES[i % EVENT_TYPES.length]!,
      sessionId: String(1 + Math.floor(Math.random() * 100_000)),
      payload: {
        code_language: LANGUAGES[i % LANGUAGES.length],
        file_count: i % 50,
        repo: `github.com/example/repo-${i % 500}`,
        commit: randomBytes(20).toString('hex'),
        user: `user${i % 1000}@example.com`,
      },
      clientTime: null,
      receivedAt,
      apiKeyId: 'admin',
    });
  }
  return events;
}

async function fillStream(stream: string, events: readonly QueuedEvent[]): Promise<number> {
  const started = performance.now();
  const CHUNK = 2000;
  for (let from = 0; from < events.length; from += CHUNK) {
    const pipeline = redis!.pipeline();
    // The request text in its envelope (form 2), as `POST /log` queues a body like these.
    for (const event of events.slice(from, from + CHUNK)) {
      const request = {
        session_id: Number(event.sessionId),
        event_type: event.eventType,
        payload: event.payload,
      };
      pipeline.xadd(stream, '*', 'e', requestMessageText(event, JSON.stringify(request)));
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0]!;
  }
  return seconds(started);
}

// UUIDv7-shaped ids from a millisecond clock 50 ms apart, all in the past, so
// the bench's new (current-time) ids land at the right edge of the key index as
// they do in production. $1..$2: the range of g; $3: the clock at g = 0.
const PRELOAD_SQL = `
INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, persisted_at, api_key_id)
SELECT
  (substr(hx, 1, 8) || '-' || substr(hx, 9, 4) || '-7' || substr(h, 1, 3) || '-8' || substr(h, 4, 3) || '-' || substr(h, 7, 12))::uuid,
  (ARRAY['review_started','review_completed','syntax_analysis_started','syntax_analysis_completed',
         'llm_query_sent','llm_feedback_received','error_occurred'])[1 + g % 7],
  (1 + (g * 7919) % 100000)::text,
  jsonb_build_object('code_language', (ARRAY['python','typescript','go','rust'])[1 + g % 4], 'file_count', g % 50,
    'repo', 'github.com/example/repo-' || (g % 500), 'commit', h || substr(md5(h), 1, 8),
    'user', 'user' || (g % 1000) || '@example.com'),
  NULL,
  to_timestamp(ms / 1000.0),
  to_timestamp(ms / 1000.0) + interval '40 milliseconds',
  'admin'
FROM (
  SELECT g, md5(g::text) AS h, lpad(to_hex(ms), 12, '0') AS hx, ms
  FROM (SELECT g, $3::bigint + g * 50 AS ms FROM generate_series($1::bigint, $2::bigint) AS g) AS t
) AS s`;

/**
 * Back to an empty-table start between measurements: events, their leaves, the raw table and every
 * rollup emptied, the fold position back to 0. The append-only triggers refuse TRUNCATE, so they
 * are off for this one transaction (this database is the bench's own).
 */
async function emptyTables(client: pg.Client): Promise<void> {
  const rollups = (
    await client.query<{ name: string }>(
      `SELECT quote_ident(tablename) AS name FROM pg_tables
        WHERE schemaname = current_schema() AND tablename LIKE 'analytics\\_%' AND tablename <> 'analytics_folded'`,
    )
  ).rows.map((row) => row.name);
  await client.query('BEGIN');
  try {
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
    await client.query('ALTER TABLE audit_log_leaves DISABLE TRIGGER USER');
    await client.query(`TRUNCATE audit_events, audit_log_leaves, audit_events_raw, ${rollups.join(', ')}`);
    await client.query('UPDATE analytics_folded SET through_seq = 0');
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
    await client.query('ALTER TABLE audit_log_leaves ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

async function preloadTables(client: pg.Client, rows: number): Promise<{ seconds: number }> {
  const started = performance.now();
  const CHUNK = 1_000_000;
  const clockAtZero = Date.now() - rows * 50 - 3_600_000;
  for (let from = 1; from <= rows; from += CHUNK) {
    const to = Math.min(rows, from + CHUNK - 1);
    await client.query(PRELOAD_SQL, [from, to, clockAtZero]);
    log(`  preloaded audit_events: ${fmtInt(to)}/${fmtInt(rows)} rows (${seconds(started).toFixed(0)} s)`);
  }
  await client.query('INSERT INTO audit_events_raw SELECT * FROM audit_events');
  log(`  copied them into audit_events_raw (${seconds(started).toFixed(0)} s)`);
  // Their hash-log leaves too, as the worker would have written them: otherwise the worker's first
  // batch writes 5,000,000 leaves, and the run measures that instead of steady ingest.
  const { backfillLeaves } = await import('../../src/store/integrity-store.js');
  const session = {
    query: async (sql: string, params?: unknown[]) => (await client.query(sql, params)).rows,
  };
  await client.query('BEGIN');
  const leaves = await backfillLeaves(session as Parameters<typeof backfillLeaves>[0]);
  await client.query('COMMIT');
  log(`  wrote their ${fmtInt(leaves)} hash-log leaves (${seconds(started).toFixed(0)} s)`);
  // And their analytics rollups, as the worker's background fold would have: otherwise that fold spends
  // the measured run catching up on 5,000,000 rows (PostgreSQL at 125 % of a core, and a worker that
  // cannot stop in time), and the run measures that instead of steady ingest.
  const { foldRollupsSql } = await import('../../src/store/rollup-sql.js');
  const foldStatement = foldRollupsSql();
  for (;;) {
    const [row] = (await client.query<{ caught_up: boolean | null }>(foldStatement, [500_000])).rows;
    if (row?.caught_up !== false) break;
  }
  log(`  folded them into the analytics rollups (${seconds(started).toFixed(0)} s)`);
  // Vacuumed and analyzed, as autovacuum would have done in production: this server runs without it
  // (see the settings line of the report), and the fold above left many dead rollup row versions.
  await client.query('VACUUM ANALYZE');
  log(`  vacuumed (${seconds(started).toFixed(0)} s)`);
  return { seconds: seconds(started) };
}

// The payloads as one JSON array: measured 17 % faster than a jsonb[] parameter (whose elements
// the driver escapes and the server unescapes), so the ceiling uses it, as insertBatch does.
const RAW_INSERT = `
INSERT INTO audit_events_raw (id, event_type, session_id, payload, client_time, received_at, api_key_id)
SELECT u.id, u.event_type, u.session_id, p.payload, u.client_time, u.received_at, u.api_key_id
FROM unnest($1::uuid[], $2::text[], $3::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])
  WITH ORDINALITY AS u(id, event_type, session_id, client_time, received_at, api_key_id, n)
JOIN jsonb_array_elements($4::jsonb) WITH ORDINALITY AS p(payload, n) ON p.n = u.n`;

/** The ceiling: the same rows, in batches, one plain statement each (autocommit), one connection. */
async function rawInsert(client: pg.Client, database: string, events: readonly QueuedEvent[], batch: number) {
  const postgres = await postgresPidsOf(database);
  const meter = cpuMeter([
    { label: 'postgres', pids: postgres.pids },
    { label: 'bench (node)', pids: () => [process.pid] },
  ]);
  const started = performance.now();
  for (let from = 0; from < events.length; from += batch) {
    const slice = events.slice(from, from + batch);
    await client.query(RAW_INSERT, [
      slice.map((event) => event.id),
      slice.map((event) => event.eventType),
      slice.map((event) => event.sessionId),
      `[${slice.map((event) => JSON.stringify(event.payload)).join(',')}]`,
      slice.map((event) => event.clientTime),
      slice.map((event) => event.receivedAt),
      slice.map((event) => event.apiKeyId),
    ]);
  }
  const elapsed = seconds(started);
  const cpu = meter.stop();
  postgres.stop();
  return { seconds: elapsed, eventsPerSecond: events.length / elapsed, cpu };
}

interface PersistenceResult {
  scenario: Phase;
  rowsBefore: number;
  events: number;
  batchSize: number;
  rawBatch: number;
  preloadSeconds?: number;
  fillSeconds: number;
  raw: { seconds: number; eventsPerSecond: number; cpu: Record<string, number> };
  worker: {
    seconds: number;
    eventsPerSecond: number;
    steadyEventsPerSecond: number;
    startupSeconds: number;
    cpu: Record<string, number>;
    rowsAfter: number;
    deadLetters: number;
    /** Set when the table does not hold every event after the stream drained. */
    problem?: string;
  };
  /** The reported round's (the median ratio's); every round is in `rounds`. */
  ratio: number;
  /** Each round: raw, then the worker, on fresh rows. */
  rounds: Array<{ rawEventsPerSecond: number; workerEventsPerSecond: number; ratio: number }>;
  /** The median of the rounds' worker rates: what the events/s target is checked against. */
  medianWorkerEventsPerSecond: number;
  targets: { ratio: number; eventsPerSecond?: number };
  pass: boolean;
  profile?: ProfileSummary;
  breakdown?: Breakdown;
}

async function persistencePhase(
  options: Options,
  runId: string,
  scenario: Phase,
): Promise<PersistenceResult> {
  const preload = scenario === 'preloaded' ? options.preload : 0;
  const dbName = `${runId}_${scenario}`;
  const url = await createDatabase(options, dbName);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const stream = `${runId}:${scenario}`;
  streams.add(stream);
  try {
    log(`persistence (${scenario}): database ${dbName}, stream ${stream}`);
    // The schema exactly as the service makes it.
    const migrateChild = startChild('migrate', process.execPath, [...NODE_FLAGS, BIN, 'migrate'], {
      DATABASE_URL: url,
      LOG_LEVEL: 'warn',
    });
    if ((await migrateChild.exited) !== 0) throw childFailed(migrateChild, 'failed');
    children.delete(migrateChild);
    await client.query('CREATE TABLE audit_events_raw (LIKE audit_events INCLUDING ALL)');
    commands.push(`psql ${url} -c 'CREATE TABLE audit_events_raw (LIKE audit_events INCLUDING ALL)'`);
    commands.push(
      `  (then, from this process on one connection: ${preload > 0 ? `PRELOAD_SQL for ${preload} rows, ` : ''}` +
        `RAW_INSERT in batches of ${options.rawBatch}, autocommit; see bench/ingest/run.ts)`,
    );

    let preloadSeconds: number | undefined;
    let workerProfile: ProfileSummary | undefined;
    if (preload > 0) {
      log(`  preloading ${fmtInt(preload)} rows into audit_events and audit_events_raw`);
      preloadSeconds = (await preloadTables(client, preload)).seconds;
    }

    let events = makeEvents(options.events);
    let fillSeconds = await fillStream(stream, events);
    log(`  filled ${stream} with ${fmtInt(events.length)} events in ${fillSeconds.toFixed(1)} s`);
    // Every measurement after the first starts from fresh rows: into empty tables again for the
    // empty scenario; the preloaded tables just grow by one run's rows (--events) each time.
    let measurements = 0;
    const freshStart = async () => {
      measurements += 1;
      if (measurements === 1) return;
      if (scenario === 'empty') await emptyTables(client);
      events = makeEvents(options.events);
      fillSeconds = await fillStream(stream, events);
    };

    type Round = { raw: Awaited<ReturnType<typeof rawInsert>>; worker: PersistenceResult['worker'] };
    const rounds: Round[] = [];
    for (let round = 1; round <= options.persistRounds; round += 1) {
      if (options.persistRounds > 1) log(`  round ${round}/${options.persistRounds}`);
      // The ceiling first, from a clean checkpoint; measured again (on fresh rows) when the machine was busy.
      const raw = await measureQuietly(options.retries, async () => {
        await freshStart();
        await client.query('CHECKPOINT');
        await waitForQuiet(options.quietTimeoutS);
        const result = await rawInsert(client, dbName, events, options.rawBatch);
        log(
          `  raw unnest insert: ${fmtInt(result.eventsPerSecond)} events/s (${result.seconds.toFixed(1)} s; ${fmtCpu(result.cpu)})`,
        );
        return result;
      });

      // Then the worker, from a clean checkpoint too, on the stream of the raw insert's rows (into
      // the other table), or on fresh rows when measured again.
      const worker = await measureQuietly(options.retries, async (attempt) => {
        if (attempt > 1) await freshStart();
        const rowsBefore = Number(
          (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!
            .count,
        );
        await client.query('CHECKPOINT');
        await waitForQuiet(options.quietTimeoutS);
        const profileDir = path.join(HERE, 'profiles', runId, `worker-${scenario}-${round}-${attempt}`);
        const result = await drainWithWorker(options, url, client, stream, events, rowsBefore, profileDir);
        log(
          `  worker: ${fmtInt(result.eventsPerSecond)} events/s (steady ${fmtInt(result.steadyEventsPerSecond)}; ` +
            `${result.seconds.toFixed(1)} s; ${fmtCpu(result.cpu)})`,
        );
        if (options.profile) workerProfile = summarizeProfileDir(profileDir);
        return result;
      });
      rounds.push({ raw, worker });
    }
    const ratioOf = (round: Round) => round.worker.eventsPerSecond / round.raw.eventsPerSecond;
    // The round with the median ratio stands for the scenario: raw and worker measured side by side.
    const reported = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b))[
      Math.floor((rounds.length - 1) / 2)
    ]!;
    const raw = reported.raw;
    const workerResult = reported.worker;
    const medianWorkerEventsPerSecond = median(rounds.map((round) => round.worker.eventsPerSecond));
    const problem = rounds.find((round) => round.worker.problem !== undefined)?.worker.problem;

    let breakdown: Breakdown | undefined;
    if (options.breakdown) {
      const extra = `${stream}:breakdown`;
      streams.add(extra);
      const more = makeEvents(Math.min(options.events, 100_000));
      await fillStream(extra, more);
      await client.query('CHECKPOINT');
      breakdown = await instrumentedDrain(options, url, extra, more.length);
      await deleteStream(extra);
      breakdown.sqlShapes = await sqlShapes(client, Math.min(options.events, 50_000), options.rawBatch);
    }

    const ratio = ratioOf(reported);
    const targets = scenario === 'preloaded' ? { ratio: 0.5, eventsPerSecond: 20_000 } : { ratio: 0.5 };
    return {
      scenario,
      rowsBefore: preload,
      events: options.events,
      batchSize: options.batchSize,
      rawBatch: options.rawBatch,
      ...(preloadSeconds === undefined ? {} : { preloadSeconds }),
      fillSeconds,
      raw,
      worker: problem === undefined ? workerResult : { ...workerResult, problem },
      ratio,
      rounds: rounds.map((round) => ({
        rawEventsPerSecond: round.raw.eventsPerSecond,
        workerEventsPerSecond: round.worker.eventsPerSecond,
        ratio: ratioOf(round),
      })),
      medianWorkerEventsPerSecond,
      targets,
      pass:
        problem === undefined &&
        ratio >= targets.ratio &&
        medianWorkerEventsPerSecond >= (targets.eventsPerSecond ?? 0),
      ...(workerProfile ? { profile: workerProfile } : {}),
      ...(breakdown ? { breakdown } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
    await deleteStream(stream);
    await dropDatabase(dbName);
  }
}

/** Starts `auditgraph worker` on a pre-filled stream and times it until the stream is empty. */
async function drainWithWorker(
  options: Options,
  url: string,
  client: pg.Client,
  stream: string,
  events: readonly QueuedEvent[],
  rowsBefore: number,
  profileDir: string,
): Promise<PersistenceResult['worker']> {
  const spawnedAt = performance.now();
  const worker = startChild(
    'worker',
    process.execPath,
    [...NODE_FLAGS, ...profileFlags(options, profileDir), BIN, 'worker'],
    {
      DATABASE_URL: url,
      REDIS_URL: options.redisUrl,
      QUEUE_STREAM: stream,
      QUEUE_MAX_LENGTH: '10000000',
      WORKER_BATCH_SIZE: String(options.batchSize),
      // Its own metrics port: the default (9464) may be taken by another worker on the machine.
      METRICS_PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
    },
  );
  let workerResult: PersistenceResult['worker'];
  try {
    await waitOutput(worker, /\(worker\)/);
    const startedAt = performance.now();
    const postgres = await postgresPidsOf(new URL(url).pathname.slice(1));
    const meter = cpuMeter([
      { label: 'worker', pids: () => [worker.proc.pid!] },
      { label: 'postgres', pids: postgres.pids },
      { label: 'redis', pids: () => pidsNamed('redis-server') },
    ]);
    const samples: Array<{ at: number; left: number }> = [];
    const deadline = Date.now() + Math.max(180_000, (options.events / 1000) * 1000);
    for (;;) {
      const left = await redis!.xlen(stream);
      samples.push({ at: performance.now(), left });
      if (left === 0) break;
      if (worker.exitCode !== undefined) throw childFailed(worker, 'exited while draining');
      if (Date.now() > deadline) throw new Error(`the worker did not drain ${stream} in time (${left} left)`);
      await sleep(50);
    }
    const doneAt = performance.now();
    const cpu = meter.stop();
    postgres.stop();
    const elapsed = seconds(startedAt, doneAt);
    // Steady rate: between 10% and 90% of the stream drained.
    const n = options.events;
    const at10 = samples.find((sample) => sample.left <= n * 0.9);
    const at90 = samples.find((sample) => sample.left <= n * 0.1);
    const steady =
      at10 && at90 && at90.at > at10.at ? (at10.left - at90.left) / seconds(at10.at, at90.at) : n / elapsed;
    // Counted in one snapshot twice, with and without a parallel scan (they should agree), right when the
    // stream is empty: the worker deletes an entry only after its batch committed, so every row must be there.
    const countRows = async () =>
      Number(
        (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!.count,
      );
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const parallelCount = await countRows();
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const rowsAfter = await countRows();
    await client.query('COMMIT');
    if (parallelCount !== rowsAfter) {
      log(
        `  NOTE: in one snapshot, a parallel count(*) saw ${parallelCount} rows and a serial one ${rowsAfter}`,
      );
    }
    workerResult = {
      seconds: elapsed,
      eventsPerSecond: n / elapsed,
      steadyEventsPerSecond: steady,
      startupSeconds: seconds(spawnedAt, startedAt),
      cpu,
      rowsAfter,
      deadLetters: await redis!.xlen(`${stream}:dead`),
    };
    if (rowsAfter !== rowsBefore + n) {
      const missing = await client.query<{ i: number; id: string }>(
        `SELECT e.i, e.id FROM unnest($1::uuid[]) WITH ORDINALITY AS e(id, i)
         WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.id = e.id) ORDER BY e.i`,
        [events.map((event) => event.id)],
      );
      // Does the count catch up later? (It would mean entries were acknowledged before their rows were visible.)
      let later = rowsAfter;
      const recheckStarted = performance.now();
      while (later !== rowsBefore + n && seconds(recheckStarted) < 5) {
        await sleep(50);
        later = Number(
          (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!
            .count,
        );
      }
      const first = missing.rows[0];
      const lastRow = missing.rows.at(-1);
      workerResult.problem =
        `audit_events holds ${rowsAfter} rows after the stream drained; expected ${rowsBefore + n}. ` +
        `${missing.rowCount} of the bench's events are missing` +
        (first && lastRow ? ` (positions ${first.i}..${lastRow.i} of the stream)` : '') +
        `; dead letters: ${workerResult.deadLetters}; ` +
        `count ${later} after ${seconds(recheckStarted).toFixed(2)} s more.`;
      log(`  PROBLEM: ${workerResult.problem}\n  worker output:\n${worker.output.slice(-3000)}`);
    }
  } finally {
    await stopChild(worker);
  }
  return workerResult;
}

// ---------------------------------------------------------------------------
// --breakdown: the worker's own code, run here with timers around its calls.

interface Breakdown {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  batches: number;
  /** Share of the wall time, and mean milliseconds per batch, of each step. */
  steps: Record<string, { share: number; msPerBatch: number; calls: number }>;
  /** The raw insert, step by step closer to insertBatch's statement, on fresh rows each. */
  sqlShapes?: Array<{ shape: string; eventsPerSecond: number; msPerBatch: number }>;
}

/**
 * What each part of insertBatch's SQL costs over the raw ceiling: batches into
 * audit_events_raw on one connection, adding one feature at a time. Timed from
 * sending the statement (parameters already built) to its result.
 */
async function sqlShapes(client: pg.Client, count: number, batch: number): Promise<Breakdown['sqlShapes']> {
  const onConflict = `${RAW_INSERT} ON CONFLICT (id) DO NOTHING`;
  const counted = `WITH inserted AS (${onConflict} RETURNING 1) SELECT count(*)::int AS inserted FROM inserted`;
  const shapes: Array<{ shape: string; run: (params: unknown[]) => Promise<void> }> = [
    {
      shape: 'plain INSERT ... SELECT unnest (the ceiling)',
      run: async (params) => void (await client.query(RAW_INSERT, params)),
    },
    {
      shape: '+ ON CONFLICT (id) DO NOTHING',
      run: async (params) => void (await client.query(onConflict, params)),
    },
    {
      shape: '+ RETURNING 1 counted in a CTE',
      run: async (params) => void (await client.query(counted, params)),
    },
    {
      shape: '+ BEGIN, pg_advisory_xact_lock, COMMIT',
      run: async (params) => {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [0x61756469]);
        await client.query(counted, params);
        await client.query('COMMIT');
      },
    },
  ];
  // insertBatch's statement also maintains the analytics rollups, when the store has them.
  const analytics = (await import('../../src/store/rollup-sql.js').catch(() => undefined)) as
    { insertWithRollupsSql?: (insert: string) => string } | undefined;
  if (typeof analytics?.insertWithRollupsSql === 'function') {
    const withRollups = analytics.insertWithRollupsSql(onConflict);
    shapes.push({
      shape: '+ rollup CTEs (the insert before rollups were folded)',
      run: async (params) => {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [0x61756469]);
        await client.query(withRollups, params);
        await client.query('COMMIT');
      },
    });
  }
  // Interleaved, one batch of each shape in turn, so background noise falls on all of them alike.
  const spent = shapes.map(() => 0);
  const rounds = Math.max(1, Math.ceil(count / batch));
  await client.query('CHECKPOINT');
  for (let round = 0; round < rounds; round += 1) {
    for (const [index, { run }] of shapes.entries()) {
      const slice = makeEvents(batch);
      const params = [
        slice.map((event) => event.id),
        slice.map((event) => event.eventType),
        slice.map((event) => event.sessionId),
        `[${slice.map((event) => JSON.stringify(event.payload)).join(',')}]`,
        slice.map((event) => event.clientTime),
        slice.map((event) => event.receivedAt),
        slice.map((event) => event.apiKeyId),
      ];
      const started = performance.now();
      await run(params);
      spent[index]! += performance.now() - started;
    }
  }
  const results: NonNullable<Breakdown['sqlShapes']> = shapes.map(({ shape }, index) => ({
    shape,
    eventsPerSecond: (rounds * batch) / (spent[index]! / 1000),
    msPerBatch: spent[index]! / rounds,
  }));
  return results;
}

async function instrumentedDrain(
  options: Options,
  url: string,
  stream: string,
  count: number,
): Promise<Breakdown> {
  const { createRedisQueue } = await import('../../src/queue/redis-queue.js');
  const { openDatabase } = await import('../../src/store/database.js');
  const { createEventStore } = await import('../../src/store/event-store.js');
  const { createRollupFolder } = await import('../../src/store/rollup-folder.js');
  const { createWorker } = await import('../../src/worker/worker.js');
  const { createLogger } = await import('../../src/observability/logger.js');

  const running = new Map<string, { ms: number; calls: number }>();
  const add = (step: string, ms: number) => {
    const total = running.get(step) ?? { ms: 0, calls: 0 };
    total.ms += ms;
    total.calls += 1;
    running.set(step, total);
  };
  const PREPARE_STEP = 'store.prepareBatch (while the batch before is written)';
  function timed<Args extends unknown[], R>(step: string, fn: (...args: Args) => Promise<R>) {
    return async (...args: Args): Promise<R> => {
      const started = performance.now();
      try {
        return await fn(...args);
      } finally {
        add(step, performance.now() - started);
      }
    };
  }

  const db = await openDatabase({ kind: 'postgres', url, poolSize: 10 });
  const queue = await createRedisQueue({ url: options.redisUrl, stream, maxLength: 10_000_000 });
  // Time the statements on the write lease's connection (src/store/event-store.ts, createWriteLease):
  // the batches' inserts (from issue to answer: with two under way, the second's time includes its
  // wait behind the first), and taking and giving back the lease.
  const stepOf = (text: string) =>
    text.includes('INSERT INTO audit_events')
      ? 'insertBatch: INSERT statement (issued to answered)'
      : 'insertBatch: lease taken, given back, state read';
  const timedDb: typeof db = {
    ...db,
    reserve: async () => {
      const session = await db.reserve();
      return {
        ...session,
        query: <Row extends object>(text: string, params?: readonly unknown[]) =>
          timed(stepOf(text), () => session.query<Row>(text, params))(),
      };
    },
  };
  const store = createEventStore(timedDb, { rollups: createRollupFolder(timedDb) });
  let persisted = 0;
  const worker = createWorker({
    queue: {
      ...queue,
      read: timed('queue.read (XREADGROUP)', queue.read),
      readPending: timed('queue.readPending', queue.readPending),
      claimStale: timed('queue.claimStale (XAUTOCLAIM)', queue.claimStale),
      ack: timed('queue.ack (XACK+XDEL)', queue.ack),
    },
    store: {
      insertBatch: timed('store.insertBatch (total)', store.insertBatch),
      // As the worker runs it: the next batch prepared while one is written.
      prepareBatch: (events) => {
        const started = performance.now();
        try {
          return store.prepareBatch(events);
        } finally {
          add(PREPARE_STEP, performance.now() - started);
        }
      },
    },
    logger: createLogger({ level: 'warn' }),
    consumerName: 'bench-breakdown',
    batchSize: options.batchSize,
    claimIdleMs: 30_000,
    onPersisted: (n) => {
      persisted += n;
    },
  });
  const started = performance.now();
  worker.start();
  const deadline = Date.now() + 300_000;
  while (persisted < count && Date.now() < deadline) await sleep(20);
  const elapsedMs = performance.now() - started;
  // Taken now: the read that blocks on the empty stream while the worker stops is no part of the drain.
  const totals = new Map([...running].map(([step, total]) => [step, { ...total }]));
  await worker.stop(5000);
  await queue.close();
  await db.close();

  const batches = totals.get('store.insertBatch (total)')?.calls ?? 1;
  const steps: Breakdown['steps'] = {};
  const put = (step: string, ms: number, calls = batches) => {
    steps[step] = { share: ms / elapsedMs, msPerBatch: ms / batches, calls };
  };
  let accounted = 0;
  for (const [step, total] of totals) {
    put(step, total.ms, total.calls);
    if (!step.startsWith('insertBatch:') && step !== PREPARE_STEP) accounted += total.ms;
  }
  put(
    'worker: parsing, waiting on the next batch, the loop (the rest of the wall time)',
    elapsedMs - accounted,
  );
  return {
    events: persisted,
    seconds: elapsedMs / 1000,
    eventsPerSecond: persisted / (elapsedMs / 1000),
    batches,
    steps,
  };
}

// ---------------------------------------------------------------------------
// --profile: CPU profiles of the service processes, summarized.

interface ProfileSummary {
  files: string[];
  totalMs: number;
  topSelf: Array<{ function: string; where: string; selfMs: number; share: number }>;
  byModule: Array<{ module: string; selfMs: number; share: number }>;
  srcInclusive: Array<{ function: string; where: string; totalMs: number; share: number }>;
}

function profileFlags(options: Options, dir: string): string[] {
  if (!options.profile) return [];
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function moduleOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url.split('/')[0]!.replace(/^node:internal$/, 'node:internal');
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return file.startsWith(ROOT) ? rel(file) : file;
}

function summarizeProfileDir(dir: string): ProfileSummary | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => path.join(dir, file))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  const file = files[0];
  if (!file) return undefined;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: CpuProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index + 1] ?? profile.timeDeltas[index] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  });
  // Inclusive time per node, children first.
  const inclusiveUs = new Map<number, number>();
  const inclusive = (id: number): number => {
    const cached = inclusiveUs.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    let total = selfUs.get(id) ?? 0;
    for (const child of node.children ?? []) total += inclusive(child);
    inclusiveUs.set(id, total);
    return total;
  };
  const root = profile.nodes[0]!;
  const totalUs = inclusive(root.id);
  const idleUs = [...byId.values()]
    .filter((node) => node.callFrame.functionName === '(idle)')
    .reduce((sum, node) => sum + (selfUs.get(node.id) ?? 0), 0);
  const busyUs = totalUs - idleUs;

  const key = (node: CpuProfileNode) => {
    const where = node.callFrame.url
      ? `${moduleOf(node.callFrame.url, '')}:${node.callFrame.lineNumber + 1}`
      : '';
    return `${node.callFrame.functionName || '(anonymous)'}\u0000${where}`;
  };
  const selfByFunction = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  const srcTotal = new Map<string, number>();
  // For inclusive time, count a function once per stack (recursion would double it).
  const walk = (id: number, onStack: Set<string>) => {
    const node = byId.get(id)!;
    const name = key(node);
    const self = selfUs.get(id) ?? 0;
    if (node.callFrame.functionName !== '(idle)') {
      selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + self);
      const module = moduleOf(node.callFrame.url, node.callFrame.functionName);
      selfByModule.set(module, (selfByModule.get(module) ?? 0) + self);
    }
    let added = false;
    if (node.callFrame.url.includes(`${ROOT}/src/`) && !onStack.has(name)) {
      srcTotal.set(name, (srcTotal.get(name) ?? 0) + inclusive(id));
      onStack.add(name);
      added = true;
    }
    for (const child of node.children ?? []) walk(child, onStack);
    if (added) onStack.delete(name);
  };
  walk(root.id, new Set());
  const split = (name: string) => {
    const [fn, where] = name.split('\u0000');
    return { function: fn!, where: where ?? '' };
  };
  const top = <T>(map: Map<string, number>, n: number, shape: (name: string, us: number) => T): T[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => shape(name, us));
  return {
    files: files.map(rel),
    totalMs: busyUs / 1000,
    topSelf: top(selfByFunction, 25, (name, us) => ({
      ...split(name),
      selfMs: us / 1000,
      share: us / busyUs,
    })),
    byModule: top(selfByModule, 15, (module, us) => ({ module, selfMs: us / 1000, share: us / busyUs })),
    srcInclusive: top(srcTotal, 20, (name, us) => ({
      ...split(name),
      totalMs: us / 1000,
      share: us / busyUs,
    })),
  };
}

function renderProfile(title: string, profile: ProfileSummary): string {
  const lines = [`${title} — busy CPU ${fmtInt(profile.totalMs)} ms (${profile.files[0] ?? ''})`];
  lines.push('  self time by module:');
  lines.push(
    indent(
      markdownTable(
        ['module', 'self ms', 'share'],
        profile.byModule.map((row) => [row.module, fmtInt(row.selfMs), pct(row.share)]),
      ),
      4,
    ),
  );
  lines.push('  top functions by self time:');
  lines.push(
    indent(
      markdownTable(
        ['function', 'where', 'self ms', 'share'],
        profile.topSelf.map((row) => [row.function, row.where, fmtInt(row.selfMs), pct(row.share)]),
      ),
      4,
    ),
  );
  lines.push('  src/ functions by inclusive time:');
  lines.push(
    indent(
      markdownTable(
        ['function', 'where', 'total ms', 'share'],
        profile.srcInclusive.map((row) => [row.function, row.where, fmtInt(row.totalMs), pct(row.share)]),
      ),
      4,
    ),
  );
  return lines.join('\n');
}

const indent = (text: string, spaces: number) =>
  text
    .split('\n')
    .map((line) => ' '.repeat(spaces) + line)
    .join('\n');

// ---------------------------------------------------------------------------
// Report

interface Results {
  startedAt: string;
  finishedAt?: string;
  mode: 'quick' | 'full';
  machine?: Machine;
  options: Omit<Options, 'out'> & { out: string };
  commands: string[];
  http?: HttpResult;
  instructions?: InstructionsResult;
  persistence: PersistenceResult[];
  error?: string;
}

function render(results: Results): string {
  const out: string[] = [];
  const m = results.machine;
  out.push('');
  out.push(`auditgraph ingest benchmark (${results.mode} mode), ${results.startedAt}`);
  if (m) {
    out.push(`  nproc: ${m.nproc} (${m.cpuModel}), memory ${m.memoryGiB} GiB`);
    out.push(`  node ${m.node}; load tool: ${m.loadTool}; ${m.postgres}; Redis ${m.redis}`);
    out.push(
      `  postgres settings: ${Object.entries(m.postgresSettings)
        .map(([key, value]) => `${key}=${value}`)
        .join(' ')}`,
    );
  }
  const h = results.http;
  if (h) {
    out.push('');
    out.push(
      `1. HTTP path: POST /log (${h.bodyBytes}-byte JSON body), ${h.loadTool} ${h.threads} thread(s), ` +
        `${h.connections} connections, ${h.warmupS} s warm-up + ${h.durationS} s measured per target, ` +
        `${h.rounds.length} round(s), medians`,
    );
    const rows = (['bare', 'serve'] as const).map((side) => {
      const all = h.rounds.map((round) => round[side]);
      return [
        side === 'bare' ? 'bare node:http (read body, 202)' : 'auditgraph serve (auth+validate+XADD)',
        fmtInt(h[side].rps),
        h[side].p50Ms.toFixed(2),
        h[side].p99Ms.toFixed(2),
        String(all.reduce((sum, r) => sum + r.errors, 0)),
        all.map((r) => fmtCpu(r.cpu)).join(' / '),
      ];
    });
    out.push(
      markdownTable(['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU (share of one core)'], rows),
    );
    out.push(`   ratio serve/bare: ${pct(h.ratio)}  (target >= 50%: ${h.pass ? 'PASS' : 'MISS'})`);
    // CPU time per request moves far less than req/s when other work shares the two cores.
    const cpuUs = (side: 'bare' | 'serve') =>
      median(h.rounds.map((round) => ((round[side].cpu.server ?? 0) * 1e6) / round[side].rps));
    out.push(
      `   server CPU per request (median of rounds): bare ${cpuUs('bare').toFixed(1)} µs, ` +
        `serve ${cpuUs('serve').toFixed(1)} µs; bare/serve ${pct(cpuUs('bare') / cpuUs('serve'))}`,
    );
    if (!h.valid) {
      out.push(
        '   INVALID: over 0.1% of the requests failed or were not 2xx; these figures do not measure ingest.',
      );
    }
    for (const round of h.rounds) {
      if (round.serve.streamEntries < round.serve.requests) {
        out.push(
          `   WARNING: stream held ${round.serve.streamEntries} entries for ${round.serve.requests} requests`,
        );
      }
    }
  }
  const i = results.instructions;
  if (i) {
    out.push('');
    out.push(
      `1b. Instructions per request (valgrind callgrind, user space only), counted over ${fmtInt(i.requests)} ` +
        `requests after ${fmtInt(i.warmupRequests)}: bare ${fmtInt(i.bare)}, serve ${fmtInt(i.serve)}; ` +
        `bare/serve ${pct(i.ratio)}`,
    );
  }
  if (results.persistence.length > 0) {
    out.push('');
    out.push(
      '2./3. Persistence: worker draining a pre-filled stream vs raw INSERT ... SELECT unnest(...) of the same rows',
    );
    out.push(
      markdownTable(
        [
          'scenario',
          'rows before',
          'events',
          'raw ev/s',
          'worker ev/s',
          'steady ev/s',
          'ratio',
          'target',
          'result',
        ],
        results.persistence.map((p) => [
          p.scenario === 'empty' ? '2. empty table' : '3. preloaded table',
          fmtInt(p.rowsBefore),
          fmtInt(p.events),
          fmtInt(p.raw.eventsPerSecond),
          fmtInt(p.worker.eventsPerSecond),
          fmtInt(p.worker.steadyEventsPerSecond),
          pct(p.ratio),
          `>=50%${p.targets.eventsPerSecond ? ` & >=${fmtInt(p.targets.eventsPerSecond)}/s` : ''}`,
          p.pass ? 'PASS' : 'MISS',
        ]),
      ),
    );
    for (const p of results.persistence) {
      out.push(
        `   ${p.scenario}: batch ${p.batchSize} (raw ${p.rawBatch}); raw ${p.raw.seconds.toFixed(1)} s [${fmtCpu(p.raw.cpu)}]; ` +
          `worker ${p.worker.seconds.toFixed(1)} s after a ${p.worker.startupSeconds.toFixed(1)} s start [${fmtCpu(p.worker.cpu)}]` +
          `${p.preloadSeconds ? `; preload ${p.preloadSeconds.toFixed(0)} s` : ''}; stream fill ${p.fillSeconds.toFixed(1)} s`,
      );
    }
    for (const p of results.persistence) {
      if (p.rounds.length < 2) continue;
      out.push(
        `   ${p.scenario}, ${p.rounds.length} rounds (worker / raw events/s, ratio): ` +
          p.rounds
            .map(
              (round) =>
                `${fmtInt(round.workerEventsPerSecond)} / ${fmtInt(round.rawEventsPerSecond)} ${pct(round.ratio)}`,
            )
            .join('; ') +
          `; the table shows the median ratio's round; median worker rate ${fmtInt(p.medianWorkerEventsPerSecond)}/s`,
      );
    }
    for (const p of results.persistence) {
      if (p.worker.problem) out.push(`   PROBLEM (${p.scenario}): ${p.worker.problem}`);
    }
    for (const p of results.persistence) {
      if (!p.breakdown) continue;
      const b = p.breakdown;
      out.push('');
      out.push(
        `   breakdown (${p.scenario}): worker code in-process, ${fmtInt(b.events)} events, ${b.batches} batches, ` +
          `${fmtInt(b.eventsPerSecond)} events/s`,
      );
      out.push(
        indent(
          markdownTable(
            ['step', 'ms/batch', 'share of wall', 'calls'],
            Object.entries(b.steps)
              .sort((a, c) => c[1].share - a[1].share)
              .map(([step, s]) => [step, s.msPerBatch.toFixed(2), pct(s.share), String(s.calls)]),
          ),
          3,
        ),
      );
      if (b.sqlShapes) {
        out.push(
          `   SQL shapes (${p.scenario}), into audit_events_raw, batch ${p.rawBatch}, fresh rows each:`,
        );
        out.push(
          indent(
            markdownTable(
              ['statement', 'ev/s', 'ms/batch'],
              b.sqlShapes.map((shape) => [
                shape.shape,
                fmtInt(shape.eventsPerSecond),
                shape.msPerBatch.toFixed(2),
              ]),
            ),
            3,
          ),
        );
      }
    }
  }
  if (h?.profile) out.push('', renderProfile('serve CPU profile (last HTTP round)', h.profile));
  for (const p of results.persistence) {
    if (p.profile) out.push('', renderProfile(`worker CPU profile (${p.scenario})`, p.profile));
  }
  const noisy: string[] = [];
  for (const round of h?.rounds ?? []) {
    for (const side of ['bare', 'serve'] as const) {
      if ((round[side].cpu.other ?? 0) > 0.25) noisy.push(`HTTP ${side} (${pct(round[side].cpu.other!)})`);
    }
  }
  for (const p of results.persistence) {
    if ((p.raw.cpu.other ?? 0) > 0.25) noisy.push(`${p.scenario} raw (${pct(p.raw.cpu.other!)})`);
    if ((p.worker.cpu.other ?? 0) > 0.25) noisy.push(`${p.scenario} worker (${pct(p.worker.cpu.other!)})`);
  }
  if (noisy.length > 0) {
    out.push('');
    out.push(
      `WARNING: other processes were busy during: ${noisy.join(', ')} of a core. Re-run on a quiet machine.`,
    );
  }
  out.push('');
  out.push('Commands run (cwd: repository root):');
  for (const command of results.commands) out.push(`  ${command}`);
  if (results.error) out.push('', `FAILED: ${results.error}`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const runId = `ag_bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const results: Results = {
    startedAt: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    options: { ...options, out: rel(options.out) },
    commands,
    persistence: [],
  };
  adminPool = new pg.Pool({ connectionString: `${options.pgUrl}/postgres`, max: 2 });
  adminPool.on('error', () => undefined);
  redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);

  // A second signal within 5 s is the same Ctrl-C or kill relayed by npx/tsx: cleaning up continues.
  let interruptedAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedAt !== undefined) {
      if (Date.now() - interruptedAt > 5000) process.exit(130);
      return;
    }
    interruptedAt = Date.now();
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 0;
  try {
    await redis.connect();
    results.machine = await machineFacts(options);
    log(
      `run ${runId}: nproc ${results.machine.nproc}, node ${process.version}, phases ${options.phases.join(',')}`,
    );
    if (options.phases.includes('http')) results.http = await httpPhase(options, runId);
    if (options.phases.includes('instructions'))
      results.instructions = await instructionsPhase(options, runId);
    for (const scenario of ['empty', 'preloaded'] as const) {
      if (options.phases.includes(scenario))
        results.persistence.push(await persistencePhase(options, runId, scenario));
    }
  } catch (error) {
    results.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    code = 1;
  } finally {
    await cleanup();
    results.finishedAt = new Date().toISOString();
    await redis.quit().catch(() => redis?.disconnect());
    await adminPool.end().catch(() => undefined);
  }
  console.log(render(results));
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nResults written to ${rel(options.out)}`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
