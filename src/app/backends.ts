import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/index.js';
import { createMemoryEventBus, createRedisEventBus, type EventBus } from '../live/event-bus.js';
import type { EventQueue } from '../queue/event-queue.js';
import { createMemoryQueue } from '../queue/memory-queue.js';
import { createRedisQueue } from '../queue/redis-queue.js';
import { createMemoryRateLimiter, createRedisRateLimiter, type RateLimiter } from '../security/rate-limit.js';
import { openDatabase, type Database } from '../store/database.js';
import { createApiKeyStore, type ApiKeyStore } from '../store/api-key-store.js';
import { createEventStore, type EventStore } from '../store/event-store.js';
import { migrate } from '../store/migrate.js';

export interface Backends {
  db: Database;
  store: EventStore;
  apiKeys: ApiKeyStore;
  queue: EventQueue;
  /** Announces committed events to every API process's live feed. */
  bus: EventBus;
  /** Shared through Redis when the queue is, so replicas enforce one limit; in-process otherwise. */
  rateLimiter: RateLimiter;
  close(): Promise<void>;
}

/**
 * Opens the database (migrating it first, under the advisory lock, so any
 * number of processes may start together) and the queue that the
 * configuration names.
 */
export async function openBackends(config: Config): Promise<Backends> {
  const db = await openDatabase(config.database);
  try {
    await migrate(db);
    const queue =
      config.queue.kind === 'redis'
        ? await createRedisQueue({
            url: config.queue.url,
            stream: config.queue.stream,
            maxLength: config.queue.maxLength,
          })
        : createMemoryQueue({ maxLength: config.queue.maxLength });
    const rateLimiter =
      config.queue.kind === 'redis'
        ? // Namespaced by the stream: deployments sharing one Redis keep separate counters.
          await createRedisRateLimiter(config.queue.url, `${config.queue.stream}:ratelimit`)
        : createMemoryRateLimiter();
    const bus =
      config.queue.kind === 'redis'
        ? createRedisEventBus(config.queue.url, `${config.queue.stream}:persisted`)
        : createMemoryEventBus();
    return {
      db,
      bus,
      rateLimiter,
      store: createEventStore(db),
      apiKeys: createApiKeyStore(db),
      queue,
      async close() {
        await bus.close();
        await rateLimiter.close();
        await queue.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

/** A consumer name unique to this process unless one is configured (a stable name resumes its own pending entries). */
export function consumerNameFor(config: Config): string {
  return config.worker.consumerName ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
