import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

/**
 * A stall injected into the database: while `stall_switch` holds a row, every
 * insert into audit_events fails with a serialization failure, which the worker
 * retries (it is transient) without moving on.
 */
const INJECT_STALL = [
  'CREATE TABLE stall_switch (on_since timestamptz)',
  `CREATE FUNCTION injected_stall() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF EXISTS (SELECT 1 FROM stall_switch) THEN
         RAISE EXCEPTION 'injected stall' USING ERRCODE = '40001';
       END IF;
       RETURN NEW;
     END $$`,
  'CREATE TRIGGER injected_stall BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION injected_stall()',
];

const backends: Backend[] = ['embedded', 'postgres+redis'];

for (const backend of backends) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `worker stall on ${backend}`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp(backend, { env: { WORKER_STALL_MS: '300' } });
        for (const statement of INJECT_STALL) await app.running.backends.db.query(statement);
      });
      afterAll(async () => {
        await app?.stop();
      });

      const ready = async () => {
        const response = await fetch(`${app.baseUrl}/health/ready`);
        return {
          status: response.status,
          body: (await response.json()) as { checks: Record<string, { ok: boolean }> },
        };
      };
      const post = (body: unknown) =>
        fetch(`${app.baseUrl}/log`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
          body: JSON.stringify(body),
        });
      const metric = async () => {
        const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
        return Number(/^auditgraph_worker_held_seconds (\S+)$/m.exec(text)?.[1]);
      };

      it('reports not ready, naming the worker, while its oldest batch cannot be stored, and ready once it is', async () => {
        expect((await ready()).status).toBe(200);
        await app.running.backends.db.query('INSERT INTO stall_switch VALUES (now())');
        const response = await post({ session_id: 'stall', event_type: 'review_started' });
        expect(response.status).toBe(202);
        const { event_id: id } = (await response.json()) as { event_id: string };

        const notReady = await eventually(async () => {
          const answer = await ready();
          return answer.status === 503 ? answer : undefined;
        });
        expect(notReady.body.checks['worker']).toMatchObject({ ok: false });
        expect(notReady.body.checks['database']).toMatchObject({ ok: true });
        expect(await metric()).toBeGreaterThan(0.3);

        await app.running.backends.db.query('DELETE FROM stall_switch');
        await eventually(async () => ((await ready()).status === 200 ? true : undefined));
        expect(await app.running.backends.store.countByIds([id])).toBe(1);
        expect(await metric()).toBe(0);
        expect((await app.running.backends.queue.stats()).deadLetters).toBe(0);
      });
    },
  );
}
