/** The worker's side of a persistence round: `auditgraph worker` timed from its start until the stream is empty. */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { NODE_FLAGS } from '../../../bin/node-flags.mjs';
import type { QueuedEvent } from '../../../src/events/queue-message.js';
import { cpuMeter, pidsNamed } from '../../support/cpu.js';
import { freePort } from '../../support/ports.js';
import { BIN, childFailed, waitForOutput } from '../../support/processes.js';
import { log, seconds } from '../log.js';
import { postgresPidsOf } from '../measure.js';
import type { Options } from '../options.js';
import { profileFlags } from '../profile.js';
import type { Resources } from '../resources.js';
import type { PersistenceResult } from './persistence.js';

/** Starts `auditgraph worker` on a pre-filled stream and times it until the stream is empty. */
export async function drainWithWorker(
  options: Options,
  resources: Resources,
  url: string,
  client: pg.Client,
  stream: string,
  events: readonly QueuedEvent[],
  rowsBefore: number,
  profileDir: string,
): Promise<PersistenceResult['worker']> {
  const spawnedAt = performance.now();
  const worker = resources.startChild(
    'worker',
    process.execPath,
    [...NODE_FLAGS, ...profileFlags(options, profileDir), BIN, 'worker'],
    {
      DATABASE_URL: url,
      REDIS_URL: options.redisUrl,
      QUEUE_STREAM: stream,
      QUEUE_MAX_LENGTH: '10000000',
      WORKER_BATCH_SIZE: String(options.batchSize),
      // Its own metrics port: the default (9464) may be taken by another worker on the machine.
      METRICS_PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
    },
  );
  let workerResult: PersistenceResult['worker'];
  try {
    await waitForOutput(worker, /\(worker\)/);
    const startedAt = performance.now();
    const postgres = await postgresPidsOf(resources.admin, new URL(url).pathname.slice(1));
    const meter = cpuMeter([
      { label: 'worker', pids: () => [worker.proc.pid!] },
      { label: 'postgres', pids: postgres.pids },
      { label: 'redis', pids: () => pidsNamed('redis-server') },
    ]);
    const samples: Array<{ at: number; left: number }> = [];
    const deadline = Date.now() + Math.max(180_000, (options.events / 1000) * 1000);
    for (;;) {
      const left = await resources.redis.xlen(stream);
      samples.push({ at: performance.now(), left });
      if (left === 0) break;
      if (worker.exitCode !== undefined) throw childFailed(worker, 'exited while draining');
      if (Date.now() > deadline) throw new Error(`the worker did not drain ${stream} in time (${left} left)`);
      await sleep(50);
    }
    const doneAt = performance.now();
    const cpu = meter.stop();
    postgres.stop();
    const elapsed = seconds(startedAt, doneAt);
    // Steady rate: between 10% and 90% of the stream drained.
    const n = options.events;
    const at10 = samples.find((sample) => sample.left <= n * 0.9);
    const at90 = samples.find((sample) => sample.left <= n * 0.1);
    const steady =
      at10 && at90 && at90.at > at10.at ? (at10.left - at90.left) / seconds(at10.at, at90.at) : n / elapsed;
    // Counted in one snapshot twice, with and without a parallel scan (they should agree), right when the
    // stream is empty: the worker deletes an entry only after its batch committed, so every row must be there.
    const countRows = async () =>
      Number(
        (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!.count,
      );
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const parallelCount = await countRows();
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const rowsAfter = await countRows();
    await client.query('COMMIT');
    if (parallelCount !== rowsAfter) {
      log(
        `  NOTE: in one snapshot, a parallel count(*) saw ${parallelCount} rows and a serial one ${rowsAfter}`,
      );
    }
    workerResult = {
      seconds: elapsed,
      eventsPerSecond: n / elapsed,
      steadyEventsPerSecond: steady,
      startupSeconds: seconds(spawnedAt, startedAt),
      cpu,
      rowsAfter,
      deadLetters: await resources.redis.xlen(`${stream}:dead`),
    };
    if (rowsAfter !== rowsBefore + n) {
      const missing = await client.query<{ i: number; id: string }>(
        `SELECT e.i, e.id FROM unnest($1::uuid[]) WITH ORDINALITY AS e(id, i)
         WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.id = e.id) ORDER BY e.i`,
        [events.map((event) => event.id)],
      );
      // Does the count catch up later? (It would mean entries were acknowledged before their rows were visible.)
      let later = rowsAfter;
      const recheckStarted = performance.now();
      while (later !== rowsBefore + n && seconds(recheckStarted) < 5) {
        await sleep(50);
        later = Number(
          (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!
            .count,
        );
      }
      const first = missing.rows[0];
      const lastRow = missing.rows.at(-1);
      workerResult.problem =
        `audit_events holds ${rowsAfter} rows after the stream drained; expected ${rowsBefore + n}. ` +
        `${missing.rowCount} of the bench's events are missing` +
        (first && lastRow ? ` (positions ${first.i}..${lastRow.i} of the stream)` : '') +
        `; dead letters: ${workerResult.deadLetters}; ` +
        `count ${later} after ${seconds(recheckStarted).toFixed(2)} s more.`;
      log(`  PROBLEM: ${workerResult.problem}\n  worker output:\n${worker.output.slice(-3000)}`);
    }
  } finally {
    await resources.stop(worker);
  }
  return workerResult;
}
