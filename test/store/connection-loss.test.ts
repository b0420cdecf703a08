import { describe, expect, it } from 'vitest';
import { openPostgresFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';

describe.skipIf(!postgresAvailable)('a PostgreSQL connection lost while checked out', () => {
  it('fails the work in hand instead of ending the process, and the pool serves the next query', async () => {
    const fixture = await openPostgresFixture();
    try {
      const work = fixture.db.withSession(async (session) => {
        const [row] = await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // What `pg_ctl stop -m fast` does to every connection, here to this one alone.
        await fixture.db.query('SELECT pg_terminate_backend($1)', [row?.pid]);
        // The connection dies between queries: pg emits 'error' on the checked-out client.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await session.query('SELECT 1');
      });
      await expect(work).rejects.toThrow();
      expect(await fixture.db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await fixture.dispose();
    }
  });
});
