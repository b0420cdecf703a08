import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, freePort } from '../support/app.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from '../support/processes.js';

/** The newcomer's path: `auditgraph all` with nothing configured. */
describe('embedded mode, as `npm start` runs it', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('prints where data lives and a key once, keeps events and the key across a restart, and stops cleanly', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ag-embedded-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const env = {
      AUDITGRAPH_DATA_DIR: dataDir,
      PRODUCER_PORT: String(port),
      QUERY_SERVICE_PORT: String(port),
    };
    const run = async (): Promise<AuditgraphProcess> => {
      const proc = spawnAuditgraph('all', env);
      cleanups.push(async () => {
        proc.kill('SIGKILL');
        await proc.exited;
      });
      // PGlite takes seconds to open, more on a loaded machine.
      await waitUntilReady(`http://127.0.0.1:${port}/health/ready`, proc, 90_000);
      return proc;
    };

    const first = await run();
    const banner = await eventually(async () =>
      /^ag_\S+$/m.test(first.output()) ? first.output() : undefined,
    );
    expect(banner).toContain(`embedded PGlite in ${path.join(dataDir, 'pglite')}`);
    expect(banner).toContain(`queue:    on disk in ${dataDir}/queue`);
    const key = /^(ag_\S+)$/m.exec(banner)![1]!;

    const posted = await fetch(`http://127.0.0.1:${port}/log`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({
        session_id: 123,
        event_type: 'review_started',
        payload: { code_language: 'python' },
      }),
    });
    expect(posted.status).toBe(202);
    const { event_id } = (await posted.json()) as { event_id: string };
    // Stopped right after the 202: the event is in PGlite already or still in the queue's files,
    // and stored after the restart either way.
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await run();
    const stored = await eventually(async () => {
      const events = await fetch(`http://127.0.0.1:${port}/events?session_id=123`, {
        headers: { 'x-api-key': key },
      });
      expect(events.status).toBe(200);
      const body = (await events.json()) as { events: Array<{ id: string }> };
      return body.events.length > 0 ? body.events : undefined;
    });
    expect(stored.map((event) => event.id)).toEqual([event_id]);
    expect(second.output()).not.toMatch(/^ag_\S+$/m);
    expect(second.output()).not.toContain(key);
    second.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 90_000);
});
