/**
 * Benchmarks the analytics rollups on PostgreSQL (not part of `npm test`):
 *
 *   npx tsx bench/analytics/rollups.ts insert [batches=30]     insertBatch with rollups vs the bare insert
 *   npx tsx bench/analytics/rollups.ts insert-pglite [batches=30]   the same on embedded PGlite
 *   npx tsx bench/analytics/rollups.ts query [events=5000000]  load events over 30 days, then time each analytics call
 *
 * Each run creates its own `ag_bench_*` database on TEST_POSTGRES_URL (default
 * postgresql://postgres@127.0.0.1:5432/postgres) and drops it at the end; KEEP=1 keeps it,
 * and BENCH_DATABASE=<name> runs on a kept one instead (e.g. `insert` into a table of 5M rows).
 * `insert` interleaves the two paths batch by batch, so load from other processes on the
 * machine affects both alike.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { createAnalyticsService } from '../../src/analytics/analytics-service.js';
import { EVENT_TYPES, type EventType } from '../../src/events/event-types.js';
import { createAnalyticsStore } from '../../src/store/analytics-store.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent } from '../../src/events/stored-event.js';
import { migrate } from '../../src/store/migrate.js';
import { eventColumns } from '../support/event-columns.js';

const ADMIN_URL = process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const BATCH = 1000;
const SESSIONS = 100_000;
const MODELS = ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.0-flash', 'in-house-7b'];

// The insert the event store ran before the rollups: the baseline.
const BARE_INSERT = `
WITH inserted AS (
  INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::text[])
  ON CONFLICT (id) DO NOTHING
  RETURNING 1)
SELECT count(*)::int AS inserted FROM inserted`;

let seed = 42;
/** Deterministic uniform [0, 1) (mulberry32), so runs compare. */
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
/** Log-normal around `median`, spreading over about a decade either way. */
const lognormal = (median: number): number => {
  const gauss = Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  return Math.round(median * Math.exp(gauss * 0.8) * 10) / 10;
};

function payloadFor(type: EventType): Record<string, unknown> {
  switch (type) {
    case 'review_started':
    case 'syntax_analysis_started':
      return {
        code_language: pick(['python', 'typescript', 'go', 'java']),
        file_count: 1 + Math.floor(random() * 20),
      };
    case 'review_completed':
      return { duration_ms: lognormal(20_000), issues_found: Math.floor(random() * 10), file_count: 3 };
    case 'syntax_analysis_completed':
      return { duration_ms: lognormal(300), errors_found: Math.floor(random() * 3) };
    case 'llm_query_sent':
      return { model: pick(MODELS), prompt_tokens: Math.floor(random() * 4000) };
    case 'llm_feedback_received': {
      const prompt = Math.floor(random() * 4000);
      return {
        model: pick(MODELS),
        prompt_tokens: prompt,
        completion_tokens: Math.floor(random() * 1000),
        cached_tokens: Math.floor(prompt * random() * 0.5),
        reasoning_tokens: Math.floor(random() * 200),
        latency_ms: lognormal(1500),
        ...(random() < 0.5 ? { cost_usd: Math.round(random() * 1e5) / 1e7 } : {}),
        success: random() > 0.05,
      };
    }
    case 'error_occurred':
      return { error_type: 'ParseError', message: 'unexpected token', stage: 'syntax' };
  }
}

function makeBatch(receivedAt: (index: number) => Date): NewEvent[] {
  return Array.from({ length: BATCH }, (_, index) => {
    const type = pick(EVENT_TYPES);
    return {
      id: uuidv7(),
      eventType: type,
      sessionId: `session-${Math.floor(random() * SESSIONS)}`,
      payload: payloadFor(type),
      clientTime: null,
      receivedAt: receivedAt(index).toISOString(),
      apiKeyId: 'bench',
    };
  });
}

async function bareInsert(db: Database, events: readonly NewEvent[]): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [0x61756469]);
    await tx.query(BARE_INSERT, eventColumns(events, 'jsonb[]'));
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
};
const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

async function benchInsert(db: Database, batches: number): Promise<void> {
  const store = createEventStore(db, { rollups: createRollupFolder(db) });
  const bare: number[] = [];
  const rollups: number[] = [];
  // Warm up both paths (plans, caches, the sessions already seen).
  for (let round = 0; round < 5; round += 1) {
    await bareInsert(
      db,
      makeBatch(() => new Date()),
    );
    await store.insertBatch(makeBatch(() => new Date()));
  }
  for (let round = 0; round < batches; round += 1) {
    // Alternate which path goes first, so neither always follows the other's checkpoint or autovacuum.
    const paths: Array<[number[], (events: NewEvent[]) => Promise<unknown>]> = [
      [bare, (events) => bareInsert(db, events)],
      [rollups, (events) => store.insertBatch(events)],
    ];
    if (round % 2 === 1) paths.reverse();
    for (const [times, insert] of paths) {
      const events = makeBatch(() => new Date());
      const started = performance.now();
      await insert(events);
      times.push(performance.now() - started);
    }
  }
  const report = (name: string, times: number[]) =>
    console.log(
      `${name.padEnd(22)} median ${median(times).toFixed(1)} ms, mean ${mean(times).toFixed(1)} ms, ` +
        `p90 ${quantile(times, 0.9).toFixed(1)} ms per ${BATCH} rows → ${Math.round((BATCH * 1000) / mean(times))} rows/s`,
    );
  const [existing] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
  console.log(`${batches} batches of ${BATCH} per path, table holding ${existing?.n} rows at the end`);
  report('bare insert', bare);
  report('insert with rollups', rollups);
  console.log(`throughput ratio (mean): ${((100 * mean(bare)) / mean(rollups)).toFixed(0)} %`);
}

async function benchQuery(db: Database, total: number): Promise<void> {
  const store = createEventStore(db, { rollups: createRollupFolder(db) });
  const now = Date.now();
  const span = 30 * 24 * 3_600_000;
  const started = performance.now();
  const batches = Math.ceil(total / BATCH);
  for (let batch = 0; batch < batches; batch += 1) {
    // Time-ordered, as the worker sees them: each batch covers the next slice of the 30 days.
    const events = makeBatch((index) => new Date(now - span + ((batch * BATCH + index) / total) * span));
    await store.insertBatch(events);
    if ((batch + 1) % 500 === 0) {
      const seconds = (performance.now() - started) / 1000;
      console.log(`loaded ${(batch + 1) * BATCH} events in ${seconds.toFixed(0)} s`);
    }
  }
  await db.query('VACUUM ANALYZE');
  const sizes = await db.query<{ name: string; rows: number; size: string }>(
    `SELECT relname AS name, n_live_tup::int AS rows, pg_size_pretty(pg_total_relation_size(relid)) AS size
     FROM pg_stat_user_tables WHERE relname LIKE 'analytics_%' OR relname = 'audit_events' ORDER BY relname`,
  );
  console.table(sizes);

  const service = createAnalyticsService({
    store: createAnalyticsStore(db, { rollups: createRollupFolder(db) }),
  });
  for (const days of [7, 30]) {
    for (const name of ['usage', 'llm', 'performance'] as const) {
      const times: number[] = [];
      for (let round = 0; round < 40; round += 1) {
        const begun = performance.now();
        await service[name](days);
        if (round >= 5) times.push(performance.now() - begun);
      }
      console.log(
        `${name.padEnd(12)} days=${String(days).padEnd(3)} p50 ${median(times).toFixed(1)} ms, p95 ${quantile(times, 0.95).toFixed(1)} ms`,
      );
    }
  }
}

async function main(): Promise<void> {
  const [mode, count] = process.argv.slice(2);
  if (mode !== 'insert' && mode !== 'query' && mode !== 'insert-pglite') {
    console.error(
      'usage: npx tsx bench/analytics/rollups.ts insert [batches] | insert-pglite [batches] | query [events]',
    );
    process.exitCode = 2;
    return;
  }
  if (mode === 'insert-pglite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-bench-pglite-'));
    const db = await openDatabase({ kind: 'pglite', dataDir: dir });
    try {
      await migrate(db);
      await benchInsert(db, Number(count ?? 30));
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
    return;
  }
  const existing = process.env['BENCH_DATABASE'];
  const name = existing ?? `ag_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  if (existing === undefined) await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase({ kind: 'postgres', url: url.toString(), poolSize: 4 });
  try {
    await migrate(db);
    if (mode === 'insert') await benchInsert(db, Number(count ?? 30));
    else await benchQuery(db, Number(count ?? 5_000_000));
  } finally {
    await db.close();
    if (process.env['KEEP'] === '1' || existing !== undefined) console.log(`kept database ${name}`);
    else await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

await main();
