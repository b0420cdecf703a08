import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/app.js';
import { connectLive, postEvent } from '../support/live-client.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from '../support/processes.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  createTestStream,
} from '../support/services.js';

describe.skipIf(!(postgresAvailable && redisAvailable))('live feed across API replicas', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  it('delivers to a subscriber on one API process the events posted to another, through Redis pub/sub', async () => {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const testStream = createTestStream('replicas');
    cleanups.push(() => testStream.drop());
    const stream = testStream.name;
    const adminKey = `replicas_${randomBytes(16).toString('hex')}`;
    const common = {
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: '4',
      REDIS_URL,
      QUEUE_STREAM: stream,
      ADMIN_API_KEY: adminKey,
      METRICS_PORT: '0',
      RATE_LIMIT_PER_MINUTE: '100000',
    };
    const processes: AuditgraphProcess[] = [];
    cleanups.push(async () => {
      for (const proc of processes) proc.kill('SIGKILL');
      await Promise.all(processes.map((proc) => proc.exited));
    });
    const api = async () => {
      const port = await freePort();
      const proc = spawnAuditgraph('serve', {
        ...common,
        PRODUCER_PORT: String(port),
        QUERY_SERVICE_PORT: String(port),
      });
      processes.push(proc);
      await waitUntilReady(`http://127.0.0.1:${port}/health/ready`, proc);
      return `http://127.0.0.1:${port}`;
    };
    const [watched, posted] = await Promise.all([api(), api()]);
    processes.push(spawnAuditgraph('worker', common));

    const session = `replicas-${randomUUID()}`;
    const connection = connectLive(watched, adminKey);
    cleanups.push(() => connection.dispose());
    await connection.connected;
    const subscription = connection.subscribe({ filter: { sessionId: session } });
    await new Promise((resolve) => setTimeout(resolve, 300));

    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      ids.push(
        await postEvent(posted, adminKey, {
          session_id: session,
          event_type: 'review_started',
          payload: { i },
        }),
      );
    }
    const edges = await subscription.waitFor(20, 30_000);
    expect(edges.map((edge) => edge.node.id)).toEqual(ids);
    // The feed can also read missed events from the database; the announcements must have carried them.
    const metrics = await (await fetch(`${watched}/metrics`)).text();
    const recovered = Number(/^auditgraph_live_recovered_events_total (\d+)/m.exec(metrics)?.[1]);
    expect(recovered).toBeLessThan(5);
  });
});
