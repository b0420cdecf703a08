/**
 * Why deep `page` requests miss the 10 ms target, and what the proposed fix does,
 * on a copy of a database loaded by bench/query/run.ts (not part of `npm test`):
 *
 *   npx tsx bench/query/run.ts --keep-db ag_bench_query_5m      # once: load and keep 5M events
 *   npx tsx bench/query/diagnose.ts --db ag_bench_query_5m [--runs 100]
 *
 * It copies the database (CREATE DATABASE … TEMPLATE), then, for the SQL that Prisma
 * issues for `GET /events` (text as captured by auto_explain in bench/query/plans.txt)
 * and for a "late row lookup" rewrite, prints EXPLAIN (ANALYZE, BUFFERS) and the
 * client-side p50/p95 over --runs executions, in three states of the table:
 *   A. as loaded (vacuumed: every page all-visible);
 *   C. 100,000 newer rows not yet vacuumed (as between two autovacuums), then after VACUUM;
 *   B. a bursty type: no `error_occurred` among the newest 600,000 rows (deleted in the copy);
 *   E. after a selective delete (every `error_occurred` row), 100,000 newer rows filling
 *      the holes it left all over the heap (the newest rows no longer adjacent);
 *   D. then a retention purge of the oldest 1,000,000 rows, and 100,000 newer rows filling
 *      the whole pages it freed (adjacent again).
 * Writes bench/query/diagnosis.txt and drops the copy. Waits, like run.ts, until no
 * bench/ingest/run.ts runs and the machine is otherwise idle before timing.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { machineCpuSeconds } from '../support/cpu.js';
import { ingestBenchRunning } from './quiet.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const args = process.argv.slice(2);
const option = (name: string, fallback?: string): string | undefined => {
  const index = args.indexOf(name);
  return index === -1 ? fallback : args[index + 1];
};
const source = option('--db');
const runs = Number(option('--runs', '100'));
const adminUrl = option(
  '--pg-url',
  process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
)!;
if (!source || !/^[a-z_][a-z0-9_]*$/.test(source) || !(runs > 0)) {
  console.error('usage: npx tsx bench/query/diagnose.ts --db LOADED_DATABASE [--runs N] [--pg-url URL]');
  process.exit(2);
}

// The statements Prisma sends for listEvents (src/store/event-reader.ts), verbatim from auto_explain.
const COLUMNS = [
  'id',
  'seq',
  'event_type',
  'session_id',
  'payload',
  'client_time',
  'received_at',
  'persisted_at',
  'api_key_id',
];
const prismaColumns = COLUMNS.map((column) => `"public"."audit_events"."${column}"`).join(', ');
const PRISMA_UNFILTERED = `SELECT ${prismaColumns} FROM "public"."audit_events" WHERE 1=1 ORDER BY "public"."audit_events"."seq" DESC LIMIT $1 OFFSET $2`;
const PRISMA_BY_TYPE = `SELECT ${prismaColumns} FROM "public"."audit_events" WHERE "public"."audit_events"."event_type" IN ($1) ORDER BY "public"."audit_events"."seq" DESC LIMIT $2 OFFSET $3`;

// The proposed rewrite: the page's positions by an index-only scan of the index matching the filter, then those rows.
const lateRow = (where: string) =>
  `SELECT ${COLUMNS.map((column) => `e.${column}`).join(', ')}
     FROM (SELECT seq FROM audit_events ${where} ORDER BY seq DESC OFFSET $OFFSET LIMIT $LIMIT) page
     JOIN audit_events e ON e.seq = page.seq
    ORDER BY e.seq DESC`;
const LATE_UNFILTERED = lateRow('').replace('$OFFSET', '$2').replace('$LIMIT', '$1');
const LATE_BY_TYPE = lateRow('WHERE event_type = $1').replace('$OFFSET', '$3').replace('$LIMIT', '$2');

// src/store/event-reader.ts eventTypeStats, verbatim, and the same with each type's newest seq found index-only.
const EVENT_TYPE_STATS = `SELECT counts.event_type, counts.events::text AS count, newest.received_at AS last_seen_at
           FROM (SELECT event_type, sum(events) AS events FROM analytics_event_counts GROUP BY event_type) counts
           CROSS JOIN LATERAL (
             SELECT received_at FROM audit_events WHERE event_type = counts.event_type ORDER BY seq DESC LIMIT 1
           ) newest
          ORDER BY counts.event_type`;
const EVENT_TYPE_STATS_LATE = `SELECT counts.event_type, counts.events::text AS count, newest.received_at AS last_seen_at
           FROM (SELECT event_type, sum(events) AS events FROM analytics_event_counts GROUP BY event_type) counts
           CROSS JOIN LATERAL (
             SELECT e.received_at
               FROM (SELECT seq FROM audit_events WHERE event_type = counts.event_type ORDER BY seq DESC LIMIT 1) last
               JOIN audit_events e ON e.seq = last.seq
           ) newest
          ORDER BY counts.event_type`;

interface Query {
  label: string;
  text: string;
  params: unknown[];
}

/** The service's query beside its late-row-lookup form, on the same parameters. */
const pair = (
  service: { label: string; text: string },
  late: { label: string; text: string },
  params: unknown[],
): Query[] => [
  { label: `service: ${service.label}`, text: service.text, params },
  { label: `late row: ${late.label}`, text: late.text, params },
];

const QUERIES: Query[] = [
  ...pair(
    { label: 'page 1000 (OFFSET 49950 LIMIT 51)', text: PRISMA_UNFILTERED },
    { label: 'page 1000', text: LATE_UNFILTERED },
    [51, 49950],
  ),
  ...pair(
    { label: 'page 2001 (OFFSET 100000, the deepest allowed)', text: PRISMA_UNFILTERED },
    { label: 'page 2001', text: LATE_UNFILTERED },
    [51, 100000],
  ),
  ...pair(
    { label: 'page 1000 by type llm_query_sent', text: PRISMA_BY_TYPE },
    { label: 'page 1000 by type llm_query_sent', text: LATE_BY_TYPE },
    ['llm_query_sent', 51, 49950],
  ),
  ...pair(
    { label: 'newest 50 by type error_occurred', text: PRISMA_BY_TYPE },
    { label: 'newest 50 by type error_occurred', text: LATE_BY_TYPE },
    ['error_occurred', 51, 0],
  ),
  ...pair(
    { label: 'GET /events/types (eventTypeStats)', text: EVENT_TYPE_STATS },
    { label: 'GET /events/types', text: EVENT_TYPE_STATS_LATE },
    [],
  ),
];
/** Queries whose cost depends on where the newest events of a type are, not on depth. */
const byRecency = (query: Query) =>
  query.label.includes('error_occurred') || query.label.includes('/events/types');

/** Until no ingest benchmark runs and the machine (idle on our side) uses at most 0.25 cores, up to 40 min. */
async function waitQuiet(): Promise<void> {
  const deadline = Date.now() + 40 * 60_000;
  while (Date.now() < deadline) {
    if (ingestBenchRunning()) {
      await sleep(30_000);
      continue;
    }
    const before = machineCpuSeconds();
    await sleep(2000);
    const after = machineCpuSeconds();
    const cores = ((after.busy - before.busy) / (after.total - before.total)) * os.availableParallelism();
    if (cores <= 0.25) return;
    await sleep(13_000);
  }
  console.warn('!! machine not quiet after 40 min: timing anyway');
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

async function time(client: pg.Client, query: Query): Promise<{ p50: number; p95: number }> {
  for (let i = 0; i < 10; i += 1) await client.query(query.text, query.params);
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const started = performance.now();
    await client.query(query.text, query.params);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p95: quantile(times, 0.95) };
}

async function explain(client: pg.Client, query: Query): Promise<string> {
  const { rows } = await client.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN (ANALYZE, BUFFERS) ${query.text}`,
    query.params,
  );
  return rows.map((row) => `    ${row['QUERY PLAN']}`).join('\n');
}

const out: string[] = [];
const log = (line = '') => {
  console.log(line);
  out.push(line);
};

async function state(client: pg.Client, title: string, queries: Query[]): Promise<void> {
  await waitQuiet();
  const { rows } = await client.query<{ pages: number; visible: number }>(
    `SELECT relpages AS pages, relallvisible AS visible FROM pg_class WHERE relname = 'audit_events'`,
  );
  log(`\n=== ${title}  (all-visible pages: ${rows[0]!.visible} of ${rows[0]!.pages}, from pg_class)\n`);
  const plans: string[] = [];
  for (const query of queries) {
    const timing = await time(client, query);
    log(
      `  ${query.label.padEnd(58)} p50 ${timing.p50.toFixed(2).padStart(7)} ms   p95 ${timing.p95.toFixed(2).padStart(7)} ms`,
    );
    plans.push(`  --- ${query.label}\n${await explain(client, query)}`);
  }
  log('');
  for (const plan of plans) log(`${plan}\n`);
}

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
const copy = `ag_bench_query_diag_${randomBytes(3).toString('hex')}`;
const url = new URL(adminUrl);
url.pathname = `/${copy}`;
let client: pg.Client | undefined;
try {
  console.log(`copying ${source} to ${copy}…`);
  await admin.query(`CREATE DATABASE "${copy}" TEMPLATE "${source}"`);
  client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  await client.query('VACUUM ANALYZE audit_events');
  const { rows: version } = await client.query<{ v: string }>('SELECT version() AS v');
  log(`# bench/query/diagnose.ts on a copy of ${source}, ${new Date().toISOString()}`);
  log(
    `# ${version[0]!.v}; ${os.availableParallelism()} CPUs; ${runs} runs per query (after 10 warm-up), client-side time`,
  );
  log('# "service" = the SQL Prisma sends for GET /events (verbatim); "late row" = the proposed rewrite.');

  const deep = QUERIES.filter((query) => !byRecency(query));
  const bursty = QUERIES.filter(byRecency);
  const newest = (rows: number) =>
    `INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
     SELECT gen_random_uuid(), event_type, session_id, payload, client_time, now(), api_key_id
       FROM (SELECT * FROM audit_events ORDER BY seq DESC LIMIT ${rows}) newest ORDER BY seq`;

  await state(client, 'A. as loaded, vacuumed', QUERIES);

  // Newer rows, not yet vacuumed: as between two autovacuums of a table that keeps growing.
  await client.query(newest(100_000));
  await client.query('ANALYZE audit_events');
  await state(client, 'C1. 100,000 newer rows appended, not vacuumed yet (ANALYZE only)', deep);
  await client.query('VACUUM audit_events');
  await state(client, 'C2. the same after VACUUM', deep);

  // A type that is common overall but absent lately: the plan assumes it is spread evenly.
  const deleted = await client.query(
    `DELETE FROM audit_events WHERE event_type = 'error_occurred'
        AND seq > (SELECT max(seq) - 600000 FROM audit_events)`,
  );
  await client.query('VACUUM ANALYZE audit_events');
  await state(
    client,
    `B. bursty type: no error_occurred among the newest 600,000 rows (${deleted.rowCount} deleted), vacuumed`,
    bursty,
  );

  // A selective delete (an erasure request, a dropped type) frees a little space on most pages;
  // later rows fill those holes one or two per page, so a page of newest rows spans ~1 page per row.
  // After a delete: vacuumed, 100,000 newer rows (which fill the holes), vacuumed and analyzed.
  const db = client;
  const refill = async () => {
    await db.query('VACUUM audit_events');
    await db.query(newest(100_000));
    await db.query('VACUUM ANALYZE audit_events');
  };
  const erased = await client.query(`DELETE FROM audit_events WHERE event_type = 'error_occurred'`);
  await refill();
  await state(
    client,
    `E. after a selective delete (all ${erased.rowCount} error_occurred rows, vacuumed), 100,000 newer rows, vacuumed`,
    deep,
  );

  // A retention purge frees the oldest pages; later rows fill them, so the heap is no longer in seq order.
  const purged = await client.query(
    'DELETE FROM audit_events WHERE seq <= (SELECT min(seq) + 1000000 FROM audit_events)',
  );
  await refill();
  await state(
    client,
    `D. after a retention purge (oldest ${purged.rowCount} rows deleted, vacuumed), 100,000 newer rows, vacuumed`,
    deep,
  );

  const file = path.join(HERE, 'diagnosis.txt');
  writeFileSync(file, `${out.join('\n')}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
} finally {
  await client?.end().catch(() => undefined);
  await admin.query(`DROP DATABASE IF EXISTS "${copy}" WITH (FORCE)`);
  console.log(`dropped ${copy}`);
  await admin.end();
}
