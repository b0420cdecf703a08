import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import type { EventQueue } from '../../src/queue/event-queue.js';

export type QueueFactory = (options: { maxLength: number }) => Promise<EventQueue>;

/** The semantics every EventQueue adapter must have; run against Redis Streams and the in-process queue. */
export function eventQueueContract(
  name: string,
  create: QueueFactory,
  options: { skip?: boolean } = {},
): void {
  describe.skipIf(options.skip === true)(`EventQueue contract: ${name}`, () => {
    const opened: EventQueue[] = [];
    const open = async (maxLength = 1000) => {
      const queue = await create({ maxLength });
      opened.push(queue);
      return queue;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((queue) => queue.close()));
    });

    it('delivers enqueued bodies in order, each to one consumer only', async () => {
      const queue = await open();
      await queue.enqueue(['a', 'b']);
      await queue.enqueue(['c']);
      const first = await queue.read('one', 2, 100);
      const second = await queue.read('two', 10, 100);
      expect(first.map((entry) => entry.body)).toEqual(['a', 'b']);
      expect(second.map((entry) => entry.body)).toEqual(['c']);
      expect(await queue.read('one', 10, 10)).toEqual([]);
    });

    it('wakes a blocked reader as soon as an entry arrives', async () => {
      const queue = await open();
      const started = Date.now();
      const reading = queue.read('reader', 10, 5000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await queue.enqueue(['late']);
      const entries = await reading;
      expect(entries.map((entry) => entry.body)).toEqual(['late']);
      expect(Date.now() - started).toBeLessThan(4000);
    });

    it('reports the age of the oldest unacknowledged entry, delivered or not, and null when empty', async () => {
      const queue = await open();
      expect((await queue.stats()).oldestAgeMs).toBeNull();
      await queue.enqueue(['old']);
      await new Promise((resolve) => setTimeout(resolve, 60));
      await queue.enqueue(['new']);
      const [old] = await queue.read('c', 1, 100);
      const age = (await queue.stats()).oldestAgeMs;
      expect(age).toBeGreaterThanOrEqual(50);
      expect(age).toBeLessThan(5000);
      await queue.ack([old!.id]);
      expect((await queue.stats()).oldestAgeMs).toBeLessThan(age!);
      const rest = await queue.read('c', 10, 100);
      await queue.ack(rest.map((entry) => entry.id));
      expect((await queue.stats()).oldestAgeMs).toBeNull();
    });

    it('returns at once from a read that may not wait, even when nothing is queued', async () => {
      const queue = await open();
      const started = Date.now();
      expect(await queue.read('c', 10, 0)).toEqual([]);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('keeps delivered entries pending until acknowledged, and counts them in the depth', async () => {
      const queue = await open();
      await queue.enqueue(['x', 'y']);
      const entries = await queue.read('c1', 10, 100);
      expect((await queue.stats()).depth).toBe(2);
      expect((await queue.readPending('c1', 10)).map((entry) => entry.id)).toEqual(
        entries.map((entry) => entry.id),
      );
      expect(await queue.readPending('c2', 10)).toEqual([]);
      await queue.ack([entries[0]!.id]);
      expect((await queue.readPending('c1', 10)).map((entry) => entry.body)).toEqual(['y']);
      expect((await queue.stats()).depth).toBe(1);
    });

    it('hands entries idle past the threshold to another consumer, and not before', async () => {
      const queue = await open();
      await queue.enqueue(['held']);
      const [held] = await queue.read('dead-consumer', 10, 100);
      expect(await queue.claimStale('rescuer', 60_000, 10)).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 30));
      const claimed = await queue.claimStale('rescuer', 20, 10);
      expect(claimed).toEqual([held]);
      expect(await queue.readPending('rescuer', 10)).toEqual([held]);
      expect(await queue.readPending('dead-consumer', 10)).toEqual([]);
    });

    it('refuses past the high-water mark with QUEUE_FULL and a retry delay, all or nothing', async () => {
      const queue = await open(3);
      await queue.enqueue(['1', '2']);
      const refused = await queue.enqueue(['3', '4']).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(AppError);
      expect((refused as AppError).code).toBe('QUEUE_FULL');
      expect((refused as AppError).retryAfterSeconds).toBeGreaterThan(0);
      expect((await queue.stats()).depth).toBe(2);
      await queue.enqueue(['3']);
      const entries = await queue.read('c', 10, 100);
      await queue.ack(entries.map((entry) => entry.id));
      await queue.enqueue(['5', '6', '7']);
      expect((await queue.stats()).depth).toBe(3);
    });

    it('takes concurrent enqueues each whole, in call order, none lost or split', async () => {
      const queue = await open();
      const calls = Array.from({ length: 50 }, (_, call) =>
        Array.from({ length: 1 + (call % 3) }, (_, item) => `${call}.${item}`),
      );
      await Promise.all(calls.map((bodies) => queue.enqueue(bodies)));
      const entries = await queue.read('c', 1000, 100);
      expect(entries.map((entry) => entry.body)).toEqual(calls.flat());
    });

    it('answers each of concurrent enqueues on its own when the queue fills among them', async () => {
      const queue = await open(4);
      const outcomes = await Promise.allSettled([
        queue.enqueue(['a', 'b']),
        queue.enqueue(['c', 'd', 'e']),
        queue.enqueue(['f']),
        queue.enqueue(['g']),
        queue.enqueue(['h']),
      ]);
      expect(outcomes.map((outcome) => outcome.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
        'rejected',
      ]);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') expect((outcome.reason as AppError).code).toBe('QUEUE_FULL');
      }
      const entries = await queue.read('c', 10, 100);
      expect(entries.map((entry) => entry.body)).toEqual(['a', 'b', 'f', 'g']);
    });

    it('holds the high-water mark exactly across many concurrent enqueues, taking the first ones', async () => {
      const queue = await open(25);
      const bodies = Array.from({ length: 40 }, (_, index) => `e${index}`);
      const outcomes = await Promise.allSettled(bodies.map((body) => queue.enqueue([body])));
      expect(outcomes.map((outcome) => outcome.status)).toEqual([
        ...Array<string>(25).fill('fulfilled'),
        ...Array<string>(15).fill('rejected'),
      ]);
      const entries = await queue.read('c', 100, 100);
      expect(entries.map((entry) => entry.body)).toEqual(bodies.slice(0, 25));
    });

    it('moves a dead letter aside with its body and reason, out of the live queue', async () => {
      const queue = await open();
      await queue.enqueue(['poison', 'fine']);
      const [poison] = await queue.read('c', 1, 100);
      await queue.deadLetter(poison!, 'cannot be stored');
      const stats = await queue.stats();
      expect(stats).toMatchObject({ depth: 1, deadLetters: 1 });
      const [letter] = await queue.listDeadLetters(10);
      expect(letter).toMatchObject({ originalId: poison!.id, body: 'poison', reason: 'cannot be stored' });
      expect(Number.isNaN(Date.parse(letter!.failedAt))).toBe(false);
      expect(await queue.readPending('c', 10)).toEqual([]);
      expect((await queue.read('c', 10, 100)).map((entry) => entry.body)).toEqual(['fine']);
    });

    it('replays dead letters into the live queue as new entries in the order asked, and names the ids it did not find', async () => {
      const queue = await open();
      await queue.enqueue(['one', 'two', 'three']);
      const entries = await queue.read('c', 3, 100);
      for (const entry of entries) await queue.deadLetter(entry, 'cannot be stored');
      const letters = await queue.listDeadLetters(10);
      expect(letters.map((letter) => letter.body)).toEqual(['three', 'two', 'one']);
      const [three, , one] = letters;

      const answer = await queue.replayDeadLetters([three!.id, one!.id, three!.id, '1-999', 'not an id']);
      expect(answer.replayed).toEqual([three!.id, one!.id]);
      expect([...answer.missing].sort()).toEqual(['1-999', 'not an id']);
      expect((await queue.listDeadLetters(10)).map((letter) => letter.body)).toEqual(['two']);
      const replayed = await queue.read('c', 10, 100);
      expect(replayed.map((entry) => entry.body)).toEqual(['three', 'one']);
      expect(replayed.map((entry) => entry.id)).not.toContain(one!.originalId);
      expect(await queue.stats()).toMatchObject({ depth: 2, deadLetters: 1 });
      expect(await queue.replayDeadLetters([one!.id])).toEqual({ replayed: [], missing: [one!.id] });
    });

    it('replays nothing when the queue cannot take every letter asked for', async () => {
      const queue = await open(3);
      await queue.enqueue(['a', 'b']);
      for (const entry of await queue.read('c', 2, 100)) await queue.deadLetter(entry, 'cannot be stored');
      await queue.enqueue(['c', 'd']);
      const ids = (await queue.listDeadLetters(10)).map((letter) => letter.id);
      const refused = await queue.replayDeadLetters(ids).catch((error: unknown) => error);
      expect((refused as AppError).code).toBe('QUEUE_FULL');
      expect(await queue.stats()).toMatchObject({ depth: 2, deadLetters: 2 });
      expect(await queue.replayDeadLetters(ids.slice(0, 1))).toMatchObject({ replayed: ids.slice(0, 1) });
      expect(await queue.stats()).toMatchObject({ depth: 3, deadLetters: 1 });
    });
  });
}
