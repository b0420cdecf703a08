import { describe, expect, it } from 'vitest';
import { openPGliteFixture, openPostgresFixture, type DatabaseFixture } from '../support/databases.js';
import { openDatabase } from '../../src/store/database.js';
import { eventually } from '../support/app.js';
import { createTestDatabase, postgresAvailable } from '../support/services.js';

const LOCK = 4242;

// Every warning of this file's run: node-postgres warns (once a process) when a query is queued
// behind another on one client, which pg 9 will refuse.
const warnings: string[] = [];
process.on('warning', (warning) => warnings.push(warning.message));

const backends: Array<[string, () => Promise<DatabaseFixture>, boolean]> = [
  ['PostgreSQL', openPostgresFixture, !postgresAvailable],
  ['PGlite', openPGliteFixture, false],
];

describe.each(backends)('reserved connections on %s', (_name, open, skip) => {
  it.skipIf(skip)(
    'keep a session-level lock across statements and transactions until released, and send statements issued together in order',
    async () => {
      const fixture = await open();
      try {
        const { db } = fixture;
        await db.query('CREATE TABLE counters (n int PRIMARY KEY)');
        const reserved = await db.reserve();
        await reserved.query('SELECT pg_advisory_lock($1)', [LOCK]);
        // Issued without waiting: each is sent once the one before answered, in the order issued.
        const issued = await Promise.all(
          [1, 2, 3].map((n) =>
            reserved.query<{ n: number }>('INSERT INTO counters VALUES ($1) RETURNING n', [n]),
          ),
        );
        expect(issued).toEqual([[{ n: 1 }], [{ n: 2 }], [{ n: 3 }]]);
        await expect(
          reserved.transaction(async (tx) => {
            await tx.query('INSERT INTO counters VALUES (4)');
            throw new Error('work failed');
          }),
        ).rejects.toThrow('work failed');
        await reserved.transaction((tx) => tx.query('INSERT INTO counters VALUES (5)'));
        expect(await db.query('SELECT n FROM counters ORDER BY n')).toEqual([1, 2, 3, 5].map((n) => ({ n })));
        const lockHeld = async () =>
          (
            await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${LOCK} AND granted`,
            )
          )[0]?.n;
        expect(await lockHeld()).toBe(1);
        await reserved.query('SELECT pg_advisory_unlock($1)', [LOCK]);
        reserved.release();
        reserved.release();
        expect(await lockHeld()).toBe(0);
      } finally {
        await fixture.dispose();
      }
    },
  );
});

describe.skipIf(!postgresAvailable)('reserved PostgreSQL connections', () => {
  it('end their session locks when released broken, and when the database closes', async () => {
    const database = await createTestDatabase();
    const db = await openDatabase({ kind: 'postgres', url: database.url, poolSize: 4 });
    const observer = await openDatabase({ kind: 'postgres', url: database.url, poolSize: 1 });
    try {
      const lockHolders = async () =>
        (
          await observer.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks
              WHERE locktype = 'advisory' AND objid = ${LOCK} AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          )
        )[0]?.n;
      const broken = await db.reserve();
      await broken.query('SELECT pg_advisory_lock($1)', [LOCK]);
      expect(await lockHolders()).toBe(1);
      broken.release(new Error('state unknown'));
      await eventually(async () => ((await lockHolders()) === 0 ? true : undefined));
      const kept = await db.reserve();
      await kept.query('SELECT pg_advisory_lock($1)', [LOCK]);
      expect(await lockHolders()).toBe(1);
      await db.close();
      await eventually(async () => ((await lockHolders()) === 0 ? true : undefined));
    } finally {
      await observer.close();
      await database.drop();
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
      const reserved = await db.reserve();
      const onReserved = await reserved.query<Setting>('SHOW jit');
      reserved.release();
      const plain = await db.query<Setting>('SHOW jit');
      const viaPrisma = await db.prisma.$queryRawUnsafe<Setting[]>('SHOW jit');
      for (const rows of [first, second, inTransaction, onReserved, plain, viaPrisma])
        expect(rows).toEqual([{ jit: 'off' }]);
      // The setting is applied before a new connection is handed out, not queued before its first query.
      expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
    } finally {
      await fixture.dispose();
    }
  });
});
