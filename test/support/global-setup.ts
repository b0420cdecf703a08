import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Names this run's databases and streams: `t<start time in ms>r<random hex>`. */
    testRunId: string;
  }
}

const POSTGRES_ADMIN_URL =
  process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

const runId = `t${Date.now()}r${randomBytes(3).toString('hex')}`;
/** Leftovers of runs that crashed are dropped once they are this old. */
const ABANDONED_AFTER_MS = 6 * 3600 * 1000;

export function setup(project: TestProject): void {
  project.provide('testRunId', runId);
}

/** Whether a run id names this run, or a run old enough to have been abandoned. */
function ours(id: string): boolean {
  if (id === runId) return true;
  const started = /^t(\d+)r[0-9a-f]+$/.exec(id)?.[1];
  return started !== undefined && Date.now() - Number(started) > ABANDONED_AFTER_MS;
}

/** Drops what this run's test files left behind (and what crashed runs left long ago), never another live run's. */
export async function teardown(): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  try {
    await client.connect();
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'ag\\_test\\_%'",
    );
    for (const { datname } of rows) {
      const id = datname.split('_')[2] ?? '';
      if (ours(id)) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
  } catch {
    // PostgreSQL absent: nothing was created.
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'ag-test:*', 'COUNT', 1000);
      cursor = next;
      const mine = keys.filter((key) => ours(key.split(':')[1] ?? ''));
      if (mine.length > 0) await redis.del(...mine);
    } while (cursor !== '0');
  } catch {
    // Redis absent: nothing was created.
  } finally {
    redis.disconnect();
  }
}
