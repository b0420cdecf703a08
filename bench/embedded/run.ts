/**
 * Embedded-mode ingest benchmark: what does the on-disk queue (fsync before each 202) cost
 * `POST /log`? In one run, with the same load tool and connections, alternating each round:
 *
 *   bare          bench/ingest/bare-server.ts: reads the POST, answers 202 (the ceiling of one Node process)
 *   memory-api    embedded API with the in-memory queue (the embedded mode before the on-disk queue), no worker
 *   disk-api      embedded API with the on-disk queue, no worker: the queue's own cost beside memory-api
 *   memory        `auditgraph all` embedded with the in-memory queue, its worker storing into PGlite meanwhile
 *   disk          `auditgraph all` embedded as `npm start` runs it: PGlite and the on-disk queue
 *
 * The `all` targets run their worker in the same process, as a real embedded process does: PGlite
 * runs on the process's one JavaScript thread, so storing takes most of it. Each embedded round
 * starts on a fresh data folder (under --data-parent) and is killed afterwards (its backlog is of
 * no interest).
 *
 * Run: `npx tsx bench/embedded/run.ts [--quick] [--help]`. Prints a table and writes
 * bench/embedded/results.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { cpuSecondsOf } from '../support/cpu.js';
import {
  HTTP_BODY,
  loadCommand,
  loadErrors,
  loadResultOf,
  wrkInstalled,
  type LoadTool,
} from '../support/load-tool.js';
import { freePort } from '../support/ports.js';
import { ROOT, spawnChild, waitForHttp, type Child } from '../support/processes.js';
import { writeResults } from '../support/results.js';
import { median } from '../support/stats.js';
import { markdownTable } from '../support/table.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const INGEST = path.join(ROOT, 'bench/ingest');

const HELP = `Usage: npx tsx bench/embedded/run.ts [options]

  --quick               1 round, 2 s warm-up, 8 s measured per target
  --rounds N            rounds, each measuring every target in turn; medians reported (default 3)
  --warmup S            warm-up seconds per target (default 3)
  --duration S          measured seconds per target (default 10)
  --connections N       HTTP connections (default 64)
  --load-tool wrk|node  load generator (default wrk when installed, else bench/ingest/node-load.ts)
  --only LIST           targets to run, comma-separated (default all: bare,memory-api,disk-api,memory,disk)
  --data-parent DIR     where the data folders are made (default the OS temp dir): put it on the disk to measure
  --out FILE            results file (default bench/embedded/results.json)
`;

interface Options {
  targets: Target[];
  rounds: number;
  warmupS: number;
  durationS: number;
  connections: number;
  loadTool: LoadTool;
  dataParent: string;
  out: string;
}

function parseOptions(argv: readonly string[]): Options {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i]!.replace(/^--/, '');
    if (name === 'help') {
      console.log(HELP);
      process.exit(0);
    }
    if (name === 'quick') flags.set('quick', 'true');
    else if (argv[i + 1] === undefined) throw new Error(`--${name} needs a value\n\n${HELP}`);
    else flags.set(name, argv[(i += 1)]!);
  }
  const quick = flags.has('quick');
  const number = (name: string, fallback: number) => {
    const value = Number(flags.get(name) ?? fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  const loadTool = (flags.get('load-tool') ?? (wrkInstalled() ? 'wrk' : 'node')) as LoadTool;
  if (loadTool !== 'wrk' && loadTool !== 'node') throw new Error('--load-tool must be wrk or node');
  const targets = (flags.get('only')?.split(',') ?? TARGETS) as Target[];
  const unknown = targets.filter((target) => !TARGETS.includes(target));
  if (unknown.length > 0) throw new Error(`--only: unknown target ${unknown.join(', ')}\n\n${HELP}`);
  return {
    targets,
    rounds: number('rounds', quick ? 1 : 3),
    warmupS: number('warmup', quick ? 2 : 3),
    durationS: number('duration', quick ? 8 : 10),
    connections: number('connections', 64),
    loadTool,
    dataParent: flags.get('data-parent') ?? os.tmpdir(),
    out: flags.get('out') ?? path.join(HERE, 'results.json'),
  };
}

type Target = 'bare' | 'memory-api' | 'disk-api' | 'memory' | 'disk';
const TARGETS: Target[] = ['bare', 'memory-api', 'disk-api', 'memory', 'disk'];
/** The target each one is compared with: the same process with the in-memory queue. */
const BEFORE: Partial<Record<Target, Target>> = { 'disk-api': 'memory-api', disk: 'memory' };

const children = new Set<Child>();
const commands: string[] = [];

function startChild(file: string, args: string[], env: Record<string, string>, record = true): Child {
  if (record)
    commands.push(
      `${Object.entries(env)
        .map(
          ([name, value]) =>
            `${name}=${name.includes('KEY') ? '<key>' : name === 'BENCH_BODY' ? "'<225-byte body>'" : value}`,
        )
        .join(
          ' ',
        )} ${path.basename(file)} ${args.map((arg) => (path.isAbsolute(arg) ? path.relative(ROOT, arg) : arg)).join(' ')}`,
    );
  const child = spawnChild(path.basename(file), file, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

interface Measured {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** The server's CPU time (all its threads) per answered request: steadier than req/s on a busy machine. */
  cpuUsPerRequest: number;
}

const cpuSeconds = (pid: number) => cpuSecondsOf(pid) ?? Number.NaN;

async function runLoad(options: Options, url: string, durationS: number, apiKey: string, record: boolean) {
  const env = { BENCH_BODY: HTTP_BODY, BENCH_API_KEY: apiKey };
  const [file, args] = loadCommand(options.loadTool, {
    url,
    connections: options.connections,
    threads: 1,
    durationS,
  });
  const child = startChild(file, args, env, record);
  await child.exited;
  const result = loadResultOf(child.output);
  if (!result) throw new Error(`the load generator printed no result:\n${child.output.slice(-2000)}`);
  return {
    rps: (result.requests - result.errors_status) / (result.duration_us / 1e6),
    p50Ms: result.lat_p50_us / 1000,
    p99Ms: result.lat_p99_us / 1000,
    errors: loadErrors(result),
    answered: result.requests - result.errors_status,
  };
}

async function measure(options: Options, target: Target, round: number): Promise<Measured> {
  const port = await freePort();
  const apiKey = `bench_${randomBytes(16).toString('hex')}`;
  const record = round === 0;
  let dataDir: string | undefined;
  let server: Child;
  if (target === 'bare') {
    server = startChild(
      process.execPath,
      [...NODE_FLAGS, '--import', 'tsx', path.join(INGEST, 'bare-server.ts')],
      { PORT: String(port) },
      record,
    );
  } else {
    const queue = target.startsWith('memory') ? 'memory' : 'disk';
    dataDir = mkdtempSync(path.join(options.dataParent, `ag-bench-embedded-${target}-`));
    server = startChild(
      process.execPath,
      [...NODE_FLAGS, '--import', 'tsx', path.join(HERE, 'server.ts')],
      {
        BENCH_QUEUE: queue,
        BENCH_ROLE: target.endsWith('-api') ? 'serve' : 'all',
        AUDITGRAPH_DATA_DIR: dataDir,
        ADMIN_API_KEY: apiKey,
        PRODUCER_PORT: String(port),
        QUERY_SERVICE_PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        NODE_ENV: 'production',
        // The in-process worker stores more slowly than POST /log accepts: a full queue would answer 503s.
        QUEUE_MAX_LENGTH: '100000000',
        RATE_LIMIT_PER_MINUTE: '10000000',
      },
      record,
    );
  }
  try {
    await waitForHttp(
      target === 'bare' ? `http://127.0.0.1:${port}/` : `http://127.0.0.1:${port}/health/ready`,
      { child: server, timeoutMs: 90_000 },
    );
    const url = `http://127.0.0.1:${port}/log`;
    await runLoad(options, url, options.warmupS, apiKey, false);
    const cpuBefore = cpuSeconds(server.proc.pid!);
    const { answered, ...result } = await runLoad(options, url, options.durationS, apiKey, record);
    const cpuUsPerRequest = ((cpuSeconds(server.proc.pid!) - cpuBefore) * 1e6) / Math.max(1, answered);
    return { ...result, cpuUsPerRequest };
  } finally {
    // Killed: an embedded target's backlog is of no interest here.
    server.proc.kill('SIGKILL');
    await server.exited;
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

/** The median time of an append and fdatasync of one 300-byte record in the data parent: what a group commit waits on. */
async function fsyncLatencyMs(dataParent: string): Promise<number> {
  const dir = mkdtempSync(path.join(dataParent, 'ag-bench-fsync-'));
  try {
    const handle = await open(path.join(dir, 'probe'), 'a');
    const times: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      const started = performance.now();
      await handle.write(Buffer.alloc(300, 'x'));
      await handle.datasync();
      times.push(performance.now() - started);
    }
    await handle.close();
    return median(times);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const fsyncMs = await fsyncLatencyMs(options.dataParent);
  const { targets } = options;
  const rounds = Object.fromEntries(targets.map((target) => [target, [] as Measured[]])) as Record<
    Target,
    Measured[]
  >;
  for (let round = 0; round < options.rounds; round += 1) {
    for (const target of targets) {
      const result = await measure(options, target, round);
      rounds[target].push(result);
      console.log(
        `round ${round + 1}/${options.rounds} ${target.padEnd(10)} ${Math.round(result.rps)} req/s, p99 ${result.p99Ms.toFixed(2)} ms, ${Math.round(result.cpuUsPerRequest)} µs CPU/request, errors ${result.errors}`,
      );
    }
  }
  const summary = Object.fromEntries(
    targets.map((target) => [
      target,
      {
        rps: median(rounds[target].map((result) => result.rps)),
        p50Ms: median(rounds[target].map((result) => result.p50Ms)),
        p99Ms: median(rounds[target].map((result) => result.p99Ms)),
        errors: rounds[target].reduce((sum, result) => sum + result.errors, 0),
        cpuUsPerRequest: median(rounds[target].map((result) => result.cpuUsPerRequest)),
      },
    ]),
  ) as Record<Target, Measured>;
  const label: Record<Target, string> = {
    bare: 'bare node:http (202, nothing else)',
    'memory-api': 'embedded API, in-memory queue, no worker',
    'disk-api': 'embedded API, on-disk queue, no worker',
    memory: 'embedded all, in-memory queue (before)',
    disk: 'embedded all, on-disk queue (npm start)',
  };
  const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
  const table = markdownTable(
    ['target', 'req/s', 'p50 ms', 'p99 ms', 'of bare', 'of in-memory queue', 'CPU µs/request', 'errors'],
    targets.map((target) => {
      const result = summary[target];
      return [
        label[target],
        String(Math.round(result.rps)),
        result.p50Ms.toFixed(2),
        result.p99Ms.toFixed(2),
        summary.bare ? percent(result.rps / summary.bare.rps) : '',
        summary[BEFORE[target]!] ? percent(result.rps / summary[BEFORE[target]!].rps) : '',
        String(Math.round(result.cpuUsPerRequest)),
        String(result.errors),
      ];
    }),
  );
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores; fdatasync of 300 bytes in ${options.dataParent}: ${fsyncMs.toFixed(2)} ms (median)`;
  console.log(
    `\n${table}\n\n${options.rounds} round(s) of ${options.durationS} s per target (medians), ${options.connections} connections, ${options.loadTool}\n${machine}\n\nCommands run:\n${commands.map((command) => `  ${command}`).join('\n')}`,
  );
  writeResults(options.out, { date: new Date().toISOString(), machine, options, summary, rounds, commands });
}

const cleanUp = () => {
  for (const child of children) child.proc.kill('SIGKILL');
};
process.on('SIGINT', () => {
  cleanUp();
  process.exit(130);
});
await main().catch((error: unknown) => {
  cleanUp();
  console.error(error);
  process.exitCode = 1;
});
