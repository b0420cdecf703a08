/**
 * Query benchmark: how fast does auditgraph read events and analytics back from
 * a realistic table, through its HTTP API, beside the bare SQL of the same question?
 *
 *   npx tsx bench/query/run.ts [--events N] [--samples N] [--keep-db NAME] [--help]
 *
 * 1. Creates its own database `ag_bench_query_<random>` (or reuses `--keep-db NAME`),
 *    migrates it with `node bin/auditgraph.mjs migrate`, and loads N events (default
 *    5,000,000) spread over the last 30 days through the store's own
 *    `createEventStore(db).insertBatch` — the worker's statement — so the analytics
 *    rollups are maintained exactly as in production.
 * 2. Starts `node bin/auditgraph.mjs serve` on a free port (PostgreSQL + Redis).
 * 3. Times each case sequentially over one keep-alive connection (after a warm-up),
 *    interleaved sample by sample with the same question answered in-process by the
 *    service's own modules (no HTTP) and by the simplest bare SQL (pg, client-side time).
 * 4. Prints a table and writes bench/query/results.json; with `--explain` (default on)
 *    also re-issues each case once with auto_explain on the benchmark database only and
 *    writes the plans PostgreSQL used for the service's queries to bench/query/plans.txt.
 *
 * Timed measurements wait until no `bench/ingest/run.ts` is running (polled every 30 s,
 * up to --quiet-timeout seconds), so the two benchmarks do not distort each other.
 * Everything it creates (database unless kept, Redis stream, server process) is
 * removed at the end, also on failure or Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createAnalyticsService } from '../../src/analytics/analytics-service.js';
import { EVENT_TYPES, type EventType } from '../../src/events/event-types.js';
import { createEventQueries, MAX_OFFSET } from '../../src/query/event-queries.js';
import { createAnalyticsStore } from '../../src/store/analytics-store.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent } from '../../src/events/stored-event.js';
import { markdownTable } from '../support/table.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BIN = path.join(ROOT, 'bin/auditgraph.mjs');

// ---------------------------------------------------------------------------
// Options

interface Options {
  events: number;
  samples: number;
  slowSamples: number;
  warmup: number;
  keepDb: string | undefined;
  explain: boolean;
  quietTimeoutS: number;
  maxOtherCores: number;
  pgUrl: string;
  redisUrl: string;
  pgLog: string;
  out: string;
}

const HELP = `Usage: npx tsx bench/query/run.ts [options]

  --events N           events to load (default 5000000)
  --samples N          timed requests per case, after the warm-up (default 200)
  --slow-samples N     timed runs of each slow live-aggregation SQL (default 5, after 1 warm-up)
  --warmup N           untimed requests per case first (default 20)
  --keep-db NAME       use (create if missing) database NAME and keep it; loading is skipped
                       when it already holds the N events of an earlier run
  --no-explain         skip the auto_explain pass that writes bench/query/plans.txt
  --quiet-timeout S    how long to wait for bench/ingest/run.ts to finish before measuring
                       (default 2400; polled every 30 s)
  --max-other-cpu C    measure a case only when the other processes on the machine use at most C
                       cores (sampled 2 s while idle; default 0.25); a case during which they used
                       more is measured again (up to 3 times), then marked contended
  --pg-url URL         admin connection (default $TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/postgres)
  --redis-url URL      (default $REDIS_URL or redis://127.0.0.1:6379)
  --pg-log PATH        PostgreSQL's server log, read for the auto_explain plans
                       (default /var/log/postgresql/postgresql-15-main.log)
  --out PATH           results file (default bench/query/results.json)`;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    events: 5_000_000,
    samples: 200,
    slowSamples: 5,
    warmup: 20,
    keepDb: undefined,
    explain: true,
    quietTimeoutS: 2400,
    maxOtherCores: 0.25,
    pgUrl: process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    pgLog: '/var/log/postgresql/postgresql-15-main.log',
    out: path.join(HERE, 'results.json'),
  };
  const count = (flag: string, value: string | undefined, min: number): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) throw new Error(`${flag}: expected an integer ≥ ${min}`);
    return parsed;
  };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index]!;
    const value = () => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${flag}: missing value`);
      return next;
    };
    switch (flag) {
      case '--events':
        options.events = count(flag, value(), 1000);
        break;
      case '--samples':
        options.samples = count(flag, value(), 1);
        break;
      case '--slow-samples':
        options.slowSamples = count(flag, value(), 1);
        break;
      case '--warmup':
        options.warmup = count(flag, value(), 0);
        break;
      case '--keep-db': {
        const name = value();
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error('--keep-db: a lowercase identifier');
        options.keepDb = name;
        break;
      }
      case '--no-explain':
        options.explain = false;
        break;
      case '--quiet-timeout':
        options.quietTimeoutS = count(flag, value(), 0);
        break;
      case '--max-other-cpu': {
        const cores = Number(value());
        if (!(cores >= 0)) throw new Error(`${flag}: expected a number of cores ≥ 0`);
        options.maxOtherCores = cores;
        break;
      }
      case '--pg-url':
        options.pgUrl = value();
        break;
      case '--redis-url':
        options.redisUrl = value();
        break;
      case '--pg-log':
        options.pgLog = value();
        break;
      case '--out':
        options.out = path.resolve(value());
        break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${flag}\n\n${HELP}`);
    }
  }
  return options;
}

// ---------------------------------------------------------------------------
// Synthetic events

const SPAN_DAYS = 30;
const SESSIONS = 100_000;
const BATCH = 1000; // WORKER_BATCH_SIZE's default: the batches the worker writes
const SEED = 20261126;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

let seed = SEED;
/** Deterministic uniform [0, 1) (mulberry32), so runs compare. */
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (below: number): number => Math.floor(random() * below);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
/** Log-normal around `median`, spreading about a decade either way. */
const lognormal = (median: number, sigma = 0.8): number => {
  const gauss = Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  return Math.round(median * Math.exp(gauss * sigma) * 10) / 10;
};

/** Share of each type: LLM round trips dominate, errors are rare. */
const TYPE_MIX: ReadonlyArray<[EventType, number]> = [
  ['review_started', 0.08],
  ['review_completed', 0.075],
  ['syntax_analysis_started', 0.12],
  ['syntax_analysis_completed', 0.115],
  ['llm_query_sent', 0.28],
  ['llm_feedback_received', 0.28],
  ['error_occurred', 0.05],
];
const pickType = (): EventType => {
  let draw = random();
  for (const [type, share] of TYPE_MIX) {
    if (draw < share) return type;
    draw -= share;
  }
  return 'llm_feedback_received';
};

/** Model, share, median latency; `in-house-7b` has no price in src/analytics/prices.ts. */
const MODELS: ReadonlyArray<[string, number, number]> = [
  ['gpt-4o', 0.3, 1800],
  ['gpt-4o-mini', 0.25, 700],
  ['claude-sonnet-4', 0.2, 2200],
  ['o4-mini', 0.1, 4500],
  ['gemini-2.0-flash', 0.1, 600],
  ['in-house-7b', 0.05, 350],
];
const pickModel = (): [string, number] => {
  let draw = random();
  for (const [model, share, latency] of MODELS) {
    if (draw < share) return [model, latency];
    draw -= share;
  }
  return ['gpt-4o', 1800];
};
const LANGUAGES = ['python', 'typescript', 'go', 'java', 'rust', 'kotlin', 'ruby', 'csharp'];
const ERRORS: ReadonlyArray<[string, string, string]> = [
  ['ParseError', 'syntax', "unexpected token ')' at line 212, column 17"],
  ['RateLimitError', 'llm', 'provider answered 429: rate limit reached for requests per minute'],
  ['TimeoutError', 'llm', 'no response from the model within 60000 ms'],
  ['GitError', 'checkout', 'fatal: could not read from remote repository (exit code 128)'],
  ['ValidationError', 'review', 'diff exceeds the 5000-line limit for a single review'],
];

/** A payload as the event catalog (src/ingest/catalog.ts) documents it, plus the extra fields callers send. */
function payloadFor(type: EventType, session: number): Record<string, unknown> {
  const repository = `acme/service-${session % 250}`;
  switch (type) {
    case 'review_started':
      return {
        code_language: pick(LANGUAGES),
        file_count: 1 + int(30),
        repository,
        pull_request: 1000 + (session % 9000),
      };
    case 'syntax_analysis_started':
      return { code_language: pick(LANGUAGES), file_count: 1 + int(30), repository };
    case 'review_completed':
      return { duration_ms: lognormal(20_000), issues_found: int(12), file_count: 1 + int(30), repository };
    case 'syntax_analysis_completed':
      return { duration_ms: lognormal(300), errors_found: random() < 0.8 ? 0 : 1 + int(5) };
    case 'llm_query_sent': {
      const [model] = pickModel();
      const prompt = 200 + int(6000);
      return {
        model,
        prompt_tokens: prompt,
        ...(random() < 0.4 ? { cached_tokens: Math.floor(prompt * random() * 0.6) } : {}),
        purpose: pick(['review', 'summary', 'fix-suggestion']),
      };
    }
    case 'llm_feedback_received': {
      const [model, latency] = pickModel();
      const prompt = 200 + int(6000);
      const reasoning = model.startsWith('o4') ? int(2000) : 0;
      return {
        model,
        prompt_tokens: prompt,
        completion_tokens: 50 + int(1200) + reasoning,
        cached_tokens: random() < 0.4 ? Math.floor(prompt * random() * 0.6) : 0,
        reasoning_tokens: reasoning,
        latency_ms: lognormal(latency, 0.6),
        ...(random() < 0.6 ? { cost_usd: Math.round(random() * 2e5) / 1e7 } : {}),
        success: random() > 0.03,
      };
    }
    case 'error_occurred': {
      const [errorType, stage, message] = pick(ERRORS);
      return { error_type: errorType, message, stage };
    }
  }
}

/** A UUIDv7 whose timestamp is `ms`, with a counter keeping ids of one millisecond in order. */
let uuidCounter = 0;
function uuidv7At(ms: number): string {
  const time = ms.toString(16).padStart(12, '0');
  uuidCounter = (uuidCounter + 1) & 0xfff;
  const tail = () => int(0x10000).toString(16).padStart(4, '0');
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-${(0x7000 | uuidCounter).toString(16)}-` +
    `${(0x8000 | int(0x4000)).toString(16)}-${tail()}${tail()}${tail()}`
  );
}

/**
 * Event `index` of `total`, at its place in the 30 days ending at `end`: events come
 * in time order (as the worker stores them, so `seq` follows time). Sessions are
 * review runs of ~20 minutes: session k is active around k/SESSIONS of the span,
 * interleaved with its ~40 neighbours, ~50 events each on average.
 */
function makeEvent(index: number, total: number, end: number): NewEvent {
  const fraction = index / total;
  const ms = Math.floor(end - SPAN_DAYS * DAY_MS + fraction * SPAN_DAYS * DAY_MS);
  const session = Math.min(
    SESSIONS - 1,
    Math.max(0, Math.floor(fraction * SESSIONS + (random() - 0.5) * 40)),
  );
  const type = pickType();
  const receivedAt = new Date(ms).toISOString();
  return {
    id: uuidv7At(ms),
    eventType: type,
    sessionId: String(session),
    payload: payloadFor(type, session),
    clientTime: random() < 0.3 ? new Date(ms - 20 - int(400)).toISOString() : null,
    receivedAt,
    apiKeyId: 'bench-loader',
  };
}

// ---------------------------------------------------------------------------
// Statistics and formatting

interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return {
    n: sorted.length,
    p50: at(0.5),
    p95: at(0.95),
    max: sorted.at(-1) ?? NaN,
    mean: sorted.reduce((sum, value) => sum + value, 0) / sorted.length,
  };
}

const ms = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value)
    ? '—'
    : value >= 100
      ? value.toFixed(0)
      : value >= 10
        ? value.toFixed(1)
        : value.toFixed(2);
const round3 = (value: number): number => Math.round(value * 1000) / 1000;

// ---------------------------------------------------------------------------
// Processes, ports, quiet machine

const INGEST_BENCH = 'bench/ingest/run.ts';

function ingestBenchRunning(): boolean {
  const result = spawnSync('pgrep', ['-f', INGEST_BENCH], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() !== '';
}

/** CPU time (clock ticks) of the whole machine, from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  return { busy: total - fields[3]! - fields[4]!, total };
}

/** CPU time (clock ticks, user + system) of each of `pids` that still runs. */
function processTicks(pids: readonly number[]): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // exited
    }
  }
  return ticks;
}

/**
 * Measures how many cores the rest of the machine (everything but `ownPids`) used
 * between `start()` and `stop()`: other engineers' tests, builds, benchmarks. Own
 * processes are listed again at `stop()`, so connections opened meanwhile count as own.
 */
function otherCpu(ownPids: () => Promise<number[]>) {
  let machine = machineTicks();
  let own = new Map<number, number>();
  return {
    async start() {
      own = processTicks(await ownPids());
      machine = machineTicks();
    },
    /** Cores used by other processes on average since start(). */
    async stop(): Promise<number> {
      const now = machineTicks();
      const pids = new Set([...own.keys(), ...(await ownPids())]);
      const ownNow = processTicks([...pids]);
      let ownDelta = 0;
      for (const [pid, ticks] of ownNow) ownDelta += Math.max(0, ticks - (own.get(pid) ?? 0));
      const elapsed = (now.total - machine.total) / os.availableParallelism();
      return elapsed <= 0 ? 0 : Math.max(0, (now.busy - machine.busy - ownDelta) / elapsed);
    },
  };
}
type OtherCpu = ReturnType<typeof otherCpu>;

/** Once a wait timed out, later ones do not wait again (they still report what they see). */
let gaveUpWaiting = false;

/**
 * Waits until the ingest benchmark is not running and the rest of the machine has been
 * using at most `maxOtherCores` for 2 s (while this benchmark is idle); false if that
 * did not happen within `timeoutS`.
 */
async function waitQuiet(options: Options, cpu: OtherCpu | undefined, why: string): Promise<boolean> {
  const deadline = Date.now() + (gaveUpWaiting ? 0 : options.quietTimeoutS * 1000);
  let announced = '';
  const announce = (what: string) => {
    if (announced !== what) console.log(`   waiting before ${why}: ${what}`);
    announced = what;
  };
  for (;;) {
    const ingest = ingestBenchRunning();
    let others = 0;
    if (!ingest && cpu) {
      await cpu.start();
      await sleep(2000);
      others = await cpu.stop();
    }
    if (!ingest && others <= options.maxOtherCores) {
      if (announced !== '') {
        console.log('   quiet now; settling for 5 s');
        await sleep(5000);
      }
      return true;
    }
    if (Date.now() >= deadline) {
      if (!gaveUpWaiting) {
        console.warn(
          `!! still not quiet after ${options.quietTimeoutS} s (${ingest ? `${INGEST_BENCH} running` : `other processes using ${others.toFixed(2)} cores`}): ` +
            'measuring anyway (results marked contended)',
        );
      }
      gaveUpWaiting = true;
      return false;
    }
    if (ingest) {
      announce(`${INGEST_BENCH} is running (polling every 30 s, up to ${options.quietTimeoutS} s)`);
      await sleep(30_000);
    } else {
      announce(`other processes use > ${options.maxOtherCores} cores (polling every 15 s)`);
      await sleep(13_000);
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function runToEnd(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });
}

/** Only what the service needs: nothing inherited from this shell changes its behaviour. */
function baseEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], HOME: process.env['HOME'] ?? os.tmpdir() };
}

// ---------------------------------------------------------------------------
// HTTP client: one keep-alive connection, sequential requests

interface Reply {
  status: number;
  body: string;
  ms: number;
}

function createClient(port: number, apiKey: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    request(method: 'GET' | 'POST', pathAndQuery: string, body?: unknown): Promise<Reply> {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const started = performance.now();
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method,
            path: pathAndQuery,
            agent,
            headers: {
              'x-api-key': apiKey,
              accept: 'application/json',
              ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
                ms: performance.now() - started,
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
type Client = ReturnType<typeof createClient>;

// ---------------------------------------------------------------------------
// Cases

interface ApiCall {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
}

interface SqlCall {
  /** One or more statements run back to back; the sample is their total time. */
  statements: Array<{ text: string; params: unknown[] }>;
}

interface Case {
  id: string;
  label: string;
  /** p95 target of the API in ms, if the issue sets one. */
  targetMs?: number;
  api: (sample: number) => ApiCall;
  /** Throws when the answer is not what the case expects. */
  check: (json: unknown, sample: number) => void;
  /** The same question through the service's modules in this process, without HTTP. */
  inProcess?: (sample: number) => Promise<unknown>;
  sql: {
    label: string;
    /** Shown in the commands list. */
    text: string;
    call: (sample: number) => SqlCall;
    /** Slow live aggregations run --slow-samples times, after the API samples. */
    slow?: boolean;
  };
}

interface CaseResult {
  id: string;
  label: string;
  targetMs: number | null;
  api: Stats;
  inProcess: Stats | null;
  sql: Stats & { label: string; query: string };
  ratio: number;
  met: boolean | null;
  /** Whether the ingest benchmark ran, or other processes used more than --max-other-cpu, during it. */
  contended: boolean;
  /** Cores the rest of the machine used on average while the API and fast SQL samples ran. */
  otherCores: number;
  attempts: number;
}

const EVENT_COLUMNS =
  'id, seq, event_type, session_id, payload, client_time, received_at, persisted_at, api_key_id';
const PAGE = 50;
const DEEP_PAGE = 1000;
const DEEP_OFFSET = (DEEP_PAGE - 1) * PAGE;
/** The deepest page `page` allows: offset MAX_OFFSET (src/query/event-queries.ts). */
const DEEPEST_PAGE = MAX_OFFSET / PAGE + 1;

const json = <T>(text: string): T => JSON.parse(text) as T;
function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}

interface RestPage {
  events: Array<{ seq: string; event_type: string; session_id: string }>;
  count: number;
  next_cursor: string | null;
}
interface GraphQLPage {
  data?: {
    events: {
      edges: Array<{ cursor: string; node: { seq: string } }>;
      pageInfo: { endCursor: string | null };
    };
  };
  errors?: unknown[];
}

const GRAPHQL_EVENTS = `query Page($first: Int!, $after: String) {
  events(first: $first, after: $after) {
    edges { cursor node { id seq eventType sessionId payload clientTime receivedAt persistedAt apiKeyId } }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** The window the analytics service uses: from the start of the UTC hour holding now − days. */
const windowStart = (days: number): Date =>
  new Date(Math.floor((Date.now() - days * DAY_MS) / HOUR_MS) * HOUR_MS);

const LIVE_SQL = {
  usage: [
    `SELECT date_trunc('day', received_at, 'UTC') AS day, event_type, count(*) AS events
       FROM audit_events WHERE received_at >= $1 GROUP BY 1, 2 ORDER BY 1, 2`,
    `SELECT count(DISTINCT session_id) AS sessions FROM audit_events WHERE received_at >= $1`,
  ],
  llm: [
    `SELECT COALESCE(payload ->> 'model', 'unknown') AS model,
            count(*) FILTER (WHERE event_type = 'llm_query_sent') AS queries,
            count(*) FILTER (WHERE event_type = 'llm_feedback_received') AS responses,
            count(*) FILTER (WHERE event_type = 'llm_feedback_received' AND payload -> 'success' = 'false') AS failures,
            sum((payload ->> 'prompt_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS prompt_tokens,
            sum((payload ->> 'completion_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS completion_tokens,
            sum((payload ->> 'cached_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS cached_tokens,
            sum((payload ->> 'reasoning_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received') AS reasoning_tokens,
            sum((payload ->> 'cost_usd')::float8) FILTER (WHERE event_type = 'llm_feedback_received') AS reported_cost_usd,
            percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (payload ->> 'latency_ms')::float8)
              FILTER (WHERE event_type = 'llm_feedback_received') AS latency_ms
       FROM audit_events
      WHERE received_at >= $1 AND event_type IN ('llm_query_sent', 'llm_feedback_received')
      GROUP BY ROLLUP (1)`,
  ],
  performance: [
    `SELECT event_type, count(payload -> 'duration_ms') AS samples,
            percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (payload ->> 'duration_ms')::float8) AS duration_ms
       FROM audit_events
      WHERE received_at >= $1 AND event_type IN ('review_completed', 'syntax_analysis_completed')
      GROUP BY 1`,
    `SELECT date_trunc('hour', received_at, 'UTC') AS hour, count(*) AS events
       FROM audit_events WHERE received_at >= $1 GROUP BY 1 ORDER BY 1`,
    `SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM persisted_at - received_at) * 1000) AS lag_ms,
            max(extract(epoch FROM persisted_at - received_at) * 1000) AS max_lag_ms
       FROM audit_events WHERE received_at >= $1`,
  ],
} as const;

function buildCases(context: {
  sessionsApi: string[];
  sessionsSql: string[];
  deepCursor: string;
  deepSeq: string;
  deepFirstSeq: string;
  deepTypeFirstSeq: string;
  queries: ReturnType<typeof createEventQueries>;
  analytics: ReturnType<typeof createAnalyticsService>;
}): Case[] {
  const { queries, analytics } = context;
  const sessionAt = (list: string[], sample: number) => list[sample % list.length]!;
  const restPage = (check: (page: RestPage) => void) => (body: unknown) => {
    const page = body as RestPage;
    expect(Array.isArray(page.events), 'events array');
    check(page);
  };
  const cases: Case[] = [
    {
      id: 'health',
      label: 'GET /health (HTTP floor, no DB)',
      api: () => ({ method: 'GET', path: '/health' }),
      check: (body) => expect((body as { status?: string }).status === 'healthy', 'healthy'),
      sql: {
        label: 'SELECT 1',
        text: 'SELECT 1',
        call: () => ({ statements: [{ text: 'SELECT 1', params: [] }] }),
      },
    },
    {
      id: 'by-type',
      label: 'newest 50 by type (llm_query_sent)',
      targetMs: 10,
      api: () => ({ method: 'GET', path: '/events?event_type=llm_query_sent&limit=50' }),
      check: restPage((page) => {
        expect(page.count === PAGE, `50 events, got ${page.count}`);
        expect(
          page.events.every((event) => event.event_type === 'llm_query_sent'),
          'only llm_query_sent',
        );
      }),
      inProcess: () => queries.listPage({ eventTypes: ['llm_query_sent'] }, PAGE, 1),
      sql: {
        label: 'WHERE event_type=$1 ORDER BY seq DESC LIMIT 50',
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC LIMIT 50`,
              params: ['llm_query_sent'],
            },
          ],
        }),
      },
    },
    {
      id: 'by-type-rare',
      label: 'newest 50 by type (error_occurred, 5 %)',
      targetMs: 10,
      api: () => ({ method: 'GET', path: '/events?event_type=error_occurred&limit=50' }),
      check: restPage((page) => expect(page.count === PAGE, `50 events, got ${page.count}`)),
      inProcess: () => queries.listPage({ eventTypes: ['error_occurred'] }, PAGE, 1),
      sql: {
        label: 'WHERE event_type=$1 ORDER BY seq DESC LIMIT 50',
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC LIMIT 50`,
              params: ['error_occurred'],
            },
          ],
        }),
      },
    },
    {
      id: 'by-session',
      label: 'newest 50 by session (random sessions)',
      targetMs: 10,
      api: (sample) => ({
        method: 'GET',
        path: `/events?session_id=${encodeURIComponent(sessionAt(context.sessionsApi, sample))}&limit=50`,
      }),
      check: restPage((page) => {
        expect(page.count > 0, 'the session has events');
        expect(new Set(page.events.map((event) => event.session_id)).size === 1, 'one session');
      }),
      inProcess: (sample) =>
        queries.listPage({ sessionId: sessionAt(context.sessionsApi, sample + 7) }, PAGE, 1),
      sql: {
        label: 'WHERE session_id=$1 ORDER BY seq DESC LIMIT 50',
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE session_id = $1 ORDER BY seq DESC LIMIT 50`,
        call: (sample) => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE session_id = $1 ORDER BY seq DESC LIMIT 50`,
              params: [sessionAt(context.sessionsSql, sample)],
            },
          ],
        }),
      },
    },
    {
      id: 'page-1000-offset',
      label: `page ${DEEP_PAGE} of 50, REST page=${DEEP_PAGE} (offset ${DEEP_OFFSET})`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?page=${DEEP_PAGE}&limit=50` }),
      check: restPage((page) => {
        expect(page.count === PAGE, `50 events, got ${page.count}`);
        expect(
          page.events[0]!.seq === context.deepFirstSeq,
          `first seq ${context.deepFirstSeq}, got ${page.events[0]!.seq}`,
        );
      }),
      inProcess: () => queries.listPage({}, PAGE, DEEP_PAGE),
      sql: {
        label: `ORDER BY seq DESC OFFSET ${DEEP_OFFSET} LIMIT 50`,
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET ${DEEP_OFFSET} LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 50`,
              params: [DEEP_OFFSET],
            },
          ],
        }),
      },
    },
    {
      id: 'page-1000-cursor',
      label: `page ${DEEP_PAGE} of 50, REST cursor`,
      targetMs: 10,
      api: () => ({
        method: 'GET',
        path: `/events?limit=50&cursor=${encodeURIComponent(context.deepCursor)}`,
      }),
      check: restPage((page) => {
        expect(page.count === PAGE, `50 events, got ${page.count}`);
        expect(
          page.events[0]!.seq === context.deepFirstSeq,
          `first seq ${context.deepFirstSeq}, got ${page.events[0]!.seq}`,
        );
      }),
      inProcess: () => queries.list({}, PAGE, context.deepCursor),
      sql: {
        label: 'WHERE seq < $1 ORDER BY seq DESC LIMIT 50 (keyset)',
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 50`,
              params: [context.deepSeq],
            },
          ],
        }),
      },
    },
    {
      id: 'page-1000-graphql',
      label: `page ${DEEP_PAGE} of 50, GraphQL events(first:50, after)`,
      targetMs: 10,
      api: () => ({
        method: 'POST',
        path: '/graphql',
        body: { query: GRAPHQL_EVENTS, variables: { first: PAGE, after: context.deepCursor } },
      }),
      check: (body) => {
        const answer = body as GraphQLPage;
        expect(!answer.errors, `no errors: ${JSON.stringify(answer.errors)}`);
        const edges = answer.data?.events.edges ?? [];
        expect(edges.length === PAGE, `50 edges, got ${edges.length}`);
        expect(edges[0]!.node.seq === context.deepFirstSeq, 'same page as REST');
      },
      inProcess: () => queries.list({}, PAGE, context.deepCursor),
      sql: {
        label: 'WHERE seq < $1 ORDER BY seq DESC LIMIT 50 (keyset)',
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 50`,
              params: [context.deepSeq],
            },
          ],
        }),
      },
    },
    {
      id: 'page-deepest-offset',
      label: `deepest REST page: page=${DEEPEST_PAGE} (offset ${(DEEPEST_PAGE - 1) * PAGE}, MAX_OFFSET)`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?page=${DEEPEST_PAGE}&limit=50` }),
      check: restPage((page) => expect(page.count === PAGE, `50 events, got ${page.count}`)),
      inProcess: () => queries.listPage({}, PAGE, DEEPEST_PAGE),
      sql: {
        label: `ORDER BY seq DESC OFFSET ${(DEEPEST_PAGE - 1) * PAGE} LIMIT 50`,
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET ${(DEEPEST_PAGE - 1) * PAGE} LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 50`,
              params: [(DEEPEST_PAGE - 1) * PAGE],
            },
          ],
        }),
      },
    },
    {
      id: 'page-1000-offset-by-type',
      label: `page ${DEEP_PAGE} of 50 by type (llm_query_sent), REST page`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?event_type=llm_query_sent&page=${DEEP_PAGE}&limit=50` }),
      check: restPage((page) => {
        expect(page.count === PAGE, `50 events, got ${page.count}`);
        expect(page.events[0]!.seq === context.deepTypeFirstSeq, 'expected first seq');
      }),
      inProcess: () => queries.listPage({ eventTypes: ['llm_query_sent'] }, PAGE, DEEP_PAGE),
      sql: {
        label: `WHERE event_type=$1 ORDER BY seq DESC OFFSET ${DEEP_OFFSET} LIMIT 50`,
        text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC OFFSET ${DEEP_OFFSET} LIMIT 50`,
        call: () => ({
          statements: [
            {
              text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC OFFSET $2 LIMIT 50`,
              params: ['llm_query_sent', DEEP_OFFSET],
            },
          ],
        }),
      },
    },
  ];

  for (const days of [7, 30]) {
    for (const name of ['usage', 'llm', 'performance'] as const) {
      const statements = LIVE_SQL[name];
      cases.push({
        id: `analytics-${name}-${days}d`,
        label: `GET /analytics/${name}?days=${days}`,
        targetMs: 100,
        api: () => ({ method: 'GET', path: `/analytics/${name}?days=${days}` }),
        check: (body) =>
          expect((body as { window?: { days?: number } }).window?.days === days, 'window.days'),
        inProcess: () => analytics[name](days),
        sql: {
          label: `live over audit_events: ${
            name === 'usage'
              ? 'count by day×type + count(DISTINCT session)'
              : name === 'llm'
                ? 'jsonb token/cost sums + percentile_cont(latency) by model'
                : 'percentile_cont(durations), count by hour, lag percentiles'
          }`,
          text: statements.map((text) => text.replace(/\s+/g, ' ')).join(';\n'),
          call: () => {
            const from = windowStart(days);
            return { statements: statements.map((text) => ({ text, params: [from] })) };
          },
          slow: true,
        },
      });
    }
  }

  cases.push({
    id: 'event-types',
    label: 'GET /events/types',
    api: () => ({ method: 'GET', path: '/events/types' }),
    check: (body) =>
      expect((body as { event_types?: unknown[] }).event_types?.length === EVENT_TYPES.length, 'seven types'),
    inProcess: () => queries.eventTypes(),
    sql: {
      label: 'SELECT event_type, count(*), max(received_at) GROUP BY 1',
      text: 'SELECT event_type, count(*), max(received_at) FROM audit_events GROUP BY 1',
      call: () => ({
        statements: [
          { text: 'SELECT event_type, count(*), max(received_at) FROM audit_events GROUP BY 1', params: [] },
        ],
      }),
      slow: true,
    },
  });
  return cases;
}

/**
 * Extra bare-SQL rows: what the service could issue instead, on the same data. "Late row
 * lookup" finds the page's positions by an index-only scan of the index that matches the
 * filter, (seq), (event_type, seq) or (session_id, seq), then fetches just those rows.
 */
function alternativeQueries(
  deepSeq: string,
): Array<{ id: string; label: string; statements: Array<{ text: string; params: unknown[] }> }> {
  const late = (where: string, offsetParam: string) =>
    `SELECT ${EVENT_COLUMNS.split(', ')
      .map((column) => `e.${column}`)
      .join(', ')}
       FROM (SELECT seq FROM audit_events ${where} ORDER BY seq DESC OFFSET ${offsetParam} LIMIT 51) page
       JOIN audit_events e ON e.seq = page.seq
      ORDER BY e.seq DESC`;
  return [
    {
      id: 'sql-offset-51',
      label: `page ${DEEP_PAGE}: OFFSET ${DEEP_OFFSET} LIMIT 51 (the service's query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 51`,
          params: [DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-late-row-offset',
      label: `page ${DEEP_PAGE}: late row lookup (index-only OFFSET on (seq), join 51 rows)`,
      statements: [{ text: late('', '$1'), params: [DEEP_OFFSET] }],
    },
    {
      id: 'sql-boundary-offset',
      label: `page ${DEEP_PAGE}: boundary seq by index-only OFFSET, then seq <= boundary LIMIT 51`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events
                  WHERE seq <= (SELECT seq FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 1)
                  ORDER BY seq DESC LIMIT 51`,
          params: [DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-two-step-offset',
      label: `page ${DEEP_PAGE}: two statements (as Prisma could: select seq only, then seq IN (…))`,
      statements: [
        { text: 'SELECT seq FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 51', params: [DEEP_OFFSET] },
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq = ANY($1::bigint[]) ORDER BY seq DESC`,
          params: ['{}'], // replaced by the first statement's seqs
        },
      ],
    },
    {
      id: 'sql-offset-by-type-51',
      label: `page ${DEEP_PAGE} by type: OFFSET ${DEEP_OFFSET} LIMIT 51 (the service's query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC OFFSET $2 LIMIT 51`,
          params: ['llm_query_sent', DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-late-row-by-type',
      label: `page ${DEEP_PAGE} by type: late row lookup through (event_type, seq)`,
      statements: [{ text: late('WHERE event_type = $1', '$2'), params: ['llm_query_sent', DEEP_OFFSET] }],
    },
    {
      id: 'sql-late-row-by-type-page-1',
      label: 'newest 50 by type: late row lookup through (event_type, seq)',
      statements: [{ text: late('WHERE event_type = $1', '0'), params: ['llm_query_sent'] }],
    },
    {
      id: 'sql-keyset-51',
      label: `page ${DEEP_PAGE}: keyset LIMIT 51 (the service's cursor query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 51`,
          params: [deepSeq],
        },
      ],
    },
  ];
}

/** Runs statements back to back; a '{}' parameter of a later statement takes the seqs the previous one returned. */
async function runStatements(
  sql: pg.Client,
  statements: Array<{ text: string; params: unknown[] }>,
): Promise<void> {
  let previous: string[] = [];
  for (const statement of statements) {
    const params = statement.params.map((param) => (param === '{}' ? previous : param));
    const result = await sql.query<{ seq: string }>(statement.text, params);
    previous = result.rows.map((row) => String(row.seq));
  }
}

// ---------------------------------------------------------------------------
// Main

interface LoadMeta {
  bench: 'query';
  events: number;
  sessions: number;
  spanDays: number;
  end: string;
  loadSeconds: number;
  seed: number;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const dbName = options.keepDb ?? `ag_bench_query_${randomBytes(4).toString('hex')}`;
  const dbUrl = new URL(options.pgUrl);
  dbUrl.pathname = `/${dbName}`;
  const databaseUrl = dbUrl.toString();
  const stream = `ag-bench-query:${randomBytes(4).toString('hex')}`;
  const adminKey = `bench-query-${randomBytes(12).toString('hex')}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ag-bench-query-'));

  const admin = new pg.Client({ connectionString: options.pgUrl });
  await admin.connect();
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let server: ChildProcess | undefined;
  let db: Database | undefined;
  let sqlClient: pg.Client | undefined;
  let client: Client | undefined;
  let createdDb = false;

  const cleanup = async () => {
    client?.close();
    if (server) await stopServer(server);
    server = undefined;
    await db?.close().catch(() => undefined);
    db = undefined;
    await sqlClient?.end().catch(() => undefined);
    sqlClient = undefined;
    await redis
      .connect()
      .catch(() => undefined)
      .then(() => redis.del(stream, `${stream}:dead`))
      .catch(() => undefined);
    redis.disconnect();
    if (options.keepDb === undefined && createdDb) {
      await admin
        .query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)
        .catch((error: unknown) => console.error(error));
      console.log(`dropped database ${dbName}`);
    } else if (options.keepDb !== undefined) {
      await admin.query(`ALTER DATABASE "${dbName}" RESET ALL`).catch(() => undefined);
      console.log(`kept database ${dbName}`);
    }
    await admin.end().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error('\ninterrupted: cleaning up…');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // --- machine
    const pgVersion = (await admin.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
    const settings = Object.fromEntries(
      (
        await admin.query<{ name: string; setting: string; unit: string | null }>(
          `SELECT name, setting, unit FROM pg_settings
            WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost', 'jit', 'max_parallel_workers_per_gather')`,
        )
      ).rows.map((row) => [row.name, `${row.setting}${row.unit ? ` ${row.unit}` : ''}`]),
    );
    const machine = {
      nproc: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      postgres: pgVersion,
      postgresSettings: settings,
      redis: '',
    };
    await redis.connect();
    machine.redis = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
    console.log(
      `machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, Redis ${machine.redis}\n` +
        `         ${pgVersion}\n         ${Object.entries(settings)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}`,
    );
    console.log(`command: npx tsx bench/query/run.ts ${process.argv.slice(2).join(' ')}`.trimEnd());

    // --- database
    const exists =
      (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
    if (!exists) {
      await admin.query(`CREATE DATABASE "${dbName}"`);
      createdDb = true;
      console.log(`created database ${dbName}`);
    } else console.log(`using existing database ${dbName}`);
    const migrateCommand = `DATABASE_URL=${databaseUrl} node bin/auditgraph.mjs migrate`;
    console.log(`$ ${migrateCommand}`);
    await runToEnd(process.execPath, [...NODE_FLAGS, BIN, 'migrate'], {
      ...baseEnv(),
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'warn',
    });

    db = await openDatabase({ kind: 'postgres', url: databaseUrl, poolSize: 4 });
    const meta = await readMeta(admin, dbName);
    const [{ rows: existingRows } = { rows: 0 }] = await db.query<{ rows: number }>(
      'SELECT count(*)::int AS rows FROM (SELECT 1 FROM audit_events LIMIT 1) any_row',
    );
    let loadInfo: LoadMeta;
    if (meta && meta.events === options.events) {
      console.log(
        `database already holds ${meta.events} events loaded ${meta.end} (took ${meta.loadSeconds} s): not loading`,
      );
      loadInfo = meta;
    } else if (existingRows > 0) {
      throw new Error(
        `database ${dbName} holds events but not the ${options.events} of a finished load (${JSON.stringify(meta)}); ` +
          'drop it or choose another --keep-db name',
      );
    } else {
      loadInfo = await load(db, options.events);
      await admin.query(`COMMENT ON DATABASE "${dbName}" IS '${JSON.stringify(loadInfo)}'`);
    }
    const sizes = await db.query<{ relation: string; rows_estimated: string; size: string }>(
      `SELECT relname AS relation, n_live_tup::text AS rows_estimated, pg_size_pretty(pg_total_relation_size(relid)) AS size
         FROM pg_stat_user_tables WHERE relname = 'audit_events' OR relname LIKE 'analytics_%' ORDER BY relname`,
    );
    console.table(sizes);

    // --- the server
    const port = await freePort();
    const serveEnv: NodeJS.ProcessEnv = {
      ...baseEnv(),
      DATABASE_URL: databaseUrl,
      REDIS_URL: options.redisUrl,
      QUEUE_STREAM: stream,
      ADMIN_API_KEY: adminKey,
      PRODUCER_PORT: String(port),
      QUERY_SERVICE_PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      RATE_LIMIT_PER_MINUTE: '10000000',
      AUDITGRAPH_DATA_DIR: dataDir,
    };
    const serveCommand =
      `DATABASE_URL=${databaseUrl} REDIS_URL=${options.redisUrl} QUEUE_STREAM=${stream} ADMIN_API_KEY=<random> ` +
      `PRODUCER_PORT=${port} QUERY_SERVICE_PORT=${port} HOST=127.0.0.1 LOG_LEVEL=warn NODE_ENV=production ` +
      'RATE_LIMIT_PER_MINUTE=10000000 node bin/auditgraph.mjs serve';
    console.log(`$ ${serveCommand}`);
    server = await startServer(serveEnv, port);
    client = createClient(port, adminKey);

    sqlClient = new pg.Client({ connectionString: databaseUrl });
    await sqlClient.connect();
    const sql = sqlClient;
    const queries = createEventQueries({ store: createEventStore(db, { rollups: createRollupFolder(db) }) });
    const analytics = createAnalyticsService({
      store: createAnalyticsStore(db, { rollups: createRollupFolder(db) }),
    });

    // --- fixtures: sessions, the page-1000 positions
    const sessionList = (
      await sql.query<{ s: string }>(
        'SELECT session_id AS s FROM analytics_session_activity ORDER BY session_id',
      )
    ).rows.map((row) => row.s);
    expect(sessionList.length > 0, 'sessions loaded');
    const shuffled = (count: number) =>
      Array.from({ length: count }, () => sessionList[Math.floor(Math.random() * sessionList.length)]!);
    const total = options.warmup + options.samples;
    const sessionsApi = shuffled(total);
    const sessionsSql = shuffled(total);
    const deepFirstSeq = (
      await sql.query<{ seq: string }>(
        'SELECT e.seq::text AS seq FROM audit_events e ORDER BY e.seq DESC OFFSET $1 LIMIT 1',
        [DEEP_OFFSET],
      )
    ).rows[0]!.seq;
    const deepTypeFirstSeq = (
      await sql.query<{ seq: string }>(
        'SELECT e.seq::text AS seq FROM audit_events e WHERE e.event_type = $1 ORDER BY e.seq DESC OFFSET $2 LIMIT 1',
        ['llm_query_sent', DEEP_OFFSET],
      )
    ).rows[0]!.seq;

    // --- quiet machine, then measure
    // This benchmark's own processes: itself, the server, and their PostgreSQL backends.
    const cpu = otherCpu(async () => {
      const backends = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE datname = $1',
        [dbName],
      );
      return [process.pid, ...(server?.pid ? [server.pid] : []), ...backends.rows.map((row) => row.pid)];
    });
    let quiet = await waitQuiet(options, cpu, 'measuring');
    console.log(
      `load average before measuring: ${os
        .loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')}`,
    );

    // Follow next_cursor from page 1 to page 1000, timing each page on the way.
    const walkTimes: number[] = [];
    let cursor: string | null = null;
    let deepCursor = '';
    for (let page = 1; page < DEEP_PAGE; page += 1) {
      const reply = await client.request(
        'GET',
        `/events?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(reply.status === 200, `walk page ${page}: ${reply.status} ${reply.body.slice(0, 200)}`);
      if (page > 1) walkTimes.push(reply.ms);
      cursor = json<RestPage>(reply.body).next_cursor;
      expect(cursor, `page ${page} has a next_cursor`);
      deepCursor = cursor;
    }
    const deepSeq = /^seq:(\d+)$/.exec(Buffer.from(deepCursor, 'base64url').toString('utf8'))?.[1];
    expect(deepSeq, 'cursor decodes to a seq');
    const walk = stats(walkTimes);
    console.log(
      `followed next_cursor pages 1→${DEEP_PAGE}: each page p50 ${ms(walk.p50)} ms, p95 ${ms(walk.p95)} ms, max ${ms(walk.max)} ms`,
    );

    const cases = buildCases({
      sessionsApi,
      sessionsSql,
      deepCursor,
      deepSeq,
      deepFirstSeq,
      deepTypeFirstSeq,
      queries,
      analytics,
    });
    const results: CaseResult[] = [];
    for (const testCase of cases) {
      let result: CaseResult | undefined;
      for (let attempt = 1; attempt <= 3 && result === undefined; attempt += 1) {
        const quietBefore = await waitQuiet(options, cpu, testCase.label);
        const measured = await measureCase(testCase, client, sql, options, cpu);
        const ingest = ingestBenchRunning();
        const contended = ingest || measured.otherCores > options.maxOtherCores;
        if (quietBefore && contended && attempt < 3) {
          console.warn(
            `!! ${ingest ? `${INGEST_BENCH} started` : `other processes used ${measured.otherCores.toFixed(2)} cores`} ` +
              `during "${testCase.label}": measuring it again`,
          );
          continue;
        }
        if (contended) quiet = false;
        result = { ...measured, contended, attempts: attempt };
      }
      results.push(result!);
      printRow(result!);
    }

    // Alternatives the service could issue, bare.
    const alternatives: Array<{ id: string; label: string; query: string; stats: Stats }> = [];
    for (const alternative of alternativeQueries(deepSeq)) {
      await waitQuiet(options, cpu, alternative.label);
      for (let i = 0; i < options.warmup; i += 1) await runStatements(sql, alternative.statements);
      const times: number[] = [];
      for (let i = 0; i < options.samples; i += 1) {
        const started = performance.now();
        await runStatements(sql, alternative.statements);
        times.push(performance.now() - started);
      }
      alternatives.push({
        id: alternative.id,
        label: alternative.label,
        query: alternative.statements.map((statement) => statement.text.replace(/\s+/g, ' ')).join('; '),
        stats: stats(times),
      });
    }

    // Rollups against live SQL: the same answer?
    const agreement = await compareAnalytics(client, sql);

    // --- report
    const header = [
      'case',
      'API p50',
      'p95',
      'max',
      'in-proc p50',
      'p95',
      'bare SQL p50',
      'p95',
      'API÷SQL',
      'target p95',
      'met',
      'others',
    ];
    const rows = results.map((result) => [
      result.label + (result.contended ? ' (contended)' : ''),
      ms(result.api.p50),
      ms(result.api.p95),
      ms(result.api.max),
      ms(result.inProcess?.p50),
      ms(result.inProcess?.p95),
      ms(result.sql.p50),
      ms(result.sql.p95),
      `${result.ratio >= 10 ? result.ratio.toFixed(0) : result.ratio >= 0.1 ? result.ratio.toFixed(2) : result.ratio.toFixed(4)}×`,
      result.targetMs === null ? '—' : `< ${result.targetMs}`,
      result.met === null ? '—' : result.met ? 'yes' : 'NO',
      result.otherCores.toFixed(2),
    ]);
    console.log(
      `\nResults: ${loadInfo.events.toLocaleString('en-US')} events over ${SPAN_DAYS} days, ${options.samples} sequential requests per case ` +
        `after ${options.warmup} warm-up (live-SQL rows: ${options.slowSamples} runs after 1 warm-up); times in ms, client-side; ` +
        '"others": cores used by other processes on the machine meanwhile.\n',
    );
    console.log(markdownTable(header, rows));
    console.log('\nBare SQL for each case (pg, one connection, client-side time):');
    for (const result of results)
      console.log(`  ${result.label}:\n    ${result.sql.query.replace(/\n/g, '\n    ')}`);
    console.log('\nAlternatives, bare SQL (not what the service issues today):');
    console.log(
      markdownTable(
        ['query', 'p50', 'p95', 'max'],
        alternatives.map((alternative) => [
          alternative.label,
          ms(alternative.stats.p50),
          ms(alternative.stats.p95),
          ms(alternative.stats.max),
        ]),
      ),
    );
    console.log('\nRollups (API) against the live SQL, same window:');
    for (const line of agreement) console.log(`  ${line}`);

    // --- plans of the service's own queries
    let plansFile: string | null = null;
    if (options.explain) {
      await waitQuiet(options, cpu, 'the auto_explain pass');
      client.close();
      client = undefined;
      await stopServer(server);
      server = undefined;
      plansFile = await capturePlans({
        admin,
        dbName,
        pgLog: options.pgLog,
        env: serveEnv,
        port,
        adminKey,
        cases,
      });
    }

    const output = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      command: `npx tsx bench/query/run.ts ${process.argv.slice(2).join(' ')}`.trimEnd(),
      commands: { migrate: migrateCommand, serve: serveCommand },
      machine,
      quiet,
      database: { name: dbName, kept: options.keepDb !== undefined, load: loadInfo, sizes },
      method: {
        samples: options.samples,
        warmup: options.warmup,
        slowSamples: options.slowSamples,
        http: 'node:http, one keep-alive connection, sequential; time to the last byte of the body',
        inProcess:
          'createEventQueries / createAnalyticsService from src/ on a pool of 4, in the benchmark process',
        sql: 'pg.Client, one connection, parameterized (extended protocol), client-side time',
        interleaving: 'per sample: API, in-process, SQL (live-SQL rows: their runs after the API samples)',
      },
      cursorWalk: { pages: `2..${DEEP_PAGE}`, ...roundStats(walk) },
      cases: results.map((result) => ({
        ...result,
        api: roundStats(result.api),
        inProcess: result.inProcess ? roundStats(result.inProcess) : null,
        sql: { ...roundStats(result.sql), label: result.sql.label, query: result.sql.query },
        ratio: round3(result.ratio),
      })),
      alternatives: alternatives.map((alternative) => ({
        ...alternative,
        stats: roundStats(alternative.stats),
      })),
      analyticsAgreement: agreement,
      plansFile,
    };
    writeFileSync(options.out, `${JSON.stringify(output, null, 2)}\n`);
    console.log(`\nwrote ${path.relative(ROOT, options.out)}${plansFile ? ` and ${plansFile}` : ''}`);
    if (!quiet)
      console.warn(`!! ${INGEST_BENCH} was running during part of the measurement: see "quiet": false`);
  } finally {
    if (!interrupted) await cleanup();
  }
}

const roundStats = (value: Stats) => ({
  n: value.n,
  p50: round3(value.p50),
  p95: round3(value.p95),
  max: round3(value.max),
  mean: round3(value.mean),
});

function printRow(result: CaseResult): void {
  console.log(
    `  ${result.label.padEnd(58)} API p50 ${ms(result.api.p50).padStart(6)} p95 ${ms(result.api.p95).padStart(6)} max ${ms(result.api.max).padStart(6)}` +
      ` | in-proc p50 ${ms(result.inProcess?.p50).padStart(6)} | SQL p50 ${ms(result.sql.p50).padStart(7)} p95 ${ms(result.sql.p95).padStart(7)}` +
      (result.met === null ? '' : result.met ? '  ok' : '  MISSED'),
  );
}

async function measureCase(
  testCase: Case,
  client: Client,
  sql: pg.Client,
  options: Options,
  cpu: OtherCpu,
): Promise<Omit<CaseResult, 'contended' | 'attempts'>> {
  const callApi = async (sample: number): Promise<number> => {
    const call = testCase.api(sample);
    const reply = await client.request(call.method, call.path, call.body);
    if (reply.status !== 200)
      throw new Error(`${testCase.label}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`);
    testCase.check(json(reply.body), sample);
    return reply.ms;
  };
  const callInProcess = async (sample: number): Promise<number | undefined> => {
    if (!testCase.inProcess) return undefined;
    const started = performance.now();
    await testCase.inProcess(sample);
    return performance.now() - started;
  };
  const callSql = async (sample: number): Promise<number> => {
    const { statements } = testCase.sql.call(sample);
    const started = performance.now();
    for (const statement of statements) await sql.query(statement.text, statement.params);
    return performance.now() - started;
  };

  const apiTimes: number[] = [];
  const inProcessTimes: number[] = [];
  const sqlTimes: number[] = [];
  const slow = testCase.sql.slow === true;
  for (let sample = 0; sample < options.warmup + options.samples; sample += 1) {
    const timed = sample >= options.warmup;
    if (sample === options.warmup) await cpu.start();
    const api = await callApi(sample);
    const inProcess = await callInProcess(sample);
    if (timed) {
      apiTimes.push(api);
      if (inProcess !== undefined) inProcessTimes.push(inProcess);
    }
    if (!slow) {
      const bare = await callSql(sample);
      if (timed) sqlTimes.push(bare);
    }
  }
  // The slow SQL's parallel workers come and go: the other processes' share covers the part before it.
  const otherCores = await cpu.stop();
  if (slow) {
    await callSql(0);
    for (let run = 0; run < options.slowSamples; run += 1) sqlTimes.push(await callSql(run));
  }
  const api = stats(apiTimes);
  const sqlStats = stats(sqlTimes);
  const targetMs = testCase.targetMs ?? null;
  return {
    id: testCase.id,
    label: testCase.label,
    targetMs,
    api,
    inProcess: inProcessTimes.length > 0 ? stats(inProcessTimes) : null,
    sql: { ...sqlStats, label: testCase.sql.label, query: testCase.sql.text },
    ratio: api.p50 / sqlStats.p50,
    met: targetMs === null ? null : api.p95 < targetMs,
    otherCores: round3(otherCores),
  };
}

/** Totals from the rollups (through the API) beside the same totals computed live, for one window. */
async function compareAnalytics(client: Client, sql: pg.Client): Promise<string[]> {
  const lines: string[] = [];
  for (const days of [7, 30]) {
    const usage = json<{ window: { from: string }; total_events: number; distinct_sessions: number }>(
      (await client.request('GET', `/analytics/usage?days=${days}`)).body,
    );
    const llm = json<{ totals: { responses: number; tokens: { prompt: number } } }>(
      (await client.request('GET', `/analytics/llm?days=${days}`)).body,
    );
    const perf = json<{ review_duration_ms: { samples: number; p95: number | null } }>(
      (await client.request('GET', `/analytics/performance?days=${days}`)).body,
    );
    const from = new Date(usage.window.from);
    const live = (
      await sql.query<{
        events: string;
        sessions: string;
        responses: string;
        prompt: string;
        reviews: string;
        review_p95: number;
      }>(
        `SELECT count(*)::text AS events, count(DISTINCT session_id)::text AS sessions,
                count(*) FILTER (WHERE event_type = 'llm_feedback_received')::text AS responses,
                COALESCE(sum((payload ->> 'prompt_tokens')::bigint) FILTER (WHERE event_type = 'llm_feedback_received'), 0)::text AS prompt,
                count(*) FILTER (WHERE event_type = 'review_completed')::text AS reviews,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY (payload ->> 'duration_ms')::float8)
                  FILTER (WHERE event_type = 'review_completed') AS review_p95
           FROM audit_events WHERE received_at >= $1`,
        [from],
      )
    ).rows[0]!;
    const same = (a: number, b: string) => (a === Number(b) ? 'equal' : `DIFFER (${a} vs ${b})`);
    const p95Error =
      perf.review_duration_ms.p95 === null ? NaN : perf.review_duration_ms.p95 / live.review_p95 - 1;
    lines.push(
      `days=${days} (from ${from.toISOString()}): events ${usage.total_events} ${same(usage.total_events, live.events)}; ` +
        `sessions ${usage.distinct_sessions} ${same(usage.distinct_sessions, live.sessions)}; ` +
        `LLM responses ${same(llm.totals.responses, live.responses)}; prompt tokens ${same(llm.totals.tokens.prompt, live.prompt)}; ` +
        `review durations ${same(perf.review_duration_ms.samples, live.reviews)}, p95 ${perf.review_duration_ms.p95} ms vs exact ${live.review_p95} ms ` +
        `(${(p95Error * 100).toFixed(2)} %)`,
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------
// Loading

async function readMeta(admin: pg.Client, dbName: string): Promise<LoadMeta | null> {
  const { rows } = await admin.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
    [dbName],
  );
  try {
    const meta = JSON.parse(rows[0]?.comment ?? 'null') as LoadMeta | null;
    return meta?.bench === 'query' ? meta : null;
  } catch {
    return null;
  }
}

/** Loads `total` events through `insertBatch`, generating the next batch while PostgreSQL stores the last. */
async function load(db: Database, total: number): Promise<LoadMeta> {
  const store = createEventStore(db, { rollups: createRollupFolder(db) });
  const end = Date.now();
  const started = performance.now();
  let inserted = 0;
  let pending: Promise<{ inserted: number }> | undefined;
  let lastReport = started;
  console.log(
    `loading ${total.toLocaleString('en-US')} events through createEventStore(db).insertBatch, ${BATCH} per batch…`,
  );
  for (let first = 0; first < total; first += BATCH) {
    const events: NewEvent[] = [];
    for (let index = first; index < Math.min(total, first + BATCH); index += 1)
      events.push(makeEvent(index, total, end));
    if (pending) inserted += (await pending).inserted;
    pending = store.insertBatch(events);
    const now = performance.now();
    if (now - lastReport > 15_000) {
      lastReport = now;
      const seconds = (now - started) / 1000;
      console.log(
        `  ${first.toLocaleString('en-US')} events in ${seconds.toFixed(0)} s (${Math.round(first / seconds)} rows/s)`,
      );
    }
  }
  if (pending) inserted += (await pending).inserted;
  const loadSeconds = Math.round((performance.now() - started) / 1000);
  expect(inserted === total, `inserted ${inserted} of ${total}`);
  console.log(
    `loaded ${inserted.toLocaleString('en-US')} events in ${loadSeconds} s (${Math.round(inserted / loadSeconds)} rows/s); VACUUM ANALYZE…`,
  );
  const vacuumStarted = performance.now();
  await db.query('VACUUM ANALYZE');
  console.log(`  VACUUM ANALYZE took ${((performance.now() - vacuumStarted) / 1000).toFixed(0)} s`);
  return {
    bench: 'query',
    events: total,
    sessions: SESSIONS,
    spanDays: SPAN_DAYS,
    end: new Date(end).toISOString(),
    loadSeconds,
    seed: SEED,
  };
}

// ---------------------------------------------------------------------------
// The server

async function startServer(env: NodeJS.ProcessEnv, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...NODE_FLAGS, BIN, 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    process.stderr.write(`[serve] ${chunk.toString()}`);
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}:\n${output}`);
    const ready = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/health/ready' }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
    });
    if (ready) return child;
    await sleep(200);
  }
  child.kill('SIGKILL');
  throw new Error(`serve not ready after 60 s:\n${output}`);
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------
// Plans: auto_explain on this database only, one request per case

async function capturePlans(input: {
  admin: pg.Client;
  dbName: string;
  pgLog: string;
  env: NodeJS.ProcessEnv;
  port: number;
  adminKey: string;
  cases: Case[];
}): Promise<string | null> {
  const { admin, dbName, pgLog } = input;
  const logSize = async (): Promise<number | null> => {
    try {
      return Number(
        (await admin.query<{ size: string }>('SELECT size::text FROM pg_stat_file($1)', [pgLog])).rows[0]!
          .size,
      );
    } catch {
      return null;
    }
  };
  if ((await logSize()) === null) {
    console.warn(`!! cannot read ${pgLog} through pg_stat_file: skipping the plans (use --pg-log PATH)`);
    return null;
  }
  console.log(
    `\nplans: auto_explain on ${dbName} only (ALTER DATABASE … SET session_preload_libraries), one request per case…`,
  );
  for (const setting of [
    `session_preload_libraries = 'auto_explain'`,
    'auto_explain.log_min_duration = 0',
    'auto_explain.log_analyze = on',
    'auto_explain.log_buffers = on',
    'auto_explain.log_timing = on',
  ]) {
    await admin.query(`ALTER DATABASE "${dbName}" SET ${setting}`);
  }
  let server: ChildProcess | undefined;
  const sections: string[] = [
    `# Plans of the queries auditgraph serve issued for each case (auto_explain, log_analyze, buffers),`,
    `# captured ${new Date().toISOString()} on ${dbName}. The second of two identical requests is shown`,
    `# (the first warms the connection); readiness probes are left out.`,
    '',
  ];
  try {
    server = await startServer(input.env, input.port);
    const client = createClient(input.port, input.adminKey);
    for (const testCase of input.cases) {
      if (testCase.id === 'health') continue;
      const call = testCase.api(0);
      await client.request(call.method, call.path, call.body);
      await sleep(300);
      const before = (await logSize())!;
      const reply = await client.request(call.method, call.path, call.body);
      await sleep(500);
      const after = (await logSize())!;
      const text =
        after > before
          ? (
              await admin.query<{ text: string }>('SELECT pg_read_file($1, $2, $3) AS text', [
                pgLog,
                before,
                after - before,
              ])
            ).rows[0]!.text
          : '';
      const plans = extractPlans(text, dbName).filter((plan) => !/Query Text: SELECT 1\b/.test(plan));
      sections.push(
        `## ${testCase.label}  (${call.method} ${call.path}, HTTP ${reply.status} in ${ms(reply.ms)} ms with auto_explain on)`,
        '',
        ...(plans.length > 0 ? plans.map((plan) => `${plan}\n`) : ['(no plan logged)\n']),
      );
    }
    client.close();
  } finally {
    if (server) await stopServer(server);
    await admin.query(`ALTER DATABASE "${dbName}" RESET ALL`);
  }
  const file = path.join(HERE, 'plans.txt');
  writeFileSync(file, `${sections.join('\n')}\n`);
  return path.relative(ROOT, file);
}

/** The auto_explain messages of one database in a slice of the server log, each with its continuation lines. */
function extractPlans(log: string, dbName: string): string[] {
  const plans: string[] = [];
  let current: string[] | undefined;
  for (const line of log.split('\n')) {
    if (/^\d{4}-\d\d-\d\d /.test(line)) {
      if (current) plans.push(current.join('\n'));
      current =
        line.includes(`@${dbName} LOG:  duration:`) && line.includes('plan:')
          ? [line.replace(/^.*LOG:\s+/, '')]
          : undefined;
    } else if (current && line.trim() !== '') {
      current.push(line.replace(/^\t/, '  '));
    }
  }
  if (current) plans.push(current.join('\n'));
  return plans;
}

await main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
