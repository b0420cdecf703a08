import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { expect } from 'vitest';
import { compareDelivery, type DeliveryReport, type LoadResult } from './fault-load.js';
import {
  eventually,
  freePort,
  startPostgresCluster,
  startRedisServer,
  type PostgresCluster,
  type RedisServer,
} from './fault-services.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from './processes.js';

/**
 * One fault case's whole deployment: its own PostgreSQL cluster and Redis
 * (append-only, fsync always), API processes and workers started as an
 * operator would, and the checks every case ends with.
 */
export interface FaultStack {
  postgres: PostgresCluster;
  redis: RedisServer;
  /** A connection to the case's Redis for inspection (reconnects by itself). */
  redisClient: Redis;
  stream: string;
  adminKey: string;
  env: Record<string, string>;
  /** Starts `auditgraph serve` on a fresh port; resolves once it is ready. */
  startApi(port?: number, env?: Record<string, string>): Promise<ApiProcess>;
  /** Starts `auditgraph worker`; resolves once its /health/ready answers 200. */
  startWorker(env?: Record<string, string>): Promise<WorkerProcess>;
  /** Rows in audit_events: id and the load's sequence number. */
  storedRows(): Promise<Array<{ id: string; n: number | null }>>;
  /** Ids of the stored events after `seq`, in seq order: what a gap-free live feed delivers. */
  storedIdsAfter(seq: string): Promise<string[]>;
  storedCount(): Promise<number>;
  /**
   * Waits until every accepted event is stored and the stream is empty (so
   * nothing more can arrive), then compares: exactly once, nothing lost.
   */
  settle(
    load: Pick<LoadResult, 'acceptedIds' | 'attemptedIds' | 'refusedOnlyIds'>,
    timeoutMs?: number,
  ): Promise<DeliveryReport>;
  /**
   * What every case ends with: {@link settle}, then no unexpected answer and
   * none unresolved, every accepted event stored exactly once (nothing lost,
   * duplicated or stored though refused), no process crashed, and
   * `auditgraph verify` passing where it exists.
   */
  expectExactlyOnce(
    load: LoadResult,
    timeoutMs?: number,
  ): Promise<{ delivery: DeliveryReport; verified: VerifyOutcome }>;
  /** Runs `auditgraph keys create <args>` and returns the secret it prints. */
  createKey(args: string[]): Promise<string>;
  /** What each auditgraph process that exited without being killed by the test printed. */
  crashes(): string[];
  /** The integrity check of issue 6, when the command exists: see {@link verifyIntegrity}. */
  verify(): Promise<VerifyOutcome>;
  destroy(): Promise<void>;
}

export interface ApiProcess {
  proc: AuditgraphProcess;
  port: number;
  url: string;
}

export interface WorkerProcess {
  proc: AuditgraphProcess;
  metricsUrl: string;
}

export type VerifyOutcome =
  { ran: false; why: string } | { ran: true; code: number | string; output: string };

export async function startFaultStack(
  options: { env?: Record<string, string>; appendfsync?: 'always' | 'everysec' } = {},
): Promise<FaultStack> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const postgres = await startPostgresCluster();
  cleanups.push(() => postgres.destroy());
  let redis: RedisServer;
  try {
    redis = await startRedisServer({ appendfsync: options.appendfsync ?? 'always' });
  } catch (error) {
    await postgres.destroy();
    throw error;
  }
  cleanups.push(() => redis.destroy());

  const stream = 'ag-fault:events';
  const adminKey = `fault_${randomBytes(16).toString('hex')}`;
  const env: Record<string, string> = {
    DATABASE_URL: postgres.databaseUrl,
    DATABASE_POOL_SIZE: '4',
    REDIS_URL: redis.url,
    QUEUE_STREAM: stream,
    ADMIN_API_KEY: adminKey,
    // Durability, not the limiter, unless a case says otherwise.
    RATE_LIMIT_PER_MINUTE: '10000000',
    WORKER_CLAIM_IDLE_MS: '2000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...options.env,
  };
  const processes: AuditgraphProcess[] = [];
  const crashes: string[] = [];
  let tearingDown = false;
  /** Spawns a role, recording its output if it ever exits without the test having killed it. */
  const spawnRole = (role: string, roleEnv: Record<string, string>) => {
    const proc = spawnAuditgraph(role, roleEnv);
    let killedByTest = false;
    const kill = proc.kill;
    proc.kill = (signal) => {
      killedByTest = true;
      kill(signal);
    };
    void proc.exited.then((code) => {
      if (!killedByTest && !tearingDown) crashes.push(`${role} exited (${code}):\n${proc.output()}`);
    });
    processes.push(proc);
    return proc;
  };
  cleanups.push(async () => {
    tearingDown = true;
    for (const proc of processes) proc.kill('SIGKILL');
    await Promise.all(processes.map((proc) => proc.exited));
  });

  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: 2, retryStrategy: () => 200 });
  redisClient.on('error', () => undefined);
  cleanups.push(async () => redisClient.disconnect());
  const db = new pg.Pool({ connectionString: postgres.databaseUrl, max: 2 });
  db.on('error', () => undefined);
  cleanups.push(() => db.end());

  const stack: FaultStack = {
    postgres,
    redis,
    redisClient,
    stream,
    adminKey,
    env,
    async startApi(port, extraEnv = {}) {
      const apiPort = port ?? (await freePort());
      const proc = spawnRole('serve', {
        ...env,
        PRODUCER_PORT: String(apiPort),
        QUERY_SERVICE_PORT: String(apiPort),
        ...extraEnv,
      });
      const url = `http://127.0.0.1:${apiPort}`;
      await waitUntilReady(`${url}/health/ready`, proc);
      return { proc, port: apiPort, url };
    },
    async startWorker(extraEnv = {}) {
      const metricsPort = await freePort();
      const proc = spawnRole('worker', { ...env, METRICS_PORT: String(metricsPort), ...extraEnv });
      const metricsUrl = `http://127.0.0.1:${metricsPort}`;
      await waitUntilReady(`${metricsUrl}/health/ready`, proc);
      return { proc, metricsUrl };
    },
    async storedRows() {
      const { rows } = await db.query<{ id: string; n: string | null }>(
        "SELECT id::text AS id, payload->>'n' AS n FROM audit_events",
      );
      return rows.map((row) => ({ id: row.id, n: row.n === null ? null : Number(row.n) }));
    },
    async storedIdsAfter(seq) {
      const { rows } = await db.query<{ id: string }>(
        'SELECT id::text AS id FROM audit_events WHERE seq > $1::bigint ORDER BY seq',
        [seq],
      );
      return rows.map((row) => row.id);
    },
    async storedCount() {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
      return rows[0]!.n;
    },
    async settle(load, timeoutMs = 90_000) {
      const accepted = [...load.acceptedIds.keys()];
      await eventually(
        async () => {
          const { rows } = await db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM audit_events WHERE id = ANY($1::uuid[])',
            [accepted],
          );
          // Acknowledged entries are deleted: an empty stream means nothing more can arrive.
          return rows[0]!.n >= accepted.length && (await redisClient.xlen(stream)) === 0 ? true : undefined;
        },
        timeoutMs,
        `${accepted.length} accepted events stored and an empty stream`,
        200,
      ).catch((error: unknown) => {
        // Report what is missing rather than only that time ran out.
        if (!(error instanceof Error)) throw error;
      });
      return compareDelivery(load, await stack.storedRows());
    },
    async expectExactlyOnce(load, timeoutMs) {
      const delivery = await stack.settle(load, timeoutMs);
      expect(load.unexpected).toEqual([]);
      expect(load.unresolvedIds.size).toBe(0);
      expect(delivery).toMatchObject({ missing: [], duplicated: [], unexpected: [], storedButRefused: [] });
      expect(delivery.stored).toBe(load.accepted);
      expect(crashes).toEqual([]);
      const verified = await stack.verify();
      expect(verified).toMatchObject({ ran: true, code: 0 });
      return { delivery, verified };
    },
    async createKey(args) {
      const proc = spawnAuditgraph(['keys', 'create', ...args], env);
      const code = await proc.exited;
      if (code !== 0) throw new Error(`keys create exited (${code}):\n${proc.output()}`);
      return proc.stdout().trim().split('\n').at(-1)!;
    },
    crashes: () => [...crashes],
    verify: () => verifyIntegrity(env),
    async destroy() {
      for (const crash of crashes) console.error(`auditgraph process crashed during the case: ${crash}`);
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    },
  };
  return stack;
}

const CLI_SOURCE = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const INTEGRITY_DIR = fileURLToPath(new URL('../../src/integrity', import.meta.url));

/**
 * `auditgraph verify` against the case's database: every fault case ends with
 * it, and it must exit 0. Reports that it did not run where the command is
 * missing (a checkout from before tamper evidence).
 */
export async function verifyIntegrity(env: Record<string, string>): Promise<VerifyOutcome> {
  const cli = await readFile(CLI_SOURCE, 'utf8').catch(() => '');
  if (!existsSync(INTEGRITY_DIR) || !/['"]verify['"]/.test(cli)) {
    return { ran: false, why: '`auditgraph verify` does not exist yet (issue 6)' };
  }
  const proc = spawnAuditgraph('verify', env);
  const code = await proc.exited;
  return { ran: true, code, output: proc.output() };
}

/** Prometheus text → the value of one unlabelled series, or undefined. */
export async function metricValue(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** Resident set size of a process, in MiB (Linux). */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) / 1024;
}

/** One line per case in the test output, collected for the README's fault table. */
export function report(caseName: string, figures: Record<string, unknown>): void {
  console.log(`FAULT-RESULT ${JSON.stringify({ case: caseName, ...figures })}`);
}
