import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';

/**
 * Real PostgreSQL and Redis for integration suites. With CI=true a missing
 * server fails the run; on a developer machine the suites needing it are
 * skipped, loudly.
 */
export const POSTGRES_ADMIN_URL =
  process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/**
 * Every database this run creates carries this prefix; global teardown drops
 * what is left of them, and never another run's (runs may overlap on one machine).
 */
export const TEST_DATABASE_PREFIX = `ag_test_${inject('testRunId')}_`;

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const parsed = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: parsed.hostname, port: Number(parsed.port || defaultPort) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export const postgresAvailable = await reachable(POSTGRES_ADMIN_URL, 5432);
export const redisAvailable = await reachable(REDIS_URL, 6379);

for (const [name, available] of [
  ['PostgreSQL', postgresAvailable],
  ['Redis', redisAvailable],
] as const) {
  if (available) continue;
  if (process.env['CI'] === 'true') throw new Error(`${name} is not reachable, and CI=true requires it.`);
  console.warn(`\n!!! ${name} is not reachable: the suites that need it are SKIPPED. !!!\n`);
}

/** A fresh, empty database for one test file; `drop()` removes it. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${TEST_DATABASE_PREFIX}${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A stream name no other test uses. */
export const uniqueStream = (label: string): string =>
  `ag-test:${inject('testRunId')}:${label}:${randomBytes(5).toString('hex')}`;

/** A fresh stream name for processes a test starts; `drop()` deletes it and its dead-letter stream. */
export function createTestStream(label: string): { name: string; drop(): Promise<void> } {
  const name = uniqueStream(label);
  return {
    name,
    async drop() {
      const redis = new Redis(REDIS_URL);
      await redis.del(name, `${name}:dead`);
      redis.disconnect();
    },
  };
}
