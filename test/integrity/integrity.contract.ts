import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import { keyIdOf } from '../../src/integrity/checkpoint.js';
import { verifyEventProof } from '../../src/integrity/verifier.js';
import type { Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import type { NewEvent, StoredEvent } from '../../src/events/stored-event.js';
import type { IntegrityProblem } from '../../src/integrity/report.js';
import { createIntegrityStore } from '../../src/store/integrity-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import { migrate } from '../../src/store/migrate.js';
import type { DatabaseFixture } from '../support/databases.js';

const newEvent = (overrides: Partial<NewEvent> = {}): NewEvent => ({
  id: uuidv7(),
  eventType: 'llm_query_sent',
  sessionId: `s-${uuidv7()}`,
  payload: { model: 'gpt-4o', prompt_tokens: 12, nested: { list: [1, 2.5, 'ü'] } },
  clientTime: null,
  receivedAt: new Date().toISOString(),
  apiKeyId: 'admin',
  ...overrides,
});

const keyPair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
};

/** Runs `work` as an attacker with database rights would: the append-only triggers switched off. */
async function tamper(
  db: Database,
  work: (sql: (text: string, params?: unknown[]) => Promise<unknown>) => Promise<unknown>,
) {
  await db.transaction(async (tx) => {
    await tx.exec('ALTER TABLE audit_events DISABLE TRIGGER USER');
    await tx.exec('ALTER TABLE audit_log_leaves DISABLE TRIGGER USER');
    await work((text, params) => tx.query(text, params));
    await tx.exec('ALTER TABLE audit_events ENABLE TRIGGER USER');
    await tx.exec('ALTER TABLE audit_log_leaves ENABLE TRIGGER USER');
  });
}

/** What every database backend must do for tamper evidence; run on PostgreSQL and PGlite. */
export function integrityContract(
  name: string,
  open: () => Promise<DatabaseFixture>,
  options: { skip?: boolean } = {},
) {
  describe.skipIf(options.skip === true)(`Tamper evidence: ${name}`, () => {
    const fixtures: DatabaseFixture[] = [];
    afterAll(async () => {
      for (const fixture of fixtures) await fixture.dispose();
    });

    /** A fresh database with `batches` batches of 10 events stored, a checkpoint after every other batch. */
    async function history(batches = 4) {
      const fixture = await open();
      fixtures.push(fixture);
      await migrate(fixture.db);
      const rollups = createRollupFolder(fixture.db);
      const events = createEventStore(fixture.db, { rollups });
      const integrity = createIntegrityStore(fixture.db, { rollups });
      const key = keyPair();
      const stored: StoredEvent[] = [];
      for (let batch = 0; batch < batches; batch += 1) {
        stored.push(...(await events.insertBatch(Array.from({ length: 10 }, () => newEvent()))).stored);
        if (batch % 2 === 1) await integrity.checkpoint(key);
      }
      return { db: fixture.db, events, integrity, key, stored };
    }

    const expectProblem = async (
      setup: Awaited<ReturnType<typeof history>>,
      problem: Partial<IntegrityProblem>,
    ) => {
      const report = await setup.integrity.verify({}, setup.key.publicKey);
      expect(report.ok).toBe(false);
      expect(report.problem).toMatchObject(problem);
      return report;
    };

    it('verifies untouched history: every event, leaf and signed checkpoint', async () => {
      const setup = await history();
      const extra = await setup.events.insertBatch([newEvent(), newEvent()]);
      const report = await setup.integrity.verify({}, setup.key.publicKey);
      expect(report).toMatchObject({
        ok: true,
        eventsChecked: 42,
        leavesChecked: 42,
        checkpointsChecked: 2,
        signaturesChecked: true,
        treeSize: '42',
        uncheckpointedLeaves: '2',
        problem: null,
      });
      // A window checks only its events, but still the whole checkpoint ranges it meets.
      const window = await setup.integrity.verify(
        { from: BigInt(setup.stored[15]!.seq), to: BigInt(extra.stored[0]!.seq) },
        setup.key.publicKey,
      );
      expect(window).toMatchObject({ ok: true, eventsChecked: 26 });
    });

    it('refuses UPDATE and DELETE on stored events, leaves and checkpoints, except deletion by retention', async () => {
      const setup = await history(2);
      const id = setup.stored[0]!.id;
      await expect(
        setup.db.query(`UPDATE audit_events SET payload = '{}' WHERE id = $1`, [id]),
      ).rejects.toThrow(/append-only/);
      await expect(setup.db.query('DELETE FROM audit_events WHERE id = $1', [id])).rejects.toThrow(
        /append-only/,
      );
      await expect(setup.db.query('TRUNCATE audit_events CASCADE')).rejects.toThrow(/append-only/);
      await expect(setup.db.query('DELETE FROM audit_log_leaves')).rejects.toThrow(/append-only/);
      await expect(setup.db.query(`UPDATE integrity_checkpoints SET tree_size = 1`)).rejects.toThrow(
        /append-only/,
      );
      // The retention setting lets rows go, never changes them.
      await expect(
        setup.db.transaction(async (tx) => {
          await tx.query(`SELECT set_config('auditgraph.retention', 'on', true)`);
          await tx.query(`UPDATE audit_events SET payload = '{}' WHERE id = $1`, [id]);
        }),
      ).rejects.toThrow(/append-only/);
      expect(await setup.events.countByIds([id])).toBe(1);
    });

    it('names a modified event', async () => {
      const setup = await history();
      const victim = setup.stored[13]!;
      await tamper(setup.db, (sql) =>
        sql(`UPDATE audit_events SET payload = jsonb_set(payload, '{prompt_tokens}', '13') WHERE id = $1`, [
          victim.id,
        ]),
      );
      await expectProblem(setup, { kind: 'modified', id: victim.id, seq: victim.seq });
    });

    it('names a modified event after the last checkpoint too', async () => {
      const setup = await history();
      const [late] = (await setup.events.insertBatch([newEvent()])).stored;
      await tamper(setup.db, (sql) =>
        sql(`UPDATE audit_events SET session_id = 'other' WHERE id = $1`, [late!.id]),
      );
      await expectProblem(setup, { kind: 'modified', id: late!.id, seq: late!.seq });
    });

    it('names a deleted event', async () => {
      const setup = await history();
      const victim = setup.stored[21]!;
      await tamper(setup.db, (sql) => sql('DELETE FROM audit_events WHERE id = $1', [victim.id]));
      await expectProblem(setup, { kind: 'deleted', id: victim.id, seq: victim.seq });
    });

    it('names a forged row inserted between stored events, and one appended after them', async () => {
      const setup = await history();
      const forged = uuidv7();
      // A gap in seq (a redelivered event's unused position) is where a forgery could hide.
      const before = setup.stored[setup.stored.length - 1]!;
      await setup.events.insertBatch([newEvent({ id: before.id })]);
      const [after] = (await setup.events.insertBatch([newEvent()])).stored;
      expect(BigInt(after!.seq) - BigInt(before.seq)).toBeGreaterThan(1n);
      const gap = (BigInt(before.seq) + 1n).toString();
      await tamper(setup.db, (sql) =>
        sql(
          `INSERT INTO audit_events (id, seq, event_type, session_id, payload, received_at)
           VALUES ($1, $2, 'review_started', 'forged', '{}', now())`,
          [forged, gap],
        ),
      );
      await expectProblem(setup, { kind: 'inserted', id: forged, seq: gap });

      const appended = await history(2);
      const tail = uuidv7();
      await tamper(appended.db, (sql) =>
        sql(
          `INSERT INTO audit_events (id, event_type, session_id, payload, received_at)
           VALUES ($1, 'review_started', 'forged', '{}', now())`,
          [tail],
        ),
      );
      await expectProblem(appended, { kind: 'inserted', id: tail });
    });

    it('names the first of two reordered events, and the one found in its place', async () => {
      const setup = await history();
      const [first, second] = [setup.stored[5]!, setup.stored[8]!];
      await tamper(setup.db, async (sql) => {
        await sql('UPDATE audit_events SET seq = -1 WHERE id = $1', [first.id]);
        await sql('UPDATE audit_events SET seq = $2 WHERE id = $1', [second.id, first.seq]);
        await sql('UPDATE audit_events SET seq = $2 WHERE id = $1', [first.id, second.seq]);
      });
      await expectProblem(setup, { kind: 'reordered', id: first.id, seq: first.seq, foundId: second.id });
    });

    it('detects an event rewritten together with its leaf, by the signed checkpoint', async () => {
      const setup = await history();
      const victim = setup.stored[3]!;
      await tamper(setup.db, async (sql) => {
        await sql(`UPDATE audit_events SET payload = '{"model":"cheap"}' WHERE id = $1`, [victim.id]);
      });
      const [row] = await setup.db.query<StoredEvent & { seq: string }>(
        `SELECT id::text, seq::text, event_type AS "eventType", session_id AS "sessionId", payload,
                client_time AS "clientTime", received_at AS "receivedAt", persisted_at AS "persistedAt", api_key_id AS "apiKeyId"
           FROM audit_events WHERE id = $1`,
        [victim.id],
      );
      const { leafHashOf } = await import('../../src/integrity/leaf.js');
      await tamper(setup.db, (sql) =>
        sql('UPDATE audit_log_leaves SET leaf_hash = $2 WHERE event_id = $1', [victim.id, leafHashOf(row!)]),
      );
      const report = await expectProblem(setup, { kind: 'leaves_modified' });
      expect(BigInt(report.problem!.seq!)).toBeGreaterThanOrEqual(BigInt(victim.seq));
    });

    it('refuses a checkpoint signed by another key, or altered after signing', async () => {
      const setup = await history();
      const report = await setup.integrity.verify({}, keyPair().publicKey);
      expect(report.problem).toMatchObject({ kind: 'checkpoint_invalid', seq: setup.stored[19]!.seq });
      await setup.db.transaction(async (tx) => {
        await tx.exec('ALTER TABLE integrity_checkpoints DISABLE TRIGGER USER');
        await tx.query(
          `UPDATE integrity_checkpoints SET created_at = created_at + interval '1 ms' WHERE id = 2`,
        );
        await tx.exec('ALTER TABLE integrity_checkpoints ENABLE TRIGGER USER');
      });
      await expectProblem(setup, { kind: 'checkpoint_invalid', seq: setup.stored[39]!.seq });
    });

    it('keeps every event hashed exactly once when batches are inserted concurrently and redelivered', async () => {
      const setup = await history(0);
      const batches = Array.from({ length: 8 }, () => Array.from({ length: 25 }, () => newEvent()));
      const results = await Promise.all([
        ...batches.map((batch) => setup.events.insertBatch(batch)),
        ...batches.slice(0, 4).map((batch) => setup.events.insertBatch([...batch].reverse())),
      ]);
      expect(results.reduce((sum, result) => sum + result.inserted, 0)).toBe(200);
      await Promise.all([setup.integrity.checkpoint(setup.key), setup.integrity.checkpoint(setup.key)]);
      expect(await setup.integrity.verify({}, setup.key.publicKey)).toMatchObject({
        ok: true,
        eventsChecked: 200,
        uncheckpointedLeaves: '0',
      });
    });

    it('keeps the hash log gapless when a batch issued behind a redelivered one was sent assuming it stored', async () => {
      const setup = await history(1);
      const stored = Array.from({ length: 5 }, () => newEvent());
      await setup.events.insertBatch(stored);
      const fresh = Array.from({ length: 5 }, () => newEvent());
      // Issued together, the store sends the third while the second (all stored already) runs, with
      // positions that assume the second wrote its five leaves.
      const [redelivered, after, later] = await Promise.all([
        setup.events.insertBatch(stored),
        setup.events.insertBatch(fresh),
        setup.events.insertBatch([newEvent()]),
      ]);
      expect([redelivered.inserted, after.inserted, later.inserted]).toEqual([0, 5, 1]);
      const leaves = await setup.db.query<{ position: number }>(
        'SELECT leaf_index::int AS position FROM audit_log_leaves ORDER BY leaf_index',
      );
      expect(leaves.map((leaf) => leaf.position)).toEqual(Array.from({ length: 21 }, (_, i) => i));
      expect(await setup.integrity.verify({}, setup.key.publicKey)).toMatchObject({
        ok: true,
        eventsChecked: 21,
        treeSize: '21',
      });
    });

    it('reports no false tampering while events and checkpoints are written during verification', async () => {
      const setup = await history(2);
      let writing = true;
      const writer = (async () => {
        while (writing) {
          await setup.events.insertBatch(Array.from({ length: 20 }, () => newEvent()));
          await setup.integrity.checkpoint(setup.key);
        }
      })();
      const reports = [];
      for (let run = 0; run < 5; run += 1)
        reports.push(await setup.integrity.verify({}, setup.key.publicKey));
      writing = false;
      await writer;
      expect(reports.map((report) => report.problem)).toEqual([null, null, null, null, null]);
    });

    it('proves one event against a signed checkpoint, checked by the standalone verifier', async () => {
      const setup = await history();
      const target = setup.stored[17]!;
      const found = await setup.integrity.proofOf(target.id);
      const proof = found!.proof!;
      const event = (await setup.events.findById(target.id))!;
      // As a client receives it: JSON, times as strings.
      const asJson = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
      const publicPem = setup.key.publicKey.export({ format: 'pem', type: 'spki' }).toString();
      expect(verifyEventProof(asJson, proof, publicPem)).toEqual({ ok: true });

      expect(verifyEventProof({ ...asJson, payload: { model: 'forged' } }, proof, publicPem)).toMatchObject({
        ok: false,
        reason: 'event-mismatch',
      });
      expect(verifyEventProof(asJson, proof, keyPair().publicKey)).toMatchObject({
        ok: false,
        reason: 'bad-signature',
      });
      const other = (await setup.integrity.proofOf(setup.stored[16]!.id))!.proof!;
      expect(verifyEventProof(asJson, { ...proof, auditPath: other.auditPath }, publicPem)).toMatchObject({
        ok: false,
        reason: 'bad-path',
      });
      expect(
        verifyEventProof(
          asJson,
          { ...proof, checkpoint: { ...proof.checkpoint, rangeRoot: other.leafHash } },
          publicPem,
        ),
      ).toMatchObject({ ok: false, reason: 'bad-signature' });

      const [late] = (await setup.events.insertBatch([newEvent()])).stored;
      expect(await setup.integrity.proofOf(late!.id)).toEqual({ seq: late!.seq, proof: null });
      expect(await setup.integrity.proofOf(uuidv7())).toBeNull();
    });

    it('removes old event bodies by retention in whole checkpoint ranges, and the rest still verifies', async () => {
      const setup = await history(0);
      const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
      const oldEvents = (
        await setup.events.insertBatch(Array.from({ length: 10 }, () => newEvent({ receivedAt: old })))
      ).stored;
      await setup.integrity.checkpoint(setup.key);
      // A range mixing old and recent events stays whole.
      const mixed = (
        await setup.events.insertBatch([
          newEvent({ receivedAt: old }),
          newEvent(),
          newEvent({ receivedAt: old }),
        ])
      ).stored;
      await setup.integrity.checkpoint(setup.key);
      const recent = (await setup.events.insertBatch([newEvent()])).stored;

      const cutoff = new Date(Date.now() - 30 * 86_400_000);
      expect(await setup.integrity.applyRetention(cutoff)).toEqual({
        deleted: 10,
        throughSeq: oldEvents[9]!.seq,
      });
      expect(await setup.integrity.applyRetention(cutoff)).toEqual({ deleted: 0, throughSeq: null });
      expect(await setup.events.countByIds(oldEvents.map((event) => event.id))).toBe(0);
      expect(await setup.events.countByIds([...mixed, ...recent].map((event) => event.id))).toBe(4);

      const report = await setup.integrity.verify({}, setup.key.publicKey);
      expect(report).toMatchObject({
        ok: true,
        eventsChecked: 4,
        leavesChecked: 14,
        retainedThroughSeq: oldEvents[9]!.seq,
      });
      // A removed body keeps its proof, and a redelivery of it is still a duplicate.
      expect((await setup.integrity.proofOf(oldEvents[0]!.id))?.proof?.leafIndex).toBe('0');
      expect((await setup.events.insertBatch([newEvent({ id: oldEvents[0]!.id })])).inserted).toBe(0);

      // Deleting beyond the boundary is still tampering.
      await tamper(setup.db, (sql) => sql('DELETE FROM audit_events WHERE id = $1', [mixed[1]!.id]));
      await expectProblem(setup, { kind: 'deleted', id: mixed[1]!.id, seq: mixed[1]!.seq });
    });

    it('gives events stored before the hash log existed their leaves on the first insert', async () => {
      const setup = await history(0);
      const legacy = [newEvent(), newEvent(), newEvent()];
      for (const event of legacy) {
        await setup.db.query(
          `INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [
            event.id,
            event.eventType,
            event.sessionId,
            JSON.stringify(event.payload),
            null,
            event.receivedAt,
            event.apiKeyId,
          ],
        );
      }
      const result = await setup.events.insertBatch([legacy[1]!, newEvent()]);
      expect(result.inserted).toBe(1);
      await setup.integrity.checkpoint(setup.key);
      expect(await setup.integrity.verify({}, setup.key.publicKey)).toMatchObject({
        ok: true,
        eventsChecked: 4,
        treeSize: '4',
      });
    });
  });
}
