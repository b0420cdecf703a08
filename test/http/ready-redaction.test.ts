import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  uniqueStream,
} from '../support/services.js';

/** A TCP forwarder in front of a real server; closing it leaves its port closed, as a server gone away. */
async function startForwarder(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    /** Stops listening and cuts every connection: the next connect is refused. */
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

describe.skipIf(!postgresAvailable || !redisAvailable)('GET /health/ready with the backends down', () => {
  let app: TestApp;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let postgres: Awaited<ReturnType<typeof startForwarder>>;
  let redis: Awaited<ReturnType<typeof startForwarder>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    const databaseUrl = new URL(database.url);
    postgres = await startForwarder({ host: databaseUrl.hostname, port: Number(databaseUrl.port || 5432) });
    const redisUrl = new URL(REDIS_URL);
    redis = await startForwarder({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    databaseUrl.host = `127.0.0.1:${postgres.port}`;
    app = await startTestApp('postgres+redis', {
      role: 'serve',
      env: {
        DATABASE_URL: databaseUrl.toString(),
        DATABASE_POOL_SIZE: '2',
        REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        QUEUE_STREAM: uniqueStream('ready'),
      },
    });
  });
  afterAll(async () => {
    await app?.stop().catch(() => undefined);
    await database?.drop();
  });

  it('names the part that is down without a key, and never its host, port, URL or driver error', async () => {
    expect((await fetch(`${app.baseUrl}/health/ready`)).status).toBe(200);
    await postgres.close();
    await redis.close();

    const response = await fetch(`${app.baseUrl}/health/ready`);
    const text = await response.text();
    expect(response.status, text).toBe(503);
    const body = JSON.parse(text) as {
      status: string;
      checks: Record<string, { ok: boolean; error?: string }>;
    };
    expect(body.status).toBe('not_ready');
    expect(body.checks['database']).toEqual({
      ok: false,
      error: expect.stringMatching(/^(unavailable|timeout)$/),
    });
    expect(body.checks['queue']).toEqual({
      ok: false,
      error: expect.stringMatching(/^(unavailable|timeout)$/),
    });
    for (const secret of [
      '127.0.0.1',
      'localhost',
      String(postgres.port),
      String(redis.port),
      'ECONNREFUSED',
      'postgres',
      'redis://',
      new URL(database.url).pathname.slice(1),
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});
