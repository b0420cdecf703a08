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
 *
 * This file runs the steps in turn; each step is in phases/, the cases in
 * event-cases.ts and analytics-cases.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createAnalyticsService } from '../../src/analytics/analytics-service.js';
import { createEventQueries } from '../../src/query/event-queries.js';
import { createAnalyticsStore } from '../../src/store/analytics-store.js';
import type { Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import { loadAverage } from '../support/machine.js';
import { freePort } from '../support/ports.js';
import { ROOT, type Child } from '../support/processes.js';
import { writeResults } from '../support/results.js';
import { analyticsCases } from './analytics-cases.js';
import { createClient, type Client } from './client.js';
import { eventCases } from './event-cases.js';
import { parseOptions } from './options.js';
import { compareAnalytics } from './phases/agreement.js';
import { findFixtures, walkToDeepPage } from './phases/fixtures.js';
import { measureAlternatives, measureCases } from './phases/measure.js';
import { capturePlans } from './phases/plans.js';
import { machineFacts, prepareDatabase } from './phases/prepare.js';
import { INGEST_BENCH, otherCpu, waitQuiet } from './quiet.js';
import { printReport, resultsJson } from './report.js';
import { baseEnv, startServer, stopServer } from './server.js';

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
  let server: Child | undefined;
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
    const machine = await machineFacts(admin, redis);
    console.log(`command: npx tsx bench/query/run.ts ${process.argv.slice(2).join(' ')}`.trimEnd());

    const prepared = await prepareDatabase({
      options,
      admin,
      dbName,
      databaseUrl,
      onCreated: () => (createdDb = true),
    });
    db = prepared.db;
    const { migrateCommand, loadInfo } = prepared;
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

    const fixtures = await findFixtures(sql, options);

    // --- quiet machine, then measure
    // This benchmark's own processes: itself, the server, and their PostgreSQL backends.
    const cpu = otherCpu(async () => {
      const backends = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE datname = $1',
        [dbName],
      );
      return [
        process.pid,
        ...(server?.proc.pid ? [server.proc.pid] : []),
        ...backends.rows.map((row) => row.pid),
      ];
    });
    let quiet = await waitQuiet(options, cpu, 'measuring');
    console.log(`load average before measuring: ${loadAverage()}`);

    const { deepCursor, deepSeq, walk } = await walkToDeepPage(client);
    const cases = [
      ...eventCases({ ...fixtures, deepCursor, deepSeq, queries }),
      ...analyticsCases({ queries, analytics }),
    ];
    const measured = await measureCases(cases, client, sql, options, cpu);
    const results = measured.results;
    if (!measured.quiet) quiet = false;
    const alternatives = await measureAlternatives(deepSeq, sql, options, cpu);
    // Rollups against live SQL: the same answer?
    const agreement = await compareAnalytics(client, sql);
    printReport({ options, loadInfo, results, alternatives, agreement });

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

    const output = resultsJson({
      startedAt,
      options,
      commands: { migrate: migrateCommand, serve: serveCommand },
      machine,
      quiet,
      database: { name: dbName, load: loadInfo, sizes },
      walk,
      results,
      alternatives,
      agreement,
      plansFile,
    });
    writeResults(options.out, output);
    console.log(`\nwrote ${path.relative(ROOT, options.out)}${plansFile ? ` and ${plansFile}` : ''}`);
    if (!quiet)
      console.warn(`!! ${INGEST_BENCH} was running during part of the measurement: see "quiet": false`);
  } finally {
    if (!interrupted) await cleanup();
  }
}

await main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
