import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/index.js';
import { createMemoryEventBus, createRedisEventBus, type EventBus } from '../live/event-bus.js';
import { openDiskQueue } from '../queue/disk-queue.js';
import { syncFilesUnder } from '../queue/file-system-sync.js';
import type { EventQueue } from '../queue/event-queue.js';
import { createMemoryQueue } from '../queue/memory-queue.js';
import { createRedisQueue } from '../queue/redis-queue.js';
import { createMemoryIdClaims, createRedisIdClaims, type IdClaims } from '../ingest/id-claims.js';
import { createMemoryRateLimiter, type RateLimiter } from '../security/rate-limit.js';
import { createRedisRateLimiter } from '../security/redis-rate-limiter.js';
import { openDatabase, type Database } from '../store/database.js';
import { createApiKeyStore, type ApiKeyStore } from '../store/api-key-store.js';
import { createEventStore, type EventStore } from '../store/event-store.js';
import { createRollupFolder, type RollupFolder } from '../store/rollup-folder.js';
import { migrate } from '../store/migrate.js';

export interface Backends {
  db: Database;
  store: EventStore;
  /**
   * The one analytics rollup folder of this process, shared by the stores that read the rollups
   * (they fold first) and by the worker (it folds after each commit).
   */
  rollups: RollupFolder;
  apiKeys: ApiKeyStore;
  queue: EventQueue;
  /** True when queued entries outlive the process (Redis, or the on-disk queue): a stopping worker need not drain them. */
  queueSurvivesRestart: boolean;
  /** Announces committed events to every API process's live feed. */
  bus: EventBus;
  /** Caller-chosen event ids accepted lately, shared by the API processes like the queue. */
  idClaims: IdClaims;
  /** Shared through Redis when the queue is, so replicas enforce one limit; in-process otherwise. */
  rateLimiter: RateLimiter;
  close(): Promise<void>;
}

export interface BackendOptions {
  /**
   * Keep the embedded queue in memory instead of in `<data folder>/queue`: entries die with the
   * process. For measuring what durability costs (bench/embedded), not for serving.
   */
  volatileQueue?: boolean;
}

/**
 * Opens the database (migrating it first, under the advisory lock, so any
 * number of processes may start together) and the queue that the
 * configuration names: Redis Streams, or without Redis the on-disk queue in
 * `<data folder>/queue`, which this process then holds locked.
 */
export async function openBackends(config: Config, options: BackendOptions = {}): Promise<Backends> {
  const db = await openDatabase(config.database);
  let opened: EventQueue | undefined;
  try {
    await migrate(db);
    const volatile = config.queue.kind === 'disk' && options.volatileQueue === true;
    const queue =
      config.queue.kind === 'redis'
        ? await createRedisQueue({
            url: config.queue.url,
            urlFrom: config.queue.from,
            stream: config.queue.stream,
            maxLength: config.queue.maxLength,
          })
        : volatile
          ? createMemoryQueue({ maxLength: config.queue.maxLength })
          : await openDiskQueue({
              dir: path.join(config.dataDir, 'queue'),
              maxLength: config.queue.maxLength,
              // PGlite's fsync does nothing: its commits are flushed before the queue forgets them.
              ...(config.database.kind === 'pglite'
                ? { ackBarrier: syncFilesUnder.bind(null, config.database.dataDir) }
                : {}),
            });
    opened = queue;
    const rateLimiter =
      config.queue.kind === 'redis'
        ? // Namespaced by the stream: deployments sharing one Redis keep separate counters.
          await createRedisRateLimiter(config.queue.url, `${config.queue.stream}:ratelimit`)
        : createMemoryRateLimiter();
    const idClaims =
      config.queue.kind === 'redis'
        ? await createRedisIdClaims(
            config.queue.url,
            `${config.queue.stream}:ids`,
            config.eventIdClaimTtlMs,
            config.queue.from,
          )
        : createMemoryIdClaims(config.eventIdClaimTtlMs);
    const bus =
      config.queue.kind === 'redis'
        ? createRedisEventBus(config.queue.url, `${config.queue.stream}:persisted`)
        : createMemoryEventBus();
    const rollups = createRollupFolder(db);
    return {
      db,
      bus,
      rateLimiter,
      idClaims,
      store: createEventStore(db, { rollups }),
      rollups,
      apiKeys: createApiKeyStore(db),
      queue,
      queueSurvivesRestart: !volatile,
      async close() {
        await bus.close();
        await rateLimiter.close();
        await idClaims.close();
        await queue.close();
        await db.close();
      },
    };
  } catch (error) {
    await opened?.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw error;
  }
}

/** A consumer name unique to this process unless one is configured (a stable name resumes its own pending entries). */
export function consumerNameFor(config: Config): string {
  return config.worker.consumerName ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
