import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { createMemoryQueue } from '../../src/queue/memory-queue.js';
import { createRedisQueue } from '../../src/queue/redis-queue.js';
import { REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';
import { eventQueueContract } from './event-queue.contract.js';

eventQueueContract('in-process', async ({ maxLength }) => createMemoryQueue({ maxLength }));

const streams: string[] = [];
eventQueueContract(
  'Redis Streams',
  async ({ maxLength }) => {
    const stream = uniqueStream('queue');
    streams.push(stream, `${stream}:dead`);
    return createRedisQueue({ url: REDIS_URL, stream, maxLength });
  },
  { skip: !redisAvailable },
);

describe.skipIf(!redisAvailable)('Redis Streams queue, enqueues sharing one script call', () => {
  it('fails every caller of a failed call with SERVICE_UNAVAILABLE, and writes nothing', async () => {
    const stream = uniqueStream('queue');
    streams.push(stream, `${stream}:dead`);
    const queue = await createRedisQueue({ url: REDIS_URL, stream, maxLength: 1000 });
    const other = new Redis(REDIS_URL);
    try {
      // A key of the wrong type makes the script fail inside Redis, connection intact.
      await other.del(stream);
      await other.set(stream, 'not a stream');
      const outcomes = await Promise.allSettled([
        queue.enqueue(['a']),
        queue.enqueue(['b', 'c']),
        queue.enqueue(['d']),
      ]);
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected');
        const reason = (outcome as PromiseRejectedResult).reason as AppError;
        expect(reason).toBeInstanceOf(AppError);
        expect(reason.code).toBe('SERVICE_UNAVAILABLE');
        expect(reason.retryAfterSeconds).toBeGreaterThan(0);
      }
      expect(await other.get(stream)).toBe('not a stream');
    } finally {
      await other.del(stream);
      other.disconnect();
      await queue.close();
    }
  });
});

afterAll(async () => {
  if (!redisAvailable || streams.length === 0) return;
  const redis = new Redis(REDIS_URL);
  await redis.del(...streams);
  redis.disconnect();
});
