import { cp, mkdtemp, open, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config/index.js';
import { AppError } from '../../src/errors.js';
import { decodeRecords, encodeRecord, RecordType, segmentFileName } from '../../src/queue/disk-log.js';
import { openDiskQueue, type DiskQueueOptions } from '../../src/queue/disk-queue.js';
import { LOCK_FILE } from '../../src/store/data-dir-lock.js';
import type { EventQueue } from '../../src/queue/event-queue.js';
import { eventually } from '../support/app.js';

const folders: string[] = [];
const opened: EventQueue[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(opened.splice(0).map((queue) => queue.close().catch(() => undefined)));
  await Promise.all(folders.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const folder = async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-disk-queue-'));
  folders.push(dir);
  return dir;
};
const openQueue = async (dir: string, options: Partial<DiskQueueOptions> = {}) => {
  const queue = await openDiskQueue({ dir, maxLength: 1000, ...options });
  opened.push(queue);
  return queue;
};
/**
 * The folder as a SIGKILL would leave it: written data is in the kernel's hands, nothing in this
 * process's memory. Copied while the queue is still open, and opened as another folder.
 */
const crashCopy = async (dir: string): Promise<string> => {
  const copy = await folder();
  try {
    await cp(dir, copy, { recursive: true });
  } catch (error) {
    // A segment deleted while being copied: a real crash leaves the folder as of one instant.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return crashCopy(dir);
  }
  return copy;
};
const segmentFiles = async (dir: string) =>
  (await readdir(dir)).filter((name) => name.endsWith('.log')).sort();
const bodiesOf = (entries: Array<{ body: string }>) => entries.map((entry) => entry.body);

describe('on-disk queue: what survives the process', () => {
  it('delivers after a crash every entry whose enqueue resolved, in order, and nothing acknowledged', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.enqueue(['a', 'b']);
    await queue.enqueue(['c', 'd']);
    const [first, second] = await queue.read('worker', 2, 0);
    await queue.ack([first!.id]);
    // `second` stays delivered and unacknowledged: its consumer dies with the process.
    const after = await openQueue(await crashCopy(dir));
    expect(await after.stats()).toMatchObject({ depth: 3, deadLetters: 0 });
    const again = await after.read('new-worker', 10, 0);
    expect(bodiesOf(again)).toEqual(['b', 'c', 'd']);
    expect(again[0]!.id).toBe(second!.id);
  });

  it('keeps dead letters, with body and reason, across a restart, and a replay is kept whole', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.enqueue(['poison-1', 'poison-2', 'fine']);
    const [one, two] = await queue.read('worker', 2, 0);
    await queue.deadLetter(one!, 'not JSON: one');
    await queue.deadLetter(two!, 'not JSON: two');
    const before = await queue.listDeadLetters(10);
    await queue.close();

    const reopened = await openQueue(dir);
    expect(await reopened.listDeadLetters(10)).toEqual(before);
    expect(before.map((letter) => [letter.body, letter.reason])).toEqual([
      ['poison-2', 'not JSON: two'],
      ['poison-1', 'not JSON: one'],
    ]);
    expect(await reopened.replayDeadLetters([before[1]!.id])).toEqual({
      replayed: [before[1]!.id],
      missing: [],
    });
    const crashed = await openQueue(await crashCopy(dir));
    expect(bodiesOf(await crashed.listDeadLetters(10))).toEqual(['poison-2']);
    expect(bodiesOf(await crashed.read('worker', 10, 0))).toEqual(['fine', 'poison-1']);
  });

  it('gives ids after a restart that sort after every earlier one, even when the clock went back', async () => {
    const dir = await folder();
    const queue = await openQueue(dir, { now: () => 5_000 });
    await queue.enqueue(['x', 'y']);
    await queue.close();
    const reopened = await openQueue(dir, { now: () => 1_000 });
    await reopened.enqueue(['z']);
    const ids = (await reopened.read('c', 10, 0)).map((entry) => entry.id);
    expect(ids).toEqual(['5000-0', '5000-1', '5000-2']);
  });

  it('counts what a restart found against the high-water mark', async () => {
    const dir = await folder();
    const queue = await openQueue(dir, { maxLength: 3 });
    await queue.enqueue(['1', '2', '3']);
    await queue.close();
    const reopened = await openQueue(dir, { maxLength: 3 });
    const refused = await reopened.enqueue(['4']).catch((error: unknown) => error);
    expect((refused as AppError).code).toBe('QUEUE_FULL');
  });
});

describe('on-disk queue: torn and damaged files', () => {
  it('reads every whole record of a log cut anywhere, and never a partial one', async () => {
    const records = Array.from({ length: 6 }, (_, index) =>
      encodeRecord(RecordType.Enqueue, [`1-${index}`, `body ${index} ${'é'.repeat(index)}`]),
    );
    const log = Buffer.concat(records);
    const ends = records.reduce<number[]>(
      (sums, record) => [...sums, (sums.at(-1) ?? 0) + record.length],
      [],
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: log.length }), (cut) => {
        const { records: read, validBytes } = decodeRecords(log.subarray(0, cut));
        const whole = ends.filter((end) => end <= cut).length;
        expect(read.length).toBe(whole);
        expect(validBytes).toBe(whole === 0 ? 0 : ends[whole - 1]);
      }),
    );
  });

  it('stops at a damaged byte instead of misreading it', () => {
    const records = Array.from({ length: 4 }, (_, index) =>
      encodeRecord(RecordType.Ack, [`2-${index}`, `3-${index}`]),
    );
    const log = Buffer.concat(records);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: log.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, flip) => {
          const damaged = Buffer.from(log);
          damaged[at] = damaged[at]! ^ flip;
          const { records: read } = decodeRecords(damaged);
          const firstDamaged = Math.floor(at / records[0]!.length);
          expect(read.length).toBe(firstDamaged);
          for (const [index, record] of read.entries())
            expect(record.fields).toEqual([`2-${index}`, `3-${index}`]);
        },
      ),
    );
  });

  it('drops a torn tail when it opens, and appends after the last whole record', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.enqueue(['kept']);
    await queue.close();
    const file = path.join(dir, segmentFileName(1));
    const { validBytes: whole } = decodeRecords(await readFile(file));
    expect(whole).toBeGreaterThan(0);
    // What a power cut leaves: the start of a record after the last whole one, zeros after it.
    const torn = encodeRecord(RecordType.Enqueue, ['9-0', 'torn']);
    const handle = await open(file, 'r+');
    await handle.write(torn, 0, torn.length - 3, whole);
    await handle.close();

    const reopened = await openQueue(dir);
    expect((await stat(file)).size).toBe(whole);
    await reopened.enqueue(['after']);
    await reopened.close();
    const last = await openQueue(dir);
    expect(bodiesOf(await last.read('c', 10, 0))).toEqual(['kept', 'after']);
  });
});

describe('on-disk queue: writing', () => {
  it('answers an enqueue only after its synchronous write returned, and lets enqueues of one turn share one write', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.enqueue(['warm-up']);
    const events: string[] = [];
    const handle = await open(path.join(dir, 'probe'), 'w');
    const prototype = Object.getPrototypeOf(handle) as { write(...args: unknown[]): Promise<unknown> };
    await handle.close();
    const write = prototype.write;
    vi.spyOn(prototype, 'write').mockImplementation(async function (this: unknown, ...args: unknown[]) {
      events.push('write started');
      const written = await write.apply(this, args);
      events.push('write done');
      return written;
    });
    await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        queue.enqueue([`e${index}`]).then(() => events.push('answered')),
      ),
    );
    expect(events.slice(0, 3)).toEqual(['write started', 'write done', 'answered']);
    expect(events.filter((event) => event === 'write started')).toHaveLength(1);
    expect(events.filter((event) => event === 'answered')).toHaveLength(50);
  });

  it('refuses with SERVICE_UNAVAILABLE when the disk fails, keeping nothing of the refused enqueue', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.enqueue(['before']);
    const handle = await open(path.join(dir, 'probe'), 'w');
    const prototype = Object.getPrototypeOf(handle) as { write(): Promise<unknown> };
    await handle.close();
    vi.spyOn(prototype, 'write').mockRejectedValueOnce(
      Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }),
    );
    const refused = await queue.enqueue(['refused']).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe('SERVICE_UNAVAILABLE');
    await queue.enqueue(['after']);
    expect(await queue.stats()).toMatchObject({ depth: 2 });
    await queue.close();
    const reopened = await openQueue(dir);
    expect(bodiesOf(await reopened.read('c', 10, 0))).toEqual(['before', 'after']);
  });

  it.skipIf(process.platform !== 'linux')(
    'writes its segment with O_DSYNC, so a write returns only once its bytes are durable',
    async () => {
      const dir = await folder();
      const queue = await openQueue(dir);
      await queue.enqueue(['x']);
      const segment = path.join(dir, segmentFileName(1));
      const fds = await readdir('/proc/self/fd');
      const flags: string[] = [];
      for (const fd of fds) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (target === segment) {
          const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
          flags.push(/^flags:\s+(\d+)$/m.exec(info)![1]!);
        }
      }
      expect(flags).toHaveLength(1);
      // O_DSYNC is 010000 (octal) on Linux.
      expect(parseInt(flags[0]!, 8) & 0o10000).toBe(0o10000);
    },
  );

  it('deletes segments once everything in them is acknowledged', async () => {
    const dir = await folder();
    const queue = await openQueue(dir, { segmentBytes: 2048 });
    for (let round = 0; round < 20; round += 1) {
      await queue.enqueue(Array.from({ length: 5 }, (_, index) => `${round}.${index} ${'x'.repeat(80)}`));
      await queue.ack((await queue.read('c', 10, 0)).map((entry) => entry.id));
    }
    await queue.enqueue(['last']);
    // At most the one written to, the one before it, and the next one made ahead.
    expect((await segmentFiles(dir)).length).toBeLessThanOrEqual(3);
    await queue.close();
    const reopened = await openQueue(dir, { segmentBytes: 2048 });
    expect(bodiesOf(await reopened.read('c', 10, 0))).toEqual(['last']);
  });

  it('moves dead letters and long-held entries out of an old segment so it can go, and still has them after a restart', async () => {
    const dir = await folder();
    const queue = await openQueue(dir, { segmentBytes: 4096 });
    await queue.enqueue(['held', 'poison']);
    const [held, poison] = await queue.read('stuck-worker', 2, 0);
    await queue.deadLetter(poison!, 'unstorable');
    for (let round = 0; round < 40; round += 1) {
      await queue.enqueue(Array.from({ length: 4 }, (_, index) => `${round}.${index} ${'y'.repeat(100)}`));
      await queue.ack((await queue.read('c', 10, 0)).map((entry) => entry.id));
    }
    const files = await segmentFiles(dir);
    expect(files).not.toContain(segmentFileName(1));
    expect(files.length).toBeLessThanOrEqual(3);
    const after = await openQueue(await crashCopy(dir), { segmentBytes: 4096 });
    expect(await after.read('c', 10, 0)).toEqual([held]);
    expect(await after.listDeadLetters(10)).toMatchObject([{ originalId: poison!.id, body: 'poison' }]);
  });
});

describe('on-disk queue: acknowledgements behind a barrier (for PGlite, which does not fsync)', () => {
  it('records an acknowledgement only once the barrier resolved, without making ack wait for it', async () => {
    const dir = await folder();
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const order: string[] = [];
    const queue = await openQueue(dir, {
      ackBarrierIntervalMs: 5,
      ackBarrier: async () => {
        order.push('barrier called');
        await gate;
        order.push('barrier resolved');
      },
    });
    await queue.enqueue(['stored', 'later']);
    const [stored] = await queue.read('worker', 1, 0);
    await queue.ack([stored!.id]);
    order.push('ack resolved');
    expect(await queue.readPending('worker', 10)).toEqual([]);
    await eventually(async () => (order.includes('barrier called') ? true : undefined), 5000, 'the barrier');

    // A crash now: the store's commit may not be on disk, so the entry must come back.
    const crashed = await openQueue(await crashCopy(dir));
    expect(bodiesOf(await crashed.read('c', 10, 0))).toEqual(['stored', 'later']);

    open();
    await queue.close();
    expect(order).toEqual(['ack resolved', 'barrier called', 'barrier resolved']);
    const reopened = await openQueue(dir);
    expect(bodiesOf(await reopened.read('c', 10, 0))).toEqual(['later']);
  });

  it('keeps an acknowledgement for the next round when the barrier fails', async () => {
    const dir = await folder();
    let failures = 1;
    const queue = await openQueue(dir, {
      ackBarrierIntervalMs: 5,
      ackBarrier: async () => {
        if (failures-- > 0) throw new Error('EIO');
      },
    });
    await queue.enqueue(['a']);
    await queue.ack((await queue.read('c', 1, 0)).map((entry) => entry.id));
    await eventually(async () => (failures < 0 ? true : undefined), 5000, 'a second barrier');
    await queue.close();
    const reopened = await openQueue(dir);
    expect(await reopened.read('c', 10, 0)).toEqual([]);
  });
});

describe('on-disk queue: one process per folder', () => {
  it('refuses a second opener of the same folder while the first has it', async () => {
    const dir = await folder();
    await openQueue(dir);
    const refused = await openDiskQueue({ dir, maxLength: 10 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).message).toContain(path.join(dir, LOCK_FILE));
  });

  it('takes over the lock of a process that is gone', async () => {
    const dir = await folder();
    // No process has pid 2^22 + 1 (above Linux's pid_max).
    await writeFile(
      path.join(dir, LOCK_FILE),
      `4194305 ${(await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '-')).trim()}\n`,
    );
    const queue = await openQueue(dir);
    await queue.enqueue(['ok']);
    expect(await readFile(path.join(dir, LOCK_FILE), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
  });

  it('releases the folder on close, for the next opener', async () => {
    const dir = await folder();
    const queue = await openQueue(dir);
    await queue.close();
    const next = await openQueue(dir);
    await next.enqueue(['ok']);
    expect(await next.stats()).toMatchObject({ depth: 1 });
  });
});
