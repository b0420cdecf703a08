/** Before measuring: the machine's facts, and the benchmark database migrated and loaded (or reused). */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { NODE_FLAGS } from '../../../bin/node-flags.mjs';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { hostFacts, postgresFacts, redisVersion } from '../../support/machine.js';
import { BIN } from '../../support/processes.js';
import type { Options } from '../options.js';
import { baseEnv, runToEnd } from '../server.js';
import { load, readMeta, type LoadMeta } from './load.js';

const POSTGRES_SETTINGS = [
  'shared_buffers',
  'work_mem',
  'effective_cache_size',
  'random_page_cost',
  'jit',
  'max_parallel_workers_per_gather',
];

/** Printed first, and kept in results.json as `machine`. */
export async function machineFacts(admin: pg.Client, redis: Redis) {
  const host = hostFacts();
  const postgres = await postgresFacts((text, params) => admin.query(text, params), POSTGRES_SETTINGS);
  const settings = Object.fromEntries(
    postgres.settings.map((row) => [row.name, `${row.setting}${row.unit ? ` ${row.unit}` : ''}`]),
  );
  const machine = {
    nproc: host.nproc,
    cpu: host.cpuModel,
    memoryGiB: host.memoryGiB,
    node: host.node,
    postgres: postgres.version,
    postgresSettings: settings,
    redis: '',
  };
  await redis.connect();
  machine.redis = await redisVersion(redis);
  console.log(
    `machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, Redis ${machine.redis}\n` +
      `         ${postgres.version}\n         ${Object.entries(settings)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
  );
  return machine;
}

/**
 * Creates the database unless it exists, migrates it with `auditgraph migrate`, and loads the
 * events unless it already holds those of a finished load of the same size.
 */
export async function prepareDatabase(input: {
  options: Options;
  admin: pg.Client;
  dbName: string;
  databaseUrl: string;
  /** Told at once, so that cleanup drops a database made here even if loading fails. */
  onCreated: () => void;
}): Promise<{ db: Database; migrateCommand: string; loadInfo: LoadMeta }> {
  const { options, admin, dbName, databaseUrl } = input;
  const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName])).rowCount === 1;
  if (!exists) {
    await admin.query(`CREATE DATABASE "${dbName}"`);
    input.onCreated();
    console.log(`created database ${dbName}`);
  } else console.log(`using existing database ${dbName}`);
  const migrateCommand = `DATABASE_URL=${databaseUrl} node bin/auditgraph.mjs migrate`;
  console.log(`$ ${migrateCommand}`);
  await runToEnd(process.execPath, [...NODE_FLAGS, BIN, 'migrate'], {
    ...baseEnv(),
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
  });

  const db = await openDatabase({ kind: 'postgres', url: databaseUrl, poolSize: 4 });
  try {
    const loadInfo = await loadUnlessLoaded(db, options, admin, dbName);
    return { db, migrateCommand, loadInfo };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

async function loadUnlessLoaded(db: Database, options: Options, admin: pg.Client, dbName: string) {
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
  return loadInfo;
}
