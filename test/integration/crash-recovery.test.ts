import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, freePort } from '../support/app.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from '../support/processes.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  createTestStream,
} from '../support/services.js';

const TOTAL = 10_000;
const CONCURRENCY = 24;

/**
 * Separate `serve` and `worker` processes on PostgreSQL + Redis, as in
 * production: workers die by SIGKILL mid-stream, and every event that got a
 * 202 must still be stored exactly once.
 */
describe.skipIf(!(postgresAvailable && redisAvailable))('crash recovery across processes', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function stack() {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const testStream = createTestStream('crash');
    cleanups.push(() => testStream.drop());
    const stream = testStream.name;
    const port = await freePort();
    const adminKey = `crash_${randomBytes(16).toString('hex')}`;
    const env = {
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: '4',
      REDIS_URL,
      QUEUE_STREAM: stream,
      ADMIN_API_KEY: adminKey,
      PRODUCER_PORT: String(port),
      QUERY_SERVICE_PORT: String(port),
      // Small batches, so a kill lands mid-batch; fast take-over of a dead worker's entries.
      WORKER_BATCH_SIZE: '100',
      WORKER_CLAIM_IDLE_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '10000',
      METRICS_PORT: '0',
      // 10,000 events in seconds from one key: this test is about durability, not the limiter.
      RATE_LIMIT_PER_MINUTE: '10000000',
    };
    const processes: AuditgraphProcess[] = [];
    const start = (role: string) => {
      const proc = spawnAuditgraph(role, env);
      processes.push(proc);
      return proc;
    };
    cleanups.push(async () => {
      for (const proc of processes) proc.kill('SIGKILL');
      await Promise.all(processes.map((proc) => proc.exited));
    });
    const client = new pg.Client({ connectionString: database.url });
    cleanups.push(() => client.end());

    const api = start('serve');
    await waitUntilReady(`http://127.0.0.1:${port}/health/ready`, api);
    await client.connect();

    const storedCount = async () =>
      (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).rows[0]!.n;

    /** Posts TOTAL events; `onProgress` sees the number answered so far. Returns the ids that got 202. */
    async function postEvents(onProgress: (answered: number) => Promise<void> | void): Promise<string[]> {
      const accepted: string[] = [];
      let next = 0;
      let answered = 0;
      const refusals: string[] = [];
      const sender = async () => {
        while (next < TOTAL) {
          const index = next++;
          const response = await fetch(`http://127.0.0.1:${port}/log`, {
            method: 'POST',
            headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
            body: JSON.stringify({
              session_id: index % 97,
              event_type: 'llm_query_sent',
              payload: { index },
            }),
          });
          const body = (await response.json()) as { event_id?: string };
          if (response.status === 202 && body.event_id) accepted.push(body.event_id);
          else refusals.push(`${response.status} ${JSON.stringify(body)}`);
          answered += 1;
          await onProgress(answered);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, sender));
      expect(refusals).toEqual([]);
      return accepted;
    }

    const redis = new Redis(REDIS_URL);
    cleanups.push(async () => redis.disconnect());

    async function expectExactlyOnce(accepted: string[]) {
      // Done when everything is stored, or when the queue is empty (acknowledged
      // entries are deleted), after which nothing more can arrive.
      await eventually(
        async () =>
          (await storedCount()) >= accepted.length || (await redis.xlen(stream)) === 0 ? true : undefined,
        90_000,
        `${accepted.length} stored events or an empty queue`,
      );
      const { rows } = await client.query<{ total: number; distinct_ids: number; matched: number }>(
        `SELECT count(*)::int AS total, count(DISTINCT id)::int AS distinct_ids,
                count(*) FILTER (WHERE id = ANY($1::uuid[]))::int AS matched
           FROM audit_events`,
        [accepted],
      );
      expect(rows[0]).toEqual({
        total: accepted.length,
        distinct_ids: accepted.length,
        matched: accepted.length,
      });
      const payloadIndexes = await client.query<{ n: number }>(
        "SELECT count(DISTINCT payload->>'index')::int AS n FROM audit_events",
      );
      expect(payloadIndexes.rows[0]!.n).toBe(accepted.length);
    }

    return { start, postEvents, expectExactlyOnce, storedCount };
  }

  it('stores every accepted event exactly once when workers are SIGKILLed mid-stream and others take over', async () => {
    const { start, postEvents, expectExactlyOnce, storedCount } = await stack();
    // Each round starts a worker once a backlog has built up, so it is busy draining
    // batch after batch when the kill lands (between reading a batch and
    // acknowledging it, not idle between reads), then lets events pile up with no
    // worker at all. Two rounds make a kill inside a batch all but certain.
    const rounds = [
      { startAfterAnswered: 2500, killAfterStoredMore: 300 },
      { startAfterAnswered: 5500, killAfterStoredMore: 600 },
    ];
    const killed: AuditgraphProcess[] = [];
    const storedAtKills: number[] = [];
    let answered = 0;
    const killer = (async () => {
      for (const round of rounds) {
        await eventually(
          async () => (answered >= round.startAfterAnswered ? true : undefined),
          60_000,
          'backlog',
        );
        const before = await storedCount();
        const worker = start('worker');
        await eventually(
          async () => ((await storedCount()) >= before + round.killAfterStoredMore ? true : undefined),
          30_000,
          'the worker storing rows',
        );
        worker.kill('SIGKILL');
        killed.push(worker);
        storedAtKills.push(await storedCount());
      }
    })();
    const accepted = await postEvents((count) => {
      answered = count;
    });
    await killer;
    const survivor = start('worker');
    expect(await Promise.all(killed.map((worker) => worker.exited))).toEqual(['SIGKILL', 'SIGKILL']);
    expect(storedAtKills[1]!).toBeLessThan(TOTAL);
    await expectExactlyOnce(accepted);
    survivor.kill('SIGTERM');
    expect(await survivor.exited).toBe(0);
  }, 180_000);

  it('shares one stream between a serve process and two workers, storing each event once, and drains on SIGTERM', async () => {
    const { start, postEvents, expectExactlyOnce } = await stack();
    const workers = [start('worker'), start('worker')];
    const accepted = await postEvents(() => undefined);
    await expectExactlyOnce(accepted);
    for (const worker of workers) worker.kill('SIGTERM');
    expect(await Promise.all(workers.map((worker) => worker.exited))).toEqual([0, 0]);
  }, 180_000);
});
