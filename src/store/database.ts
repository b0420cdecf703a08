import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { DatabaseConfig } from '../config/index.js';
import { withDataFolderLock } from './data-dir-lock.js';
import { PrismaClient } from './generated/prisma/client.js';

/** A connection, or a transaction on one, that runs SQL with positional parameters. */
export interface SqlSession {
  query<Row extends object>(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a parameterless script that may hold several statements. */
  exec(script: string): Promise<void>;
}

/**
 * Everything in `src/store` reaches the database through this: Prisma for
 * typed queries, and plain SQL for what Prisma does slowly or not at all
 * (batch inserts, migrations, advisory locks). Both share one pool, or the one
 * PGlite instance, so there is one place that opens and closes connections.
 */
export interface Database {
  readonly kind: DatabaseConfig['kind'];
  readonly prisma: PrismaClient;
  query: SqlSession['query'];
  /** Runs `work` on one connection that stays checked out until it returns. */
  withSession<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
  /**
   * A connection kept checked out across calls until released: for a
   * session-level advisory lock held over many statements. `close()` destroys
   * any still reserved.
   */
  reserve(): Promise<ReservedSession>;
  /** Runs `work` in a transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * A connection of {@link Database.reserve}. Its statements may be issued without
 * waiting for each other: they are sent in the order issued, each as soon as
 * the one before is answered (node-postgres deprecates queueing them itself).
 */
export interface ReservedSession extends SqlSession {
  /** Runs `work` in a transaction on this connection; commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T>;
  /**
   * Hands the connection back, or with `destroy` closes it instead, which also
   * ends every session-level lock it holds. Once only; later calls do nothing.
   */
  release(destroy?: Error): void;
}

export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  return config.kind === 'postgres'
    ? openPostgres(config.url, config.poolSize)
    : withDataFolderLock(config.dataDir, () => openPGlite(config.dataDir)); // PGlite does not lock its folder
}

function openPostgres(url: string, poolSize: number): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: 5_000,
    // JIT compilation pays off for long analytical queries, and ours are short. On a large
    // audit_events the planner's estimates put the rollup fold past jit_above_cost: at 5,000,000 rows
    // each fold spent 0.78 s compiling for 13 ms of execution (bench/ingest), enough to keep a core
    // busy and the rollups behind. Off for every connection of the pool, Prisma's included; set once
    // connected and before the pool hands the connection out (a query queued behind it is deprecated
    // in node-postgres 8 and refused in 9), not as a startup option, which connection poolers such
    // as PgBouncer refuse. A server without the setting keeps its default.
    onConnect: async (client) => {
      await client.query('SET jit = off').catch(() => undefined);
    },
  });
  // An idle client losing its connection (PostgreSQL restarting) emits 'error' on
  // the pool; unhandled, that would end the process. The next query reports it.
  pool.on('error', () => undefined);
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });

  const sessionOf = (client: pg.PoolClient) => ({
    query: async <Row extends object>(text: string, params?: readonly unknown[]) =>
      (await client.query<Row>(text, params as unknown[] | undefined)).rows,
    exec: async (script: string) => {
      await client.query(script);
    },
  });

  /** Releases of the connections reserved and not yet released, run by close(). */
  const reservations = new Set<(destroy?: Error) => void>();

  const reserve = async (): Promise<ReservedSession> => {
    const client = await pool.connect();
    // A checked-out client whose connection drops (PostgreSQL stopping) emits 'error' besides
    // failing its query, and the pool listens only to idle clients: unheard, it ends the process.
    let lost: Error | undefined;
    const onConnectionLost = (error: Error) => {
      lost = error;
    };
    client.on('error', onConnectionLost);
    const connection = sessionOf(client);
    let previous: Promise<unknown> = Promise.resolve();
    const inTurn = <T>(send: () => Promise<T>): Promise<T> => {
      const sent = previous.then(send, send);
      previous = sent.catch(() => undefined);
      return sent;
    };
    const session: SqlSession = {
      query: (text, params) => inTurn(() => connection.query(text, params)),
      exec: (script) => inTurn(() => connection.exec(script)),
    };
    const release = (destroy?: Error) => {
      if (!reservations.delete(release)) return;
      client.off('error', onConnectionLost);
      client.release(lost ?? destroy);
    };
    reservations.add(release);
    return {
      query: session.query,
      exec: session.exec,
      transaction: (work) => inTransaction(session, work),
      release,
    };
  };

  const withSession = async <T>(work: (session: SqlSession) => Promise<T>): Promise<T> => {
    const session = await reserve();
    let broken: Error | undefined;
    try {
      return await work(session);
    } catch (error) {
      // A connection that failed mid-work may be unusable: do not return it to the pool.
      const failure = error instanceof Error ? error : new Error(String(error));
      if (isConnectionLevel(failure)) broken = failure;
      throw error;
    } finally {
      session.release(broken);
    }
  };

  return {
    kind: 'postgres',
    prisma,
    query: async <Row extends object>(text: string, params?: readonly unknown[]) =>
      (await pool.query<Row>(text, params as unknown[] | undefined)).rows,
    withSession,
    reserve,
    transaction: (work) => withSession((session) => inTransaction(session, work)),
    async close() {
      for (const release of [...reservations]) release(new Error('the database is closing'));
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

type PGliteTransaction = Parameters<Parameters<PGlite['transaction']>[0]>[0];

function transactionSession(tx: PGliteTransaction): SqlSession {
  return {
    query: async <Row extends object>(text: string, params?: readonly unknown[]) =>
      (await tx.query<Row>(text, params as unknown[] | undefined)).rows,
    exec: async (script) => {
      await tx.exec(script);
    },
  };
}

async function openPGlite(dataDir: string): Promise<Database> {
  await mkdir(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir);
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });

  const session: SqlSession = {
    query: async <Row extends object>(text: string, params?: readonly unknown[]) =>
      (await pglite.query<Row>(text, params as unknown[] | undefined)).rows,
    exec: async (script) => {
      await pglite.exec(script);
    },
  };
  const transaction: Database['transaction'] = (work) =>
    pglite.transaction((tx) => work(transactionSession(tx)));

  return {
    kind: 'pglite',
    prisma,
    query: session.query,
    // PGlite is one connection: a session is the instance itself.
    withSession: (work) => work(session),
    reserve: () => Promise.resolve({ ...session, transaction, release: () => undefined }),
    transaction,
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

/** Runs `work` between BEGIN and COMMIT on `session`, or ROLLBACK when it throws. */
async function inTransaction<T>(session: SqlSession, work: (tx: SqlSession) => Promise<T>): Promise<T> {
  await session.exec('BEGIN');
  try {
    const result = await work(session);
    await session.exec('COMMIT');
    return result;
  } catch (error) {
    await session.exec('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Errors after which a connection must not be reused. */
function isConnectionLevel(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code !== 'string' || code.startsWith('08') || code.startsWith('57P') || code.startsWith('E');
}
