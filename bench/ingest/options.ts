/** The ingest bench's options: flags, then BENCH_* variables, then defaults (smaller with --quick). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { wrkInstalled as isWrkInstalled } from '../support/load-tool.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export type Phase = 'http' | 'empty' | 'preloaded' | 'instructions';

export interface Options {
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

export function parseOptions(argv: readonly string[]): Options {
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
  const wrkInstalled = isWrkInstalled();
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
