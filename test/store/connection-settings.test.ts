import { describe, expect, it } from 'vitest';
import { openPostgresFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';

describe.skipIf(!postgresAvailable)('PostgreSQL connections the service opens', () => {
  it('run without JIT compilation, on plain queries, sessions, transactions and Prisma alike', async () => {
    const fixture = await openPostgresFixture();
    try {
      const { db } = fixture;
      type Setting = { jit: string };
      // Two sessions at once, so the pool holds more than one connection.
      const [first, second] = await Promise.all([
        db.withSession((session) => session.query<Setting>('SHOW jit')),
        db.withSession((session) => session.query<Setting>('SHOW jit')),
      ]);
      const inTransaction = await db.transaction((session) => session.query<Setting>('SHOW jit'));
      const plain = await db.query<Setting>('SHOW jit');
      const viaPrisma = await db.prisma.$queryRawUnsafe<Setting[]>('SHOW jit');
      for (const rows of [first, second, inTransaction, plain, viaPrisma])
        expect(rows).toEqual([{ jit: 'off' }]);
    } finally {
      await fixture.dispose();
    }
  });
});
