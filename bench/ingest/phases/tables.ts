/**
 * The tables of the persistence scenarios: preloaded with `--preload` rows (and
 * their hash-log leaves and rollups, as the worker would have left them), or
 * emptied again between measurements.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { fmtInt } from '../../support/format.js';
import { log, seconds } from '../log.js';

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
export async function emptyTables(client: pg.Client): Promise<void> {
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

export async function preloadTables(client: pg.Client, rows: number): Promise<{ seconds: number }> {
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
  const { backfillLeaves } = await import('../../../src/store/integrity-store.js');
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
  const { foldRollupsSql } = await import('../../../src/store/rollup-sql.js');
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
