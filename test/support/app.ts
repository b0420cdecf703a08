import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAuditgraph, type Role, type Running } from '../../src/app/start.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { digestSecret, type KnownKey, type Scope } from '../../src/security/authenticate.js';
import { createTestDatabase, REDIS_URL, uniqueStream } from './services.js';
import { freePort } from '../../bench/support/ports.js';

export type Backend = 'embedded' | 'postgres+redis';

export interface TestApp {
  baseUrl: string;
  /** The environment it runs with: another app started with `sameBackendsAs` shares its database and queue. */
  env: Record<string, string>;
  running: Running;
  /** Secrets by scope set: `admin` has every scope. */
  keys: { admin: string; readOnly: string; ingestOnly: string };
  stop(): Promise<void>;
}

const key = (id: string, scopes: Scope[]): [string, KnownKey] => {
  const secret = `test_${id}_${randomBytes(12).toString('hex')}`;
  return [secret, { id, scopes, sha256: digestSecret(secret) }];
};

/** Starts auditgraph in this process on a free port against fresh backends of the given kind. */
export async function startTestApp(
  backend: Backend,
  options: { role?: Role; env?: Record<string, string>; sameBackendsAs?: TestApp } = {},
): Promise<TestApp> {
  const cleanups: Array<() => Promise<void>> = [];
  const env: Record<string, string> = { PRODUCER_PORT: '0', QUERY_SERVICE_PORT: '0', LOG_LEVEL: 'silent' };
  if (options.sameBackendsAs) {
    Object.assign(env, options.sameBackendsAs.env);
  } else if (backend === 'embedded') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-app-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    env['AUDITGRAPH_DATA_DIR'] = dir;
  } else {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    env['DATABASE_URL'] = database.url;
    env['DATABASE_POOL_SIZE'] = '4';
    env['REDIS_URL'] = REDIS_URL;
    env['QUEUE_STREAM'] = uniqueStream('app');
  }
  Object.assign(env, options.env);
  const config = loadConfig(env);
  const [admin, adminKey] = key('admin', ['ingest', 'read', 'admin']);
  const [readOnly, readKey] = key('reader', ['read']);
  const [ingestOnly, ingestKey] = key('ingester', ['ingest']);
  const running = await startAuditgraph({
    role: options.role ?? 'all',
    config,
    logger: createLogger({ level: (env['LOG_LEVEL'] ?? 'silent') as 'silent' }),
    keys: [adminKey, readKey, ingestKey],
  });
  return {
    baseUrl: `http://127.0.0.1:${running.ports[0]}`,
    env,
    running,
    keys: { admin, readOnly, ingestOnly },
    async stop() {
      await running.stop();
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

// A port that was free a moment ago: one helper for benches and tests.
export { freePort };

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
