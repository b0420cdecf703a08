import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent } from '../../src/events/stored-event.js';
import { classifyStoreError } from '../../src/failure-class.js';
import { migrate, readMigrations } from '../../src/store/migrate.js';

import type { DatabaseFixture } from '../support/databases.js';

const newEvent = (overrides: Partial<NewEvent> = {}): NewEvent => ({
  id: uuidv7(),
  eventType: 'review_started',
  sessionId: `s-${uuidv7()}`,
  payload: { code_language: 'python', file_count: 3 },
  clientTime: null,
  receivedAt: new Date().toISOString(),
  apiKeyId: 'admin',
  ...overrides,
});

/** What every database backend must do for the event store; run on PostgreSQL and PGlite. */
export function eventStoreContract(
  name: string,
  open: () => Promise<DatabaseFixture>,
  options: { skip?: boolean } = {},
) {
  describe.skipIf(options.skip === true)(`EventStore contract: ${name}`, () => {
    let fixture: DatabaseFixture;
    let store: ReturnType<typeof createEventStore>;

    beforeAll(async () => {
      fixture = await open();
      await migrate(fixture.db);
      store = createEventStore(fixture.db, { rollups: createRollupFolder(fixture.db) });
    });
    afterAll(async () => {
      await fixture?.dispose();
    });

    it('migrates once: a second run applies nothing and Prisma’s table records every migration', async () => {
      expect(await migrate(fixture.db)).toEqual({ applied: [] });
      const rows = await fixture.db.query<{
        migration_name: string;
        checksum: string;
        finished_at: Date | null;
      }>('SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" ORDER BY migration_name');
      const files = await readMigrations();
      expect(rows.map((row) => [row.migration_name, row.checksum])).toEqual(
        files.map((file) => [file.name, file.checksum]),
      );
      expect(rows.every((row) => row.finished_at !== null)).toBe(true);
    });

    it('stores every field of a batch and assigns increasing seq in batch order', async () => {
      const session = `s-${uuidv7()}`;
      const batch = [
        newEvent({
          sessionId: session,
          clientTime: '2026-01-02T03:04:05.678Z',
          payload: { nested: { a: [1, 'ü'] } },
        }),
        newEvent({ sessionId: session, eventType: 'review_completed', apiKeyId: null }),
      ];
      expect((await store.insertBatch(batch)).inserted).toBe(2);
      const stored = await store.listEvents({ sessionId: session, limit: 10 });
      expect(stored.map((event) => event.id)).toEqual([batch[1]!.id, batch[0]!.id]);
      expect(BigInt(stored[0]!.seq)).toBeGreaterThan(BigInt(stored[1]!.seq));
      expect(stored[1]).toMatchObject({
        eventType: 'review_started',
        sessionId: session,
        payload: { nested: { a: [1, 'ü'] } },
        apiKeyId: 'admin',
      });
      expect(stored[1]!.clientTime?.toISOString()).toBe('2026-01-02T03:04:05.678Z');
      expect(stored[1]!.receivedAt.toISOString()).toBe(batch[0]!.receivedAt);
      expect(stored[1]!.persistedAt.getTime()).toBeGreaterThan(0);
      expect(stored[0]).toMatchObject({ clientTime: null, apiKeyId: null });
    });

    it('stores text exactly, whatever array-literal syntax it holds', async () => {
      const awkward = ['NULL', 'a,b', '{x}', 'quote " and \\ backslash', ' padded ', '\\"', 'ü 🦉'];
      const batch = awkward.map((text) =>
        newEvent({ sessionId: `${text}-${uuidv7()}`, apiKeyId: text, payload: { text } }),
      );
      expect((await store.insertBatch(batch)).inserted).toBe(awkward.length);
      for (const event of batch) {
        expect(await store.findById(event.id)).toMatchObject({
          sessionId: event.sessionId,
          apiKeyId: event.apiKeyId,
          payload: event.payload,
        });
      }
    });

    it('is idempotent on the event id: a redelivered batch stores nothing twice', async () => {
      const session = `s-${uuidv7()}`;
      const first = [newEvent({ sessionId: session }), newEvent({ sessionId: session })];
      await store.insertBatch(first);
      const again = [...first, newEvent({ sessionId: session })];
      expect((await store.insertBatch(again)).inserted).toBe(1);
      expect(await store.countByIds(again.map((event) => event.id))).toBe(3);
      expect(await store.listEvents({ sessionId: session, limit: 10 })).toHaveLength(3);
    });

    it('returns exactly the newly stored events, as stored, in ascending seq order', async () => {
      const session = `s-${uuidv7()}`;
      const known = newEvent({ sessionId: session });
      await store.insertBatch([known]);
      const fresh = [
        newEvent({ sessionId: session, clientTime: '2026-01-02T03:04:05.678+02:00' }),
        newEvent({ sessionId: session, apiKeyId: null }),
      ];
      // A redelivered event and a repeat within the batch are skipped, and not returned.
      const result = await store.insertBatch([fresh[0]!, known, fresh[1]!, fresh[0]!]);
      expect(result.inserted).toBe(2);
      expect(result.stored.map((event) => event.id)).toEqual(fresh.map((event) => event.id));
      expect(BigInt(result.stored[1]!.seq)).toBeGreaterThan(BigInt(result.stored[0]!.seq));
      const listed = await store.listEvents({ sessionId: session, limit: 10 });
      expect(result.stored.map(({ payloadJson: _text, ...event }) => event)).toEqual(
        listed.filter((event) => event.id !== known.id).sort((a, b) => Number(BigInt(a.seq) - BigInt(b.seq))),
      );
      // The payload's text rides along for the live feed's announcement.
      for (const event of result.stored) expect(JSON.parse(event.payloadJson ?? '')).toEqual(event.payload);
      expect(result.stored[0]!.clientTime?.toISOString()).toBe('2026-01-02T01:04:05.678Z');
      expect(await store.insertBatch([known, ...fresh])).toEqual({ inserted: 0, stored: [], conflicts: [] });
    });

    it('filters by type and session, newest first, with offset pages and a keyset cursor', async () => {
      const session = `s-${uuidv7()}`;
      const batch = Array.from({ length: 7 }, (_, index) =>
        newEvent({ sessionId: session, eventType: index % 2 === 0 ? 'llm_query_sent' : 'error_occurred' }),
      );
      await store.insertBatch(batch);
      const queries = await store.listEvents({
        sessionId: session,
        eventTypes: ['llm_query_sent'],
        limit: 10,
      });
      expect(queries.map((event) => event.id)).toEqual([
        batch[6]!.id,
        batch[4]!.id,
        batch[2]!.id,
        batch[0]!.id,
      ]);
      const page2 = await store.listEvents({ sessionId: session, limit: 3, offset: 3 });
      expect(page2.map((event) => event.id)).toEqual([batch[3]!.id, batch[2]!.id, batch[1]!.id]);
      const firstPage = await store.listEvents({ sessionId: session, limit: 3 });
      const afterCursor = await store.listEvents({
        sessionId: session,
        limit: 3,
        beforeSeq: BigInt(firstPage[2]!.seq),
      });
      expect(afterCursor).toEqual(page2);
      expect(await store.findById(batch[5]!.id)).toEqual(firstPage[1]);
      expect(await store.findById(uuidv7())).toBeNull();
    });

    it('rejects a batch holding a row that can never be stored, as a permanent error, storing none of it', async () => {
      const session = `s-${uuidv7()}`;
      const batch = [newEvent({ sessionId: session }), newEvent({ eventType: 'x'.repeat(65) })];
      const failure = await store.insertBatch(batch).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(Error);
      expect(classifyStoreError(failure)).toBe('permanent');
      expect(await store.countByIds(batch.map((event) => event.id))).toBe(0);
    });
  });
}
