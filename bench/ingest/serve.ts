/** The key the HTTP measurements send, and `auditgraph serve`'s environment for them. */
import { randomBytes } from 'node:crypto';
import { freePort } from '../support/ports.js';
import type { Options } from './options.js';

export const API_KEY = `bench-${randomBytes(12).toString('hex')}`;

/** `auditgraph serve`'s environment in the HTTP measurements: one port, its own stream, no limit in the way. */
export async function serveVars(options: Options, databaseUrl: string, stream: string, port: number) {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: options.redisUrl,
    ADMIN_API_KEY: API_KEY,
    HOST: '127.0.0.1',
    PRODUCER_PORT: String(port),
    QUERY_SERVICE_PORT: String(port),
    QUEUE_STREAM: stream,
    QUEUE_MAX_LENGTH: '10000000',
    // The per-key limit (1000/min by default) would answer most of the load with 429.
    RATE_LIMIT_PER_MINUTE: '10000000',
    METRICS_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
  };
}
