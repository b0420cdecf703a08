/**
 * --breakdown: the worker's own code run in this process with timers around its
 * calls, to split a batch's time into read/validate/insert/ack; and the raw
 * insert made, step by step, more like insertBatch's statement.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { eventColumns } from '../../support/event-columns.js';
import { makeEvents } from '../events.js';
import type { Options } from '../options.js';
import { RAW_INSERT } from './raw-insert.js';

export interface Breakdown {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  batches: number;
  /** Share of the wall time, and mean milliseconds per batch, of each step. */
  steps: Record<string, { share: number; msPerBatch: number; calls: number }>;
  /** The raw insert, step by step closer to insertBatch's statement, on fresh rows each. */
  sqlShapes?: Array<{ shape: string; eventsPerSecond: number; msPerBatch: number }>;
}

/**
 * What each part of insertBatch's SQL costs over the raw ceiling: batches into
 * audit_events_raw on one connection, adding one feature at a time. Timed from
 * sending the statement (parameters already built) to its result.
 */
export async function sqlShapes(
  client: pg.Client,
  count: number,
  batch: number,
): Promise<Breakdown['sqlShapes']> {
  const onConflict = `${RAW_INSERT} ON CONFLICT (id) DO NOTHING`;
  const counted = `WITH inserted AS (${onConflict} RETURNING 1) SELECT count(*)::int AS inserted FROM inserted`;
  // As insertBatch runs: in a transaction holding the write lease's advisory lock.
  const leased = (statement: string) => async (params: unknown[]) => {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [0x61756469]);
    await client.query(statement, params);
    await client.query('COMMIT');
  };
  const shapes: Array<{ shape: string; run: (params: unknown[]) => Promise<void> }> = [
    {
      shape: 'plain INSERT ... SELECT unnest (the ceiling)',
      run: async (params) => void (await client.query(RAW_INSERT, params)),
    },
    {
      shape: '+ ON CONFLICT (id) DO NOTHING',
      run: async (params) => void (await client.query(onConflict, params)),
    },
    {
      shape: '+ RETURNING 1 counted in a CTE',
      run: async (params) => void (await client.query(counted, params)),
    },
    {
      shape: '+ BEGIN, pg_advisory_xact_lock, COMMIT',
      run: leased(counted),
    },
  ];
  // insertBatch's statement also maintains the analytics rollups, when the store has them.
  const analytics = (await import('../../../src/store/rollup-sql.js').catch(() => undefined)) as
    { insertWithRollupsSql?: (insert: string) => string } | undefined;
  if (typeof analytics?.insertWithRollupsSql === 'function') {
    shapes.push({
      shape: '+ rollup CTEs (the insert before rollups were folded)',
      run: leased(analytics.insertWithRollupsSql(onConflict)),
    });
  }
  // Interleaved, one batch of each shape in turn, so background noise falls on all of them alike.
  const spent = shapes.map(() => 0);
  const rounds = Math.max(1, Math.ceil(count / batch));
  await client.query('CHECKPOINT');
  for (let round = 0; round < rounds; round += 1) {
    for (const [index, { run }] of shapes.entries()) {
      const slice = makeEvents(batch);
      const params = eventColumns(slice, 'json array');
      const started = performance.now();
      await run(params);
      spent[index]! += performance.now() - started;
    }
  }
  const results: NonNullable<Breakdown['sqlShapes']> = shapes.map(({ shape }, index) => ({
    shape,
    eventsPerSecond: (rounds * batch) / (spent[index]! / 1000),
    msPerBatch: spent[index]! / rounds,
  }));
  return results;
}

export async function instrumentedDrain(
  options: Options,
  url: string,
  stream: string,
  count: number,
): Promise<Breakdown> {
  const { createRedisQueue } = await import('../../../src/queue/redis-queue.js');
  const { openDatabase } = await import('../../../src/store/database.js');
  const { createEventStore } = await import('../../../src/store/event-store.js');
  const { createRollupFolder } = await import('../../../src/store/rollup-folder.js');
  const { createWorker } = await import('../../../src/worker/worker.js');
  const { createLogger } = await import('../../../src/observability/logger.js');

  const running = new Map<string, { ms: number; calls: number }>();
  const add = (step: string, ms: number) => {
    const total = running.get(step) ?? { ms: 0, calls: 0 };
    total.ms += ms;
    total.calls += 1;
    running.set(step, total);
  };
  const PREPARE_STEP = 'store.prepareBatch (while the batch before is written)';
  function timed<Args extends unknown[], R>(step: string, fn: (...args: Args) => Promise<R>) {
    return async (...args: Args): Promise<R> => {
      const started = performance.now();
      try {
        return await fn(...args);
      } finally {
        add(step, performance.now() - started);
      }
    };
  }

  const db = await openDatabase({ kind: 'postgres', url, poolSize: 10 });
  const queue = await createRedisQueue({ url: options.redisUrl, stream, maxLength: 10_000_000 });
  // Time the statements on the write lease's connection (src/store/write-lease.ts, createWriteLease):
  // the batches' inserts (from issue to answer: with two under way, the second's time includes its
  // wait behind the first), and taking and giving back the lease.
  const stepOf = (text: string) =>
    text.includes('INSERT INTO audit_events')
      ? 'insertBatch: INSERT statement (issued to answered)'
      : 'insertBatch: lease taken, given back, state read';
  const timedDb: typeof db = {
    ...db,
    reserve: async () => {
      const session = await db.reserve();
      return {
        ...session,
        query: <Row extends object>(text: string, params?: readonly unknown[]) =>
          timed(stepOf(text), () => session.query<Row>(text, params))(),
      };
    },
  };
  const store = createEventStore(timedDb, { rollups: createRollupFolder(timedDb) });
  let persisted = 0;
  const worker = createWorker({
    queue: {
      ...queue,
      read: timed('queue.read (XREADGROUP)', queue.read),
      readPending: timed('queue.readPending', queue.readPending),
      claimStale: timed('queue.claimStale (XAUTOCLAIM)', queue.claimStale),
      ack: timed('queue.ack (XACK+XDEL)', queue.ack),
    },
    store: {
      insertBatch: timed('store.insertBatch (total)', store.insertBatch),
      // As the worker runs it: the next batch prepared while one is written.
      prepareBatch: (events) => {
        const started = performance.now();
        try {
          return store.prepareBatch(events);
        } finally {
          add(PREPARE_STEP, performance.now() - started);
        }
      },
    },
    logger: createLogger({ level: 'warn' }),
    consumerName: 'bench-breakdown',
    batchSize: options.batchSize,
    claimIdleMs: 30_000,
    onPersisted: (n) => {
      persisted += n;
    },
  });
  const started = performance.now();
  worker.start();
  const deadline = Date.now() + 300_000;
  while (persisted < count && Date.now() < deadline) await sleep(20);
  const elapsedMs = performance.now() - started;
  // Taken now: the read that blocks on the empty stream while the worker stops is no part of the drain.
  const totals = new Map([...running].map(([step, total]) => [step, { ...total }]));
  await worker.stop(5000);
  await queue.close();
  await db.close();

  const batches = totals.get('store.insertBatch (total)')?.calls ?? 1;
  const steps: Breakdown['steps'] = {};
  const put = (step: string, ms: number, calls = batches) => {
    steps[step] = { share: ms / elapsedMs, msPerBatch: ms / batches, calls };
  };
  let accounted = 0;
  for (const [step, total] of totals) {
    put(step, total.ms, total.calls);
    if (!step.startsWith('insertBatch:') && step !== PREPARE_STEP) accounted += total.ms;
  }
  put(
    'worker: parsing, waiting on the next batch, the loop (the rest of the wall time)',
    elapsedMs - accounted,
  );
  return {
    events: persisted,
    seconds: elapsedMs / 1000,
    eventsPerSecond: persisted / (elapsedMs / 1000),
    batches,
    steps,
  };
}
