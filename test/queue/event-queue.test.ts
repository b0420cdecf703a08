import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { openDiskQueue } from '../../src/queue/disk-queue.js';
import { createMemoryQueue } from '../../src/queue/memory-queue.js';
import { createRedisQueue } from '../../src/queue/redis-queue.js';
import { eventually } from '../support/app.js';
import { REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';
import { eventQueueContract } from './event-queue.contract.js';

eventQueueContract('in-process', async ({ maxLength }) => createMemoryQueue({ maxLength }));

const folders: string[] = [];
eventQueueContract('on disk (embedded)', async ({ maxLength }) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-queue-'));
  folders.push(dir);
  return openDiskQueue({ dir, maxLength });
});
eventQueueContract('on disk, acknowledgements behind a barrier', async ({ maxLength }) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-queue-'));
  folders.push(dir);
  return openDiskQueue({ dir, maxLength, ackBarrier: async () => undefined, ackBarrierIntervalMs: 5 });
});
afterAll(async () => {
  await Promise.all(folders.map((dir) => rm(dir, { recursive: true, force: true })));
});

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

  it("sends a turn's enqueues as soon as they hold 16 bodies, never splitting one, and the next turn's apart", async () => {
    const stream = uniqueStream('queue');
    streams.push(stream, `${stream}:dead`);
    const queue = await createRedisQueue({ url: REDIS_URL, stream, maxLength: 1000 });
    await queue.enqueue(['loads the script']);
    const monitor = await new Redis(REDIS_URL).monitor();
    // The script's arguments after the stream and the high-water mark: per enqueue, its count then its bodies.
    const calls: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^eval/i.test(args[0] ?? '') && args[3] === stream) calls.push(args.slice(5));
    });
    try {
      const singles = Array.from({ length: 40 }, (_, index) => queue.enqueue([`s${index}`]));
      const large = queue.enqueue(Array.from({ length: 20 }, (_, index) => `l${index}`));
      const nextTurn = new Promise<void>((resolve, reject) =>
        setImmediate(() => queue.enqueue(['a']).then(resolve, reject)),
      );
      await Promise.all([...singles, large, nextTurn]);
      await eventually(async () => (calls.length >= 4 ? true : undefined), 2000, 'the monitored calls');
      const singleArgs = (from: number, count: number) =>
        Array.from({ length: count }, (_, index) => ['1', `s${from + index}`]).flat();
      expect(calls).toEqual([
        singleArgs(0, 16),
        singleArgs(16, 16),
        // An enqueue is never split: the large one rides with the 8 gathered before it.
        [...singleArgs(32, 8), '20', ...Array.from({ length: 20 }, (_, index) => `l${index}`)],
        ['1', 'a'],
      ]);
    } finally {
      monitor.disconnect();
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
