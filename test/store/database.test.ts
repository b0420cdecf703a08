import { describe, expect, it } from 'vitest';
import { openPGliteFixture, openPostgresFixture, type DatabaseFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';

const LOCK = 4242;

// Every warning of this file's run: node-postgres warns (once a process) when a query is queued
// behind another on one client, which pg 9 will refuse.
const warnings: string[] = [];
process.on('warning', (warning) => warnings.push(warning.message));

const backends: Array<[string, () => Promise<DatabaseFixture>, boolean]> = [
  ['PostgreSQL', openPostgresFixture, !postgresAvailable],
  ['PGlite', openPGliteFixture, false],
];

describe.each(backends)('transactions on %s', (_name, open, skip) => {
  it.skipIf(skip)(
    "hand the opening statement's rows to the work, inside the transaction and after the lock",
    async () => {
      const fixture = await open();
      try {
        const { db } = fixture;
        await db.query('CREATE TABLE counters (n int)');
        const seen = await db.transaction(
          async (tx, opened) => {
            // The opening ran in this transaction: its write is visible here, and rolled back below.
            const [inside] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM counters');
            const [locks] = await tx.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${LOCK} AND granted`,
            );
            return { opened, inside: inside?.n, locks: locks?.n };
          },
          { advisoryLock: LOCK, opening: 'INSERT INTO counters VALUES (1), (2) RETURNING n' },
        );
        expect(seen).toEqual({ opened: [{ n: 1 }, { n: 2 }], inside: 2, locks: 1 });
        await expect(
          db.transaction(
            () => {
              throw new Error('work failed');
            },
            { opening: 'INSERT INTO counters VALUES (3) RETURNING n' },
          ),
        ).rejects.toThrow('work failed');
        expect(await db.query('SELECT n FROM counters ORDER BY n')).toEqual([{ n: 1 }, { n: 2 }]);
      } finally {
        await fixture.dispose();
      }
    },
  );

  it.skipIf(skip)('roll back and release the lock when the opening statement fails', async () => {
    const fixture = await open();
    try {
      const { db } = fixture;
      await db.query('CREATE TABLE counters (n int PRIMARY KEY)');
      await db.query('INSERT INTO counters VALUES (1)');
      await expect(
        db.transaction(async () => 'unreached', {
          advisoryLock: LOCK,
          opening: 'INSERT INTO counters VALUES (1) RETURNING n',
        }),
      ).rejects.toMatchObject({ code: '23505' });
      // The lock is free again (a transaction-level lock ends with the rollback), and the pool's
      // connection is usable.
      const again = await db.transaction(async (_tx, opened) => opened, {
        advisoryLock: LOCK,
        opening: 'SELECT count(*)::int AS n FROM counters',
      });
      expect(again).toEqual([{ n: 1 }]);
    } finally {
      await fixture.dispose();
    }
  });
});

describe.skipIf(!postgresAvailable)('PostgreSQL connections the service opens', () => {
  it('run without JIT compilation, on plain queries, sessions, transactions and Prisma alike, set before first use', async () => {
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
      // The setting is applied before a new connection is handed out, not queued before its first query.
      expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
    } finally {
      await fixture.dispose();
    }
  });
});
