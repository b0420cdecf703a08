import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { createRedisQueue } from '../../src/queue/redis-queue.js';
import { freePort, startTestApp } from '../support/app.js';
import { spawnAuditgraph } from '../support/processes.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  uniqueStream,
} from '../support/services.js';

const withDb = (db: number | string) => `${REDIS_URL.replace(/\/\d*$/, '')}/${db}`;

/** Whether `key` exists in database `db` of the test Redis. */
async function existsIn(db: number, key: string): Promise<boolean> {
  const client = new Redis(withDb(db));
  try {
    return (await client.exists(key)) === 1;
  } finally {
    client.disconnect();
  }
}

describe('REDIS_URL database number', () => {
  it('refuses a path that is not a database number at configuration, naming REDIS_URL', () => {
    for (const url of [
      'redis://127.0.0.1:6379/abc',
      'redis://127.0.0.1:6379/0/1',
      'redis://127.0.0.1:6379/-1',
    ]) {
      expect(() => loadConfig({ REDIS_URL: url }), url).toThrow(ConfigError);
      expect(() => loadConfig({ REDIS_URL: url }), url).toThrow(/REDIS_URL: must end in a database number/);
    }
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/15' }).queue).toMatchObject({ kind: 'redis' });
  });

  describe.skipIf(!redisAvailable)('against the real Redis', () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterAll(async () => {
      for (const cleanup of cleanups) await cleanup();
    });

    it('refuses to start on a database the server does not have, writing nothing into database 0', async () => {
      const stream = uniqueStream('db99');
      const attempt = createRedisQueue({ url: withDb(99), stream, maxLength: 10 });
      await expect(attempt).rejects.toThrow(ConfigError);
      await expect(attempt).rejects.toThrow(
        /REDIS_URL: names database 99, which this Redis does not have \(it has \d+: 0 to \d+\)/,
      );
      expect(await existsIn(0, stream)).toBe(false);
    });

    it('uses the database the URL names', async () => {
      const stream = uniqueStream('db3');
      const queue = await createRedisQueue({ url: withDb(3), stream, maxLength: 10 });
      cleanups.push(async () => {
        const client = new Redis(withDb(3));
        await client.del(stream, `${stream}:dead`);
        client.disconnect();
      });
      await queue.enqueue(['{}']);
      await queue.close();
      expect(await existsIn(3, stream)).toBe(true);
      expect(await existsIn(0, stream)).toBe(false);
    });

    it('names the URL (password hidden) and its variable when Redis cannot be reached', async () => {
      const port = await freePort();
      const attempt = createRedisQueue({
        url: `redis://:hunter2secret@127.0.0.1:${port}/0`,
        stream: uniqueStream('closed'),
        maxLength: 10,
      });
      await expect(attempt).rejects.toThrow(
        new RegExp(`Cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0, from REDIS_URL`),
      );
      await expect(attempt).rejects.not.toThrow(/hunter2secret/);
    });

    it.skipIf(!postgresAvailable)(
      'the app refuses to start, and `auditgraph serve` exits 78 naming REDIS_URL',
      async () => {
        await expect(startTestApp('postgres+redis', { env: { REDIS_URL: withDb(99) } })).rejects.toThrow(
          /REDIS_URL: names database 99/,
        );
        const database = await createTestDatabase();
        cleanups.push(() => database.drop());
        const proc = spawnAuditgraph('serve', {
          DATABASE_URL: database.url,
          REDIS_URL: withDb(99),
          QUEUE_STREAM: uniqueStream('cli99'),
          ADMIN_API_KEY: 'an-admin-key-for-tests',
          PRODUCER_PORT: '0',
          QUERY_SERVICE_PORT: '0',
        });
        expect(await proc.exited).toBe(78);
        expect(proc.output()).toMatch(/REDIS_URL: names database 99, which this Redis does not have/);
      },
      60_000,
    );
  });
});
