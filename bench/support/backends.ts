import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './ports.js';
import type { Cleanups } from './processes.js';

/** A new database and stream name, both removed by `cleanups`. */
export async function freshBackends(
  cleanups: Cleanups,
  options: { pgUrl: string; redisUrl: string; label: string },
): Promise<{ databaseUrl: string; stream: string }> {
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const dbName = `ag_bench_${options.label}_${runId}`;
  const admin = new pg.Client({ connectionString: options.pgUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: options.pgUrl });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await client.end();
  });
  const url = new URL(options.pgUrl);
  url.pathname = `/${dbName}`;
  const stream = `ag-bench-${options.label}:${runId}`;
  cleanups.push(async () => {
    const redis = new Redis(options.redisUrl);
    await redis.del(stream, `${stream}:dead`);
    redis.disconnect();
  });
  return { databaseUrl: url.toString(), stream };
}

/**
 * `auditgraph serve` and `worker` on those backends: the API on one port,
 * metrics on any free one, production mode, and a per-key limit (1,000/min by
 * default) high enough not to refuse the bench's own requests.
 */
function serverEnv(input: {
  databaseUrl: string;
  redisUrl: string;
  stream: string;
  adminKey: string;
  port: number;
}): Record<string, string> {
  return {
    DATABASE_URL: input.databaseUrl,
    REDIS_URL: input.redisUrl,
    QUEUE_STREAM: input.stream,
    ADMIN_API_KEY: input.adminKey,
    PRODUCER_PORT: String(input.port),
    QUERY_SERVICE_PORT: String(input.port),
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '10000000',
    NODE_ENV: 'production',
  };
}

/** Fresh backends (removed by `cleanups`), a random admin key, a free port, and the servers' environment on them. */
export async function freshServerSetup(
  cleanups: Cleanups,
  options: { pgUrl: string; redisUrl: string; label: string },
) {
  const { databaseUrl, stream } = await freshBackends(cleanups, options);
  const adminKey = `bench_${randomBytes(16).toString('hex')}`;
  const port = await freePort();
  const env = serverEnv({ databaseUrl, redisUrl: options.redisUrl, stream, adminKey, port });
  return { databaseUrl, stream, adminKey, port, env };
}
