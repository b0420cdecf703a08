import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  announce,
  createMemoryEventBus,
  createRedisEventBus,
  type EventBus,
} from '../../src/live/event-bus.js';
import { createLiveFeed, type Attendance, type LiveFeed } from '../../src/live/live-feed.js';
import { createLogger } from '../../src/observability/logger.js';
import { createEventQueries } from '../../src/query/event-queries.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent, StoredEvent } from '../../src/events/stored-event.js';
import { migrate } from '../../src/store/migrate.js';
import { eventually } from '../support/app.js';
import { openPGliteFixture, openPostgresFixture, type DatabaseFixture } from '../support/databases.js';
import { postgresAvailable, REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';

const newEvents = (count: number): NewEvent[] =>
  Array.from({ length: count }, () => ({
    id: randomUUID(),
    eventType: 'review_started',
    sessionId: 'feed',
    payload: {},
    clientTime: null,
    receivedAt: new Date().toISOString(),
    apiKeyId: null,
  }));

/**
 * The feed's promise: every stored event, once, in seq order, whatever happens
 * to the announcements. Run with PostgreSQL + Redis pub/sub and PGlite + the
 * in-process bus.
 */
function liveFeedContract(
  name: string,
  open: () => Promise<DatabaseFixture>,
  openBus: () => EventBus,
  options: { skip?: boolean } = {},
) {
  describe.skipIf(options.skip === true)(`live feed on ${name}`, () => {
    let fixture: DatabaseFixture;
    let store: ReturnType<typeof createEventStore>;
    let bus: EventBus;
    let feed: LiveFeed;
    let attendance: Attendance;
    const delivered: StoredEvent[] = [];
    let recovered = 0;

    beforeAll(async () => {
      fixture = await open();
      await migrate(fixture.db);
      store = createEventStore(fixture.db, { rollups: createRollupFolder(fixture.db) });
      await store.insertBatch(newEvents(3)); // stored before the feed starts: never delivered
      bus = openBus();
      feed = createLiveFeed({
        bus,
        source: createEventQueries({ store }),
        logger: createLogger({ level: 'silent' }),
        idleCheckMs: 200,
        onRecovered: (count) => (recovered += count),
      });
      await feed.start();
      feed.listen((events) => delivered.push(...events));
      attendance = feed.attend(); // as a live subscriber does: the feed reads what it misses
      await attendance.startAfter;
    });
    afterAll(async () => {
      await feed?.stop();
      await bus?.close();
      await fixture?.dispose();
    });

    const seqsOf = (events: readonly StoredEvent[]) => events.map((event) => event.seq);
    const waitForDelivered = (count: number) =>
      eventually(async () => (delivered.length >= count ? true : undefined), 10_000, `${count} delivered`);

    it('delivers announced events, and recovers from the database the ones announced late, out of order or never', async () => {
      // Announced in order.
      const first = (await store.insertBatch(newEvents(5))).stored;
      await bus.publish(first);
      await waitForDelivered(5);
      expect(seqsOf(delivered)).toEqual(seqsOf(first));
      expect(recovered).toBe(0);

      // A lost announcement, then a later one: the gap is read from the database.
      const lost = (await store.insertBatch(newEvents(4))).stored;
      const next = (await store.insertBatch(newEvents(2))).stored;
      await bus.publish(next);
      await waitForDelivered(11);
      expect(seqsOf(delivered.slice(5))).toEqual([...seqsOf(lost), ...seqsOf(next)]);
      expect(recovered).toBe(4);

      // Late and reordered announcements, and a repeated one: nothing twice, nothing out of order.
      const early = (await store.insertBatch(newEvents(3))).stored;
      const late = (await store.insertBatch(newEvents(3))).stored;
      await bus.publish(late);
      await bus.publish(early);
      await bus.publish(next);
      await waitForDelivered(17);

      // The last announcement lost with nothing after it: the idle check finds it.
      const tail = (await store.insertBatch(newEvents(2))).stored;
      await waitForDelivered(19);
      expect(seqsOf(delivered.slice(11))).toEqual([...seqsOf(early), ...seqsOf(late), ...seqsOf(tail)]);

      await new Promise((resolve) => setTimeout(resolve, 500));
      const all = seqsOf(delivered);
      expect(new Set(all).size).toBe(all.length);
      expect(all).toEqual([...all].sort((a, b) => Number(BigInt(a) - BigInt(b))));
      expect(delivered).toHaveLength(19);
    });

    it('while nobody attends, moves past missed events without reading them, and workers do not announce', async () => {
      attendance.release();
      await eventually(async () => ((await bus.hasAudience()) ? undefined : true), 10_000, 'no audience');
      const deliveredBefore = delivered.length;
      const recoveredBefore = recovered;
      const heard: StoredEvent[] = [];
      const unsubscribe = await bus.subscribe((events) => heard.push(...events));
      try {
        const skipped = (await store.insertBatch(newEvents(3))).stored;
        await announce(bus, skipped);
        await eventually(
          async () => (feed.position() === BigInt(skipped.at(-1)!.seq) ? true : undefined),
          10_000,
          'position past the skipped events',
        );
        expect(delivered).toHaveLength(deliveredBefore);
        expect(recovered).toBe(recoveredBefore);
        expect(heard).toEqual([]);

        // The next subscriber starts after the newest stored event; workers announce again.
        const newest = (await store.insertBatch(newEvents(1))).stored;
        attendance = feed.attend();
        expect(await attendance.startAfter).toBe(BigInt(newest[0]!.seq));
        await eventually(async () => ((await bus.hasAudience()) ? true : undefined), 10_000, 'audience');
        const live = (await store.insertBatch(newEvents(2))).stored;
        await announce(bus, live);
        await waitForDelivered(deliveredBefore + 2);
        expect(seqsOf(delivered.slice(deliveredBefore))).toEqual(seqsOf(live));
        expect(seqsOf(heard)).toEqual(seqsOf(live));
        expect(recovered).toBe(recoveredBefore);
      } finally {
        unsubscribe();
      }
    });

    it('announces stored events with every field as the database holds them', async () => {
      const payload = {
        text: 'quote " backslash \\ line\u2028 emoji 🦉',
        nested: { n: -0.5, list: [1, null, true] },
      };
      const written: NewEvent[] = [
        {
          ...newEvents(1)[0]!,
          sessionId: 'sess "1"',
          payload,
          clientTime: '2026-11-26T15:00:00.123Z',
          apiKeyId: 'key_x',
        },
        ...newEvents(1),
      ];
      const received: StoredEvent[] = [];
      const unsubscribe = await bus.subscribe((events) => received.push(...events));
      try {
        const { stored } = await store.insertBatch(written);
        await bus.publish(stored);
        await eventually(async () => (received.length >= 2 ? true : undefined), 10_000, 'announcement');
        const fromDatabase = await Promise.all(stored.map((event) => store.findById(event.id)));
        expect(received.map(({ payloadJson: _text, ...event }) => event)).toEqual(fromDatabase);
      } finally {
        unsubscribe();
      }
    });
  });
}

liveFeedContract(
  'PostgreSQL + Redis pub/sub',
  openPostgresFixture,
  () => createRedisEventBus(REDIS_URL, `${uniqueStream('feed')}:persisted`),
  { skip: !(postgresAvailable && redisAvailable) },
);
liveFeedContract('PGlite + in-process bus', openPGliteFixture, createMemoryEventBus);
