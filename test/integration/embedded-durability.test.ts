import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDiskQueue } from '../../src/queue/disk-queue.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { eventually, freePort } from '../support/app.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from '../support/processes.js';

const CONCURRENCY = 16;

/**
 * `auditgraph all` in embedded mode (PGlite and the on-disk queue in one data folder), killed or
 * stopped while events arrive: after a restart on the same folder, every event that got a 202
 * is stored, exactly once.
 */
describe('embedded mode keeps every accepted event across crashes and stops', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function embedded(extraEnv: Record<string, string> = {}) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ag-durable-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const adminKey = `durable_${randomBytes(16).toString('hex')}`;
    const base = `http://127.0.0.1:${port}`;
    const env = {
      AUDITGRAPH_DATA_DIR: dataDir,
      ADMIN_API_KEY: adminKey,
      PRODUCER_PORT: String(port),
      QUERY_SERVICE_PORT: String(port),
      // Small batches, so a kill lands between reading a batch and acknowledging it.
      WORKER_BATCH_SIZE: '100',
      RATE_LIMIT_PER_MINUTE: '10000000',
      ...extraEnv,
    };
    const start = async (): Promise<AuditgraphProcess> => {
      const proc = spawnAuditgraph('all', env);
      cleanups.push(async () => {
        proc.kill('SIGKILL');
        await proc.exited;
      });
      await waitUntilReady(`${base}/health/ready`, proc, 60_000);
      return proc;
    };
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = text.split('\n').find((row) => row.startsWith(`${name} `));
      return line === undefined ? 0 : Number(line.slice(name.length + 1));
    };
    const post = async (index: number): Promise<string | undefined> => {
      const response = await fetch(`${base}/log`, {
        method: 'POST',
        headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
        body: JSON.stringify({ session_id: index % 31, event_type: 'llm_query_sent', payload: { index } }),
      });
      const body = (await response.json()) as { event_id?: string };
      if (response.status !== 202 || body.event_id === undefined)
        throw new Error(`refused: ${response.status} ${JSON.stringify(body)}`);
      return body.event_id;
    };

    /**
     * Senders posting until `stopped()`: the ids that got a 202, and how many requests had no
     * answer (cut off by the process dying, say).
     */
    function load(stopped: () => boolean) {
      const accepted: string[] = [];
      let unanswered = 0;
      let next = 0;
      const sender = async () => {
        while (!stopped()) {
          try {
            const id = await post(next++);
            if (id) accepted.push(id);
          } catch (error) {
            if (!stopped()) throw error;
            unanswered += 1;
          }
        }
      };
      const done = Promise.all(Array.from({ length: CONCURRENCY }, sender)).then(() => ({ unanswered }));
      return { accepted, done };
    }

    /** Runs `work` on the folder's database while no process has it open. */
    async function withDatabase<T>(work: (db: Database) => Promise<T>): Promise<T> {
      const db = await openDatabase({ kind: 'pglite', dataDir: path.join(dataDir, 'pglite') });
      try {
        await migrate(db);
        return await work(db);
      } finally {
        await db.close();
      }
    }

    /** Once the queue is empty (all stored or set aside), stops the process and reads what was stored. */
    async function storedAfterDraining(proc: AuditgraphProcess) {
      await eventually(
        async () => ((await metric('queue_size')) === 0 ? true : undefined),
        120_000,
        'an empty queue',
      );
      proc.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      return withDatabase(async (db) =>
        (await db.query<{ id: string }>('SELECT id::text AS id FROM audit_events')).map((row) => row.id),
      );
    }

    function expectEachStoredOnce(stored: string[], accepted: string[], unanswered: number) {
      const counts = new Map<string, number>();
      for (const id of stored) counts.set(id, (counts.get(id) ?? 0) + 1);
      expect([...counts.values()].filter((n) => n > 1)).toEqual([]);
      expect(accepted.filter((id) => !counts.has(id))).toEqual([]);
      // Besides the accepted ones, at most the requests cut off mid-way (written, never answered).
      expect(stored.length - accepted.length).toBeLessThanOrEqual(unanswered);
    }

    return {
      dataDir,
      base,
      adminKey,
      start,
      metric,
      load,
      withDatabase,
      storedAfterDraining,
      expectEachStoredOnce,
    };
  }

  it('stores every 202 exactly once after a SIGKILL under steady load', async () => {
    const app = await embedded();
    const first = await app.start();
    let killed = false;
    const { accepted, done } = app.load(() => killed);
    // Killed mid-stream: the worker has been storing for a while and events keep arriving.
    await eventually(
      async () =>
        accepted.length >= 3000 && (await app.metric('auditgraph_events_persisted_total')) >= 500
          ? true
          : undefined,
      120_000,
      'a steady stream being stored',
    );
    killed = true;
    first.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    const { unanswered } = await done;

    const second = await app.start();
    const stored = await app.storedAfterDraining(second);
    expect(accepted.length).toBeGreaterThanOrEqual(3000);
    app.expectEachStoredOnce(stored, accepted, unanswered);
  }, 300_000);

  it('keeps what it accepted queued through a SIGTERM while the database refuses every write, and stores it after a restart', async () => {
    const app = await embedded({ SHUTDOWN_TIMEOUT_MS: '2000' });
    // The database fails as a full disk would: a transient failure the worker retries without end.
    await app.withDatabase((db) =>
      db.withSession((session) =>
        session.exec(`
        CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'no space left (test)' USING ERRCODE = '53100'; END $$;
        CREATE TRIGGER refuse_writes BEFORE INSERT ON audit_events
          FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes();`),
      ),
    );
    const first = await app.start();
    let stopped = false;
    const { accepted, done } = app.load(() => stopped);
    await eventually(
      async () =>
        accepted.length >= 2000 &&
        (await app.metric('auditgraph_persist_retries_total{operation="insert"}')) > 0
          ? true
          : undefined,
      120_000,
      'a backlog behind a failing worker',
    );
    stopped = true;
    const { unanswered } = await done;
    expect(await app.metric('queue_size')).toBeGreaterThanOrEqual(accepted.length);
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await app.withDatabase(async (db) => (await db.query('SELECT 1 FROM audit_events')).length)).toBe(
      0,
    );

    await app.withDatabase((db) =>
      db.withSession((session) => session.exec('DROP TRIGGER refuse_writes ON audit_events')),
    );
    const second = await app.start();
    const stored = await app.storedAfterDraining(second);
    app.expectEachStoredOnce(stored, accepted, unanswered);
  }, 300_000);

  it('still lists its dead letters after a SIGKILL and a restart', async () => {
    const app = await embedded();
    // Bodies no API would accept, put straight into the folder's queue before the first start.
    const queue = await openDiskQueue({ dir: path.join(app.dataDir, 'queue'), maxLength: 100 });
    await queue.enqueue(['not json', '{"v":1,"unknown":true}']);
    await queue.close();
    const list = async () => {
      const response = await fetch(`${app.base}/dead-letters`, { headers: { 'x-api-key': app.adminKey } });
      expect(response.status).toBe(200);
      return (await response.json()) as { dead_letters: Array<{ id: string; body: string; reason: string }> };
    };

    const first = await app.start();
    const before = await eventually(async () => {
      const answer = await list();
      return answer.dead_letters.length === 2 ? answer.dead_letters : undefined;
    }, 60_000);
    first.kill('SIGKILL');
    await first.exited;

    await app.start();
    expect((await list()).dead_letters).toEqual(before);
    expect(before.map((letter) => letter.body).sort()).toEqual(['not json', '{"v":1,"unknown":true}']);
    expect(await app.metric('auditgraph_dead_letters')).toBe(2);
  }, 300_000);
});
