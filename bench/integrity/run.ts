/**
 * Integrity benchmark: does tamper evidence keep up with persistence, and how fast is verification?
 *
 *   1. Persistence, on fresh PostgreSQL databases, one connection, batches of 1,000:
 *      the raw `unnest` insert (the ingest benchmark's ceiling), the insert as it was
 *      before the hash log (lock + insert + rollups in one statement), and today's
 *      `insertBatch` (lock, prepare, leaves + events + rollups). Events/s and ratios.
 *   2. Hashing alone (RFC 8785 + SHA-256 per event, in JS) and checkpointing alone
 *      (read leaves, Merkle root, Ed25519 signature, insert), each as events/s and as a
 *      multiple of the persistence rate measured in 1. and in the ingest benchmark.
 *   3. `verify` over `--events` events (1,000,000 by default): events/s.
 *
 * Run: `npx tsx bench/integrity/run.ts [--events N] [--persist N] [--ingest-rate N]`. Needs PostgreSQL at
 * DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres); the databases it
 * creates (`ag_bench_integrity_*`) are dropped at the end. Writes bench/integrity/results.json.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { keyIdOf } from '../../src/integrity/checkpoint.js';
import { leafHashOf } from '../../src/integrity/leaf.js';
import { insertWithRollupsSql } from '../../src/store/rollup-sql.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent } from '../../src/events/stored-event.js';
import { createIntegrityStore } from '../../src/store/integrity-store.js';
import { migrate } from '../../src/store/migrate.js';
import { eventColumns } from '../support/event-columns.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ADMIN_URL = process.env['DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const { values } = parseArgs({
  options: { events: { type: 'string' }, persist: { type: 'string' }, 'ingest-rate': { type: 'string' } },
});
/** The worker's persistence rate, empty table, in the ingest benchmark (README, "Performance"). */
const INGEST_PERSIST_RATE = Number(values['ingest-rate'] ?? 33_907);
const VERIFY_EVENTS = Number(values.events ?? 1_000_000);
const PERSIST_EVENTS = Number(values.persist ?? 50_000);
const BATCH = 1000;

const MODELS = ['gpt-4o', 'claude-sonnet', 'gemini-pro'];
const TYPES = [
  'review_started',
  'review_completed',
  'llm_query_sent',
  'llm_feedback_received',
  'error_occurred',
];

/** Events shaped like the ingest benchmark's: a few hundred bytes of payload each. */
function makeBatch(size: number): NewEvent[] {
  const now = new Date().toISOString();
  return Array.from({ length: size }, (_, index) => ({
    id: uuidv7(),
    eventType: TYPES[index % TYPES.length]!,
    sessionId: `session-${index % 500}`,
    payload: {
      model: MODELS[index % MODELS.length],
      prompt_tokens: 1000 + index,
      completion_tokens: 200 + (index % 50),
      latency_ms: 350.5 + index,
      cost_usd: 0.0042,
      success: index % 7 !== 0,
      code_language: 'typescript',
      file_count: index % 20,
      message: 'review of src/index.ts: two issues found',
    },
    clientTime: index % 3 === 0 ? now : null,
    receivedAt: now,
    apiKeyId: 'key_bench',
  }));
}

const databases: string[] = [];
async function freshDatabase(): Promise<Database> {
  const name = `ag_bench_integrity_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  databases.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase({ kind: 'postgres', url: url.toString(), poolSize: 2 });
  await migrate(db);
  return db;
}
async function dropDatabases() {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

const rate = (count: number, ms: number) => Math.round((count / ms) * 1000);
const fmt = (value: number) => value.toLocaleString('en-US');

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** Persists `total` events with `insert`, generating the next batch while the database stores the last. */
async function persist(total: number, insert: (events: NewEvent[]) => Promise<unknown>): Promise<number> {
  const batches = Array.from({ length: Math.ceil(total / BATCH) }, () => makeBatch(BATCH));
  return timed(async () => {
    for (const batch of batches) await insert(batch);
  });
}

const RAW = `INSERT INTO raw_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::text[])`;
// The insert as it was before the hash log (git history of src/store/event-store.ts).
const BEFORE = `
INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::text[])
ON CONFLICT (id) DO NOTHING`;
const paramsOf = (events: NewEvent[]) => eventColumns(events, 'jsonb[]');

async function main() {
  const results: Record<string, unknown> = { date: new Date().toISOString(), batch: BATCH };
  const ingestRate = INGEST_PERSIST_RATE;

  // 1. Persistence.
  console.log(`persistence: ${fmt(PERSIST_EVENTS)} events per variant, batches of ${BATCH}, one connection…`);
  const rawDb = await freshDatabase();
  await rawDb.query('CREATE TABLE raw_events (LIKE audit_events INCLUDING ALL)');
  const rawMs = await persist(PERSIST_EVENTS, (events) => rawDb.query(RAW, paramsOf(events)));
  await rawDb.close();
  const beforeDb = await freshDatabase();
  await beforeDb.query('DROP TABLE audit_log_leaves CASCADE');
  const beforeMs = await persist(PERSIST_EVENTS, (events) =>
    beforeDb.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(1)');
      await tx.query(insertWithRollupsSql(BEFORE), paramsOf(events));
    }),
  );
  await beforeDb.close();
  const afterDb = await freshDatabase();
  const store = createEventStore(afterDb, { rollups: createRollupFolder(afterDb) });
  const afterMs = await persist(PERSIST_EVENTS, (events) => store.insertBatch(events));
  const persistence = {
    rawRowsPerSecond: rate(PERSIST_EVENTS, rawMs),
    beforeEventsPerSecond: rate(PERSIST_EVENTS, beforeMs),
    afterEventsPerSecond: rate(PERSIST_EVENTS, afterMs),
  };
  results['persistence'] = persistence;

  // 2. Hashing and checkpointing alone.
  const hashEvents = makeBatch(100_000).map((event, index) => ({
    ...event,
    seq: String(index + 1),
    persistedAt: event.receivedAt,
  }));
  const hashMs = await timed(async () => {
    for (const event of hashEvents) leafHashOf(event);
  });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer = { privateKey, keyId: keyIdOf(publicKey) };
  const integrity = createIntegrityStore(afterDb, { rollups: createRollupFolder(afterDb) });
  const checkpointMs = await timed(async () => void (await integrity.checkpoint(signer)));
  const hashing = {
    hashEventsPerSecond: rate(hashEvents.length, hashMs),
    checkpointEventsPerSecond: rate(PERSIST_EVENTS, checkpointMs),
  };
  results['hashing'] = hashing;
  await afterDb.close();

  // 3. Verification over VERIFY_EVENTS.
  console.log(`verification: loading ${fmt(VERIFY_EVENTS)} events through insertBatch…`);
  const bigDb = await freshDatabase();
  const bigStore = createEventStore(bigDb, { rollups: createRollupFolder(bigDb) });
  const bigIntegrity = createIntegrityStore(bigDb, { rollups: createRollupFolder(bigDb) });
  const loadMs = await timed(async () => {
    for (let done = 0; done < VERIFY_EVENTS; done += BATCH) {
      await bigStore.insertBatch(makeBatch(Math.min(BATCH, VERIFY_EVENTS - done)));
      if (done % 100_000 === 0) await bigIntegrity.checkpoint(signer);
    }
    await bigIntegrity.checkpoint(signer);
  });
  await bigDb.query('VACUUM ANALYZE');
  const verifyMs = await timed(async () => {
    const report = await bigIntegrity.verify({}, publicKey);
    if (!report.ok || report.eventsChecked !== VERIFY_EVENTS)
      throw new Error(`verify failed: ${JSON.stringify(report)}`);
  });
  results['verification'] = {
    events: VERIFY_EVENTS,
    loadEventsPerSecond: rate(VERIFY_EVENTS, loadMs),
    verifySeconds: Math.round(verifyMs) / 1000,
    verifyEventsPerSecond: rate(VERIFY_EVENTS, verifyMs),
  };
  await bigDb.close();

  const lines = [
    ['raw unnest insert (ceiling)', `${fmt(persistence.rawRowsPerSecond)} rows/s`, ''],
    [
      'insert before the hash log',
      `${fmt(persistence.beforeEventsPerSecond)} events/s`,
      `${Math.round((persistence.beforeEventsPerSecond / persistence.rawRowsPerSecond) * 100)} % of raw`,
    ],
    [
      'insertBatch with the hash log',
      `${fmt(persistence.afterEventsPerSecond)} events/s`,
      `${Math.round((persistence.afterEventsPerSecond / persistence.rawRowsPerSecond) * 100)} % of raw, ${Math.round((persistence.afterEventsPerSecond / persistence.beforeEventsPerSecond) * 100)} % of before`,
    ],
    [
      'leaf hashing alone (JS)',
      `${fmt(hashing.hashEventsPerSecond)} events/s`,
      `${(hashing.hashEventsPerSecond / persistence.afterEventsPerSecond).toFixed(1)}× persistence here${ingestRate ? `, ${(hashing.hashEventsPerSecond / ingestRate).toFixed(1)}× the ingest benchmark's ${fmt(ingestRate)}/s` : ''}`,
    ],
    [
      'checkpointing alone',
      `${fmt(hashing.checkpointEventsPerSecond)} events/s`,
      `${(hashing.checkpointEventsPerSecond / persistence.afterEventsPerSecond).toFixed(1)}× persistence here${ingestRate ? `, ${(hashing.checkpointEventsPerSecond / ingestRate).toFixed(1)}× the ingest benchmark's` : ''}`,
    ],
    [
      `verify, ${fmt(VERIFY_EVENTS)} events`,
      `${fmt(rate(VERIFY_EVENTS, verifyMs))} events/s`,
      `${(verifyMs / 1000).toFixed(1)} s`,
    ],
  ];
  for (const [name, value, note] of lines) console.log(`${name!.padEnd(34)} ${value!.padStart(18)}  ${note}`);
  writeFileSync(path.join(HERE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => dropDatabases());
