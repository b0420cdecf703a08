import { v7 as uuidv7 } from 'uuid';
import { afterEach, describe, expect, it } from 'vitest';
import type { QueuedEvent } from '../../src/events/queue-message.js';
import { createLogger } from '../../src/observability/logger.js';
import type { EventQueue } from '../../src/queue/event-queue.js';
import { createMemoryQueue } from '../../src/queue/memory-queue.js';
import { createRedisQueue } from '../../src/queue/redis-queue.js';
import type { Database } from '../../src/store/database.js';
import { createEventStore, PreparedBatch, type EventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import { migrate } from '../../src/store/migrate.js';
import { createWorker, type WorkerOptions } from '../../src/worker/worker.js';
import { eventually } from '../support/app.js';
import { queuedEvent } from '../support/queued-event.js';
import { openPGliteFixture, openPostgresFixture, type DatabaseFixture } from '../support/databases.js';
import { postgresAvailable, REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';

interface Backends {
  queue: EventQueue;
  db: Database;
  store: EventStore;
  close(): Promise<void>;
}

/** A migrated database with the worker's store over it, beside `queue`. */
async function withStore(fixture: DatabaseFixture, queue: EventQueue): Promise<Backends> {
  const { db } = fixture;
  await migrate(db);
  return {
    queue,
    db,
    store: createEventStore(db, { rollups: createRollupFolder(db) }),
    async close() {
      await queue.close();
      await fixture.dispose();
    },
  };
}

const openers: Record<string, () => Promise<Backends>> = {
  'PGlite + in-process queue': async () =>
    withStore(await openPGliteFixture(), createMemoryQueue({ maxLength: 100_000 })),
  'PostgreSQL + Redis Streams': async () =>
    withStore(
      await openPostgresFixture(),
      await createRedisQueue({ url: REDIS_URL, stream: uniqueStream('worker'), maxLength: 100_000 }),
    ),
};

const transient = () => Object.assign(new Error('connection lost'), { code: '08006' });

for (const [name, open] of Object.entries(openers)) {
  const needsServers = name.startsWith('PostgreSQL');
  describe.skipIf(needsServers && !(postgresAvailable && redisAvailable))(`worker on ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    const setup = async (overrides: Partial<WorkerOptions> = {}) => {
      const backends = await open();
      cleanups.push(() => backends.close());
      const deadLetters: string[] = [];
      const worker = createWorker({
        queue: backends.queue,
        store: backends.store,
        logger: createLogger({ level: 'silent' }),
        consumerName: `test-${uuidv7()}`,
        batchSize: 100,
        claimIdleMs: 60_000,
        blockMs: 50,
        backoff: { initialMs: 5, maxMs: 20 },
        onDeadLetter: (reason) => deadLetters.push(reason),
        ...overrides,
      });
      cleanups.push(() => worker.stop(1000));
      return { ...backends, worker, deadLetters };
    };

    /** A worker in batches of 10 over a queue or store the test wraps, started on `events`. */
    const startWrapped = async (
      name: string,
      queue: WorkerOptions['queue'],
      store: WorkerOptions['store'],
      events: readonly QueuedEvent[],
      overrides: Partial<WorkerOptions> = {},
    ) => {
      const worker = createWorker({
        queue,
        store,
        logger: createLogger({ level: 'silent' }),
        consumerName: name,
        batchSize: 10,
        claimIdleMs: 60_000,
        blockMs: 50,
        ...overrides,
      });
      cleanups.push(() => worker.stop(1000));
      await queue.enqueue(events.map((event) => JSON.stringify(event)));
      worker.start();
      return worker;
    };

    it('sets aside a message that is not an event and stores the ones around it', async () => {
      const { queue, store, worker } = await setup();
      const before = queuedEvent();
      const after = queuedEvent();
      await queue.enqueue([
        JSON.stringify(before),
        '{not json',
        JSON.stringify({ v: 1, id: 'x' }),
        JSON.stringify(after),
      ]);
      worker.start();
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds([before.id, after.id])).toBe(2);
      const letters = await queue.listDeadLetters(10);
      expect(letters.map((letter) => letter.reason)).toEqual([
        expect.stringContaining('not a queued event'),
        expect.stringContaining('not JSON'),
      ]);
      expect((await queue.stats()).deadLetters).toBe(2);
    });

    it('isolates a row the database refuses by splitting the batch, storing every other row', async () => {
      const { queue, store, worker, deadLetters } = await setup();
      const good = Array.from({ length: 37 }, () => queuedEvent());
      const refused = queuedEvent({ sessionId: 'nul\u0000byte' });
      const bodies = good.map((event) => JSON.stringify(event));
      bodies.splice(20, 0, JSON.stringify(refused));
      await queue.enqueue(bodies);
      worker.start();
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds(good.map((event) => event.id))).toBe(good.length);
      expect(await store.countByIds([refused.id])).toBe(0);
      expect(deadLetters).toHaveLength(1);
      const [letter] = await queue.listDeadLetters(1);
      expect(JSON.parse(letter!.body)).toMatchObject({ id: refused.id });
      expect(letter!.reason).toMatch(/^insert failed/);
    });

    it('sets aside an event whose payload cannot be encoded (1e400 read as Infinity) and stores the 1,000 behind it', async () => {
      const { queue, store, worker, deadLetters } = await setup();
      const poison = queuedEvent({ payload: { x: 0 } });
      const behind = Array.from({ length: 1000 }, () => queuedEvent());
      await queue.enqueue([
        JSON.stringify(poison).replace('"x":0', '"x":1e400'),
        ...behind.map((event) => JSON.stringify(event)),
      ]);
      worker.start();
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds(behind.map((event) => event.id))).toBe(behind.length);
      expect(deadLetters).toEqual([expect.stringMatching(/non-finite/)]);
      const [letter] = await queue.listDeadLetters(1);
      expect(letter!.body).toContain(poison.id);
    });

    it('dead-letters an event a database trigger refuses, with the reason, and stores the 1,000 sent after it', async () => {
      const { queue, store, db, worker } = await setup();
      await db.query(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.payload ? 'poison' THEN RAISE EXCEPTION 'poison refused by the test trigger'; END IF;
          RETURN NEW;
        END $$`);
      await db.query(
        'CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()',
      );
      const poison = queuedEvent({ payload: { poison: true } });
      const behind = Array.from({ length: 1000 }, () => queuedEvent());
      await queue.enqueue([poison, ...behind].map((event) => JSON.stringify(event)));
      worker.start();
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds(behind.map((event) => event.id))).toBe(behind.length);
      expect(await store.countByIds([poison.id])).toBe(0);
      const letters = await queue.listDeadLetters(10);
      expect(letters).toHaveLength(1);
      expect(letters[0]!.reason).toMatch(/^insert failed: P0001 poison refused by the test trigger/);
    });

    it('treats a failure of unknown cause as permanent after a bounded number of attempts: the event is isolated, the rest stored', async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 10 }, () => queuedEvent());
      const culprit = events[6]!.id;
      const idsOf = (batch: Parameters<EventStore['insertBatch']>[0]) =>
        batch instanceof PreparedBatch
          ? batch.candidates.map((item) => item.id)
          : batch.map((item) => item.id);
      let wholeBatchAttempts = 0;
      const deadLetters: string[] = [];
      await startWrapped(
        'unknown',
        queue,
        {
          insertBatch: async (batch) => {
            const ids = idsOf(batch);
            if (ids.length === events.length) wholeBatchAttempts += 1;
            if (ids.includes(culprit)) throw new Error('a failure nobody classified');
            return store.insertBatch(batch);
          },
        },
        events,
        { backoff: { initialMs: 1, maxMs: 5 }, onDeadLetter: (reason) => deadLetters.push(reason) },
      );
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(wholeBatchAttempts).toBe(3);
      expect(deadLetters).toEqual(['insert failed: a failure nobody classified']);
      expect(await store.countByIds(events.map((event) => event.id).filter((id) => id !== culprit))).toBe(9);
    });

    it('sets nothing aside for a failure of unknown cause while the database does not answer, and stores everything once it does', async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 4 }, () => queuedEvent());
      let down = true;
      let failures = 0;
      let recovered: () => void = () => undefined;
      const manyFailures = new Promise<void>((resolve) => (recovered = resolve));
      const deadLetters: string[] = [];
      const worker = await startWrapped(
        'unanswered',
        queue,
        {
          insertBatch: async (batch) => {
            if (down) {
              failures += 1;
              if (failures === 20) recovered();
              throw new Error('socket hang up, in words nobody classified');
            }
            return store.insertBatch(batch);
          },
        },
        events,
        {
          backoff: { initialMs: 1, maxMs: 2 },
          onDeadLetter: (reason) => deadLetters.push(reason),
          probe: async () => {
            if (down) throw new Error('database down');
          },
        },
      );
      await manyFailures;
      expect(deadLetters).toEqual([]);
      expect(worker.heldForMs()).toBeGreaterThan(0);
      down = false;
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds(events.map((event) => event.id))).toBe(events.length);
      expect(deadLetters).toEqual([]);
      expect(worker.heldForMs()).toBe(0);
    });

    it('reports how long its oldest batch has waited while inserts fail transiently, and 0 once it is stored', async () => {
      const { queue, store } = await setup();
      let down = true;
      let failed: () => void = () => undefined;
      const firstFailure = new Promise<void>((resolve) => (failed = resolve));
      const worker = await startWrapped(
        'held',
        queue,
        {
          insertBatch: async (batch) => {
            if (down) {
              failed();
              throw transient();
            }
            return store.insertBatch(batch);
          },
        },
        [queuedEvent()],
        { backoff: { initialMs: 1, maxMs: 5 } },
      );
      await firstFailure;
      const first = worker.heldForMs();
      await eventually(async () => (worker.heldForMs() > first ? true : undefined));
      down = false;
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(worker.heldForMs()).toBe(0);
    });

    it('prepares the next batch while one is being written, and has at most two writes under way, started in order', async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 30 }, (_, n) => queuedEvent({ payload: { n } }));
      const firstIdOf = (batch: Parameters<EventStore['insertBatch']>[0]) =>
        batch instanceof PreparedBatch ? batch.candidates[0]!.id : batch[0]!.id;
      const prepared: string[] = [];
      const written: string[] = [];
      let writing = 0;
      let mostWritingAtOnce = 0;
      let secondPrepared: () => void = () => undefined;
      // Resolves true once the second batch is prepared, false if that never happens while the first is held.
      const overlapped = new Promise<boolean>((resolve) => {
        secondPrepared = () => resolve(true);
        setTimeout(() => resolve(false), 3000);
      });
      let firstWriteOverlapped: boolean | undefined;
      const observed: Pick<EventStore, 'insertBatch' | 'prepareBatch'> = {
        prepareBatch: (batch) => {
          prepared.push(batch[0]!.id);
          if (prepared.length === 2) secondPrepared();
          return store.prepareBatch(batch);
        },
        insertBatch: async (batch) => {
          writing += 1;
          mostWritingAtOnce = Math.max(mostWritingAtOnce, writing);
          try {
            if (written.length === 0) firstWriteOverlapped = await overlapped;
            written.push(firstIdOf(batch));
            return await store.insertBatch(batch);
          } finally {
            writing -= 1;
          }
        },
      };
      await startWrapped('pipelined', queue, observed, events);
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(firstWriteOverlapped).toBe(true);
      // The first write is held until the second batch is prepared: the second goes out behind it
      // (the store sends it while the first runs), the third waits for the first.
      expect(mostWritingAtOnce).toBe(2);
      const firstOfEachBatch = [events[0]!.id, events[10]!.id, events[20]!.id];
      expect(prepared).toEqual(firstOfEachBatch);
      expect(written).toEqual(firstOfEachBatch);
      expect(await store.countByIds(events.map((event) => event.id))).toBe(30);
    });

    it("sends the next batch's write before announcing the batch before, and announces every batch, in order, before it stops", async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 30 }, (_, n) => queuedEvent({ payload: { n } }));
      const steps: string[] = [];
      let secondPrepared: () => void = () => undefined;
      const prepared = new Promise<void>((resolve) => (secondPrepared = resolve));
      let preparations = 0;
      let writes = 0;
      const worker = await startWrapped(
        'announce-after-next-write',
        queue,
        {
          prepareBatch: (batch) => {
            preparations += 1;
            if (preparations === 2) secondPrepared();
            return store.prepareBatch(batch);
          },
          insertBatch: async (batch) => {
            writes += 1;
            steps.push(`write ${writes}`);
            // The first write ends only once the second batch waits, ready, behind it.
            if (writes === 1) await prepared;
            return store.insertBatch(batch);
          },
        },
        events,
        { onCommitted: (stored) => steps.push(`announce ${stored.map((event) => event.seq).join(',')}`) },
      );
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      await worker.stop(5000);

      // Each batch's announcement comes after the next batch's write went out.
      const announcements = steps.filter((step) => step.startsWith('announce '));
      expect(announcements).toHaveLength(3);
      announcements.slice(0, -1).forEach((announcement, index) => {
        expect(steps.indexOf(`write ${index + 2}`)).toBeLessThan(steps.indexOf(announcement));
      });
      const announced = steps
        .filter((step) => step.startsWith('announce '))
        .flatMap((step) => step.slice('announce '.length).split(','))
        .map(Number);
      expect(announced).toHaveLength(30);
      expect(announced).toEqual([...announced].sort((a, b) => a - b));
    });

    it('writes the next batch while the one before is still being acknowledged, and stops only once every acknowledgement landed', async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 20 }, (_, n) => queuedEvent({ payload: { n } }));
      let releaseAcks: () => void = () => undefined;
      const acksHeld = new Promise<void>((resolve) => (releaseAcks = resolve));
      const acked: number[] = [];
      let inserts = 0;
      const worker = await startWrapped(
        'acks-behind',
        {
          ...queue,
          ack: async (ids) => {
            await acksHeld;
            await queue.ack(ids);
            acked.push(ids.length);
          },
        },
        {
          insertBatch: (batch) => {
            inserts += 1;
            return store.insertBatch(batch);
          },
        },
        events,
      );
      await eventually(async () => (inserts >= 2 ? true : undefined), 5000, 'the second batch written');
      expect(acked).toEqual([]);

      let stopped = false;
      const stopping = worker.stop(5000).then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(stopped).toBe(false);
      releaseAcks();
      await stopping;
      expect(acked).toEqual([10, 10]);
      expect((await queue.stats()).depth).toBe(0);
      expect(await store.countByIds(events.map((event) => event.id))).toBe(20);
    });

    it('stores a batch whose preparation failed: the insert prepares it again, where a failure would be isolated', async () => {
      const { queue, store } = await setup();
      const events = Array.from({ length: 5 }, () => queuedEvent());
      await startWrapped(
        'unprepared',
        queue,
        {
          insertBatch: (batch) => store.insertBatch(batch),
          prepareBatch: () => {
            throw new Error('cannot prepare');
          },
        },
        events,
      );
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(await store.countByIds(events.map((event) => event.id))).toBe(5);
      expect((await queue.stats()).deadLetters).toBe(0);
    });

    it('retries transient database failures and acknowledges only after the insert succeeded', async () => {
      let failuresLeft = 3;
      let attempts = 0;
      const backends = await setup();
      const { queue, store } = backends;
      const flakyStore: Pick<EventStore, 'insertBatch'> = {
        insertBatch: async (events) => {
          attempts += 1;
          if (failuresLeft > 0) {
            failuresLeft -= 1;
            // While the database is failing, the entries must still be held.
            expect((await queue.stats()).depth).toBe(1);
            throw transient();
          }
          return store.insertBatch(events);
        },
      };
      const worker = createWorker({
        queue,
        store: flakyStore,
        logger: createLogger({ level: 'silent' }),
        consumerName: 'flaky',
        batchSize: 10,
        claimIdleMs: 60_000,
        blockMs: 50,
        backoff: { initialMs: 1, maxMs: 5 },
      });
      cleanups.push(() => worker.stop(1000));
      const event = queuedEvent();
      await queue.enqueue([JSON.stringify(event)]);
      worker.start();
      await eventually(async () => ((await queue.stats()).depth === 0 ? true : undefined));
      expect(attempts).toBe(4);
      expect(await store.countByIds([event.id])).toBe(1);
      expect((await queue.stats()).deadLetters).toBe(0);
    });

    it('leaves a batch pending, neither stored nor dead-lettered, when stopped while the database is down', async () => {
      const { queue } = await setup();
      let entered: () => void = () => undefined;
      const insertStarted = new Promise<void>((resolve) => (entered = resolve));
      const worker = createWorker({
        queue,
        store: {
          insertBatch: async () => {
            entered();
            throw transient();
          },
        },
        logger: createLogger({ level: 'silent' }),
        consumerName: 'stopped',
        batchSize: 10,
        claimIdleMs: 60_000,
        blockMs: 50,
        backoff: { initialMs: 5, maxMs: 10 },
      });
      await queue.enqueue([JSON.stringify(queuedEvent()), JSON.stringify(queuedEvent())]);
      worker.start();
      await insertStarted;
      await worker.stop(50);
      expect(await queue.readPending('stopped', 10)).toHaveLength(2);
      expect((await queue.stats()).deadLetters).toBe(0);
    });

    it('drains everything queued before it stops when asked to (the in-process queue dies with the process)', async () => {
      const { queue, store, worker } = await setup({ drainQueueOnStop: true, batchSize: 500 });
      const events = Array.from({ length: 3000 }, () => queuedEvent());
      await queue.enqueue(events.map((event) => JSON.stringify(event)));
      worker.start();
      await worker.stop(30_000);
      expect((await queue.stats()).depth).toBe(0);
      expect(await store.countByIds(events.map((event) => event.id))).toBe(events.length);
    });
  });
}
