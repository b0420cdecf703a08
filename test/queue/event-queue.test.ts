import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
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

afterAll(async () => {
  if (!redisAvailable || streams.length === 0) return;
  const redis = new Redis(REDIS_URL);
  await redis.del(...streams);
  redis.disconnect();
});
