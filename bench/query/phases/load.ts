/**
 * The benchmark database's events: loaded once through the store's own
 * `insertBatch` (the worker's statement, so the rollups are maintained as in
 * production), and described in the database's comment so that `--keep-db`
 * reuses them.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { NewEvent } from '../../../src/events/stored-event.js';
import type { Database } from '../../../src/store/database.js';
import { createEventStore } from '../../../src/store/event-store.js';
import { createRollupFolder } from '../../../src/store/rollup-folder.js';
import { expect } from '../case.js';
import { BATCH, makeEvent, SEED, SESSIONS, SPAN_DAYS } from '../events.js';

export interface LoadMeta {
  bench: 'query';
  events: number;
  sessions: number;
  spanDays: number;
  end: string;
  loadSeconds: number;
  seed: number;
}

export async function readMeta(admin: pg.Client, dbName: string): Promise<LoadMeta | null> {
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
export async function load(db: Database, total: number): Promise<LoadMeta> {
  const rollups = createRollupFolder(db);
  const store = createEventStore(db, { rollups });
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
  // Folded as the worker folds after its commits: insertBatch leaves the rollups to the folder,
  // and the fixtures read them with bare SQL, which does not fold first as the service's reads do.
  const foldStarted = performance.now();
  await rollups.fold();
  console.log(
    `  folding the analytics rollups took ${((performance.now() - foldStarted) / 1000).toFixed(0)} s`,
  );
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
