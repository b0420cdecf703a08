/**
 * 2 and 3. Persistence: `auditgraph worker` draining a pre-filled stream into
 * `audit_events` (empty, or holding `--preload` rows), beside a raw
 * `INSERT ... SELECT unnest(...)` of the same rows into a copy of the table
 * (`LIKE audit_events INCLUDING ALL`) from one Node process on one connection.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { NODE_FLAGS } from '../../../bin/node-flags.mjs';
import { fmtInt } from '../../support/format.js';
import { BIN, childFailed } from '../../support/processes.js';
import { median } from '../../support/stats.js';
import { fillStream, makeEvents } from '../events.js';
import { fmtCpu, log } from '../log.js';
import { measureQuietly, waitForQuiet } from '../measure.js';
import type { Options, Phase } from '../options.js';
import { summarizeProfileDir, type ProfileSummary } from '../profile.js';
import type { Resources } from '../resources.js';
import { instrumentedDrain, sqlShapes, type Breakdown } from './breakdown.js';
import { rawInsert } from './raw-insert.js';
import { emptyTables, preloadTables } from './tables.js';
import { drainWithWorker } from './worker.js';

const INGEST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface PersistenceResult {
  scenario: Phase;
  rowsBefore: number;
  events: number;
  batchSize: number;
  rawBatch: number;
  preloadSeconds?: number;
  fillSeconds: number;
  raw: { seconds: number; eventsPerSecond: number; cpu: Record<string, number> };
  worker: {
    seconds: number;
    eventsPerSecond: number;
    steadyEventsPerSecond: number;
    startupSeconds: number;
    cpu: Record<string, number>;
    rowsAfter: number;
    deadLetters: number;
    /** Set when the table does not hold every event after the stream drained. */
    problem?: string;
  };
  /** The reported round's (the median ratio's); every round is in `rounds`. */
  ratio: number;
  /** Each round: raw, then the worker, on fresh rows. */
  rounds: Array<{ rawEventsPerSecond: number; workerEventsPerSecond: number; ratio: number }>;
  /** The median of the rounds' worker rates: what the events/s target is checked against. */
  medianWorkerEventsPerSecond: number;
  targets: { ratio: number; eventsPerSecond?: number };
  pass: boolean;
  profile?: ProfileSummary;
  breakdown?: Breakdown;
}

export async function persistencePhase(
  options: Options,
  resources: Resources,
  runId: string,
  scenario: Phase,
): Promise<PersistenceResult> {
  const preload = scenario === 'preloaded' ? options.preload : 0;
  const dbName = `${runId}_${scenario}`;
  const url = await resources.createDatabase(dbName);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const stream = `${runId}:${scenario}`;
  resources.addStream(stream);
  try {
    log(`persistence (${scenario}): database ${dbName}, stream ${stream}`);
    // The schema exactly as the service makes it.
    const migrateChild = resources.startChild('migrate', process.execPath, [...NODE_FLAGS, BIN, 'migrate'], {
      DATABASE_URL: url,
      LOG_LEVEL: 'warn',
    });
    if ((await migrateChild.exited) !== 0) throw childFailed(migrateChild, 'failed');
    resources.forget(migrateChild);
    await client.query('CREATE TABLE audit_events_raw (LIKE audit_events INCLUDING ALL)');
    resources.commands.push(
      `psql ${url} -c 'CREATE TABLE audit_events_raw (LIKE audit_events INCLUDING ALL)'`,
    );
    resources.commands.push(
      `  (then, from this process on one connection: ${preload > 0 ? `PRELOAD_SQL for ${preload} rows, ` : ''}` +
        `RAW_INSERT in batches of ${options.rawBatch}, autocommit; see bench/ingest/phases/tables.ts and raw-insert.ts)`,
    );

    let preloadSeconds: number | undefined;
    let workerProfile: ProfileSummary | undefined;
    if (preload > 0) {
      log(`  preloading ${fmtInt(preload)} rows into audit_events and audit_events_raw`);
      preloadSeconds = (await preloadTables(client, preload)).seconds;
    }

    let events = makeEvents(options.events);
    let fillSeconds = await fillStream(resources.redis, stream, events);
    log(`  filled ${stream} with ${fmtInt(events.length)} events in ${fillSeconds.toFixed(1)} s`);
    // Every measurement after the first starts from fresh rows: into empty tables again for the
    // empty scenario; the preloaded tables just grow by one run's rows (--events) each time.
    let measurements = 0;
    const freshStart = async () => {
      measurements += 1;
      if (measurements === 1) return;
      if (scenario === 'empty') await emptyTables(client);
      events = makeEvents(options.events);
      fillSeconds = await fillStream(resources.redis, stream, events);
    };

    type Round = { raw: Awaited<ReturnType<typeof rawInsert>>; worker: PersistenceResult['worker'] };
    const rounds: Round[] = [];
    for (let round = 1; round <= options.persistRounds; round += 1) {
      if (options.persistRounds > 1) log(`  round ${round}/${options.persistRounds}`);
      // The ceiling first, from a clean checkpoint; measured again (on fresh rows) when the machine was busy.
      const raw = await measureQuietly(options.retries, async () => {
        await freshStart();
        await client.query('CHECKPOINT');
        await waitForQuiet(options.quietTimeoutS);
        const result = await rawInsert(resources.admin, client, dbName, events, options.rawBatch);
        log(
          `  raw unnest insert: ${fmtInt(result.eventsPerSecond)} events/s (${result.seconds.toFixed(1)} s; ${fmtCpu(result.cpu)})`,
        );
        return result;
      });

      // Then the worker, from a clean checkpoint too, on the stream of the raw insert's rows (into
      // the other table), or on fresh rows when measured again.
      const worker = await measureQuietly(options.retries, async (attempt) => {
        if (attempt > 1) await freshStart();
        const rowsBefore = Number(
          (await client.query<{ count: string }>('SELECT count(*) AS count FROM audit_events')).rows[0]!
            .count,
        );
        await client.query('CHECKPOINT');
        await waitForQuiet(options.quietTimeoutS);
        const profileDir = path.join(INGEST, 'profiles', runId, `worker-${scenario}-${round}-${attempt}`);
        const result = await drainWithWorker(
          options,
          resources,
          url,
          client,
          stream,
          events,
          rowsBefore,
          profileDir,
        );
        log(
          `  worker: ${fmtInt(result.eventsPerSecond)} events/s (steady ${fmtInt(result.steadyEventsPerSecond)}; ` +
            `${result.seconds.toFixed(1)} s; ${fmtCpu(result.cpu)})`,
        );
        if (options.profile) workerProfile = summarizeProfileDir(profileDir);
        return result;
      });
      rounds.push({ raw, worker });
    }
    const ratioOf = (round: Round) => round.worker.eventsPerSecond / round.raw.eventsPerSecond;
    // The round with the median ratio stands for the scenario: raw and worker measured side by side.
    const reported = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b))[
      Math.floor((rounds.length - 1) / 2)
    ]!;
    const raw = reported.raw;
    const workerResult = reported.worker;
    const medianWorkerEventsPerSecond = median(rounds.map((round) => round.worker.eventsPerSecond));
    const problem = rounds.find((round) => round.worker.problem !== undefined)?.worker.problem;

    let breakdown: Breakdown | undefined;
    if (options.breakdown) {
      const extra = `${stream}:breakdown`;
      resources.addStream(extra);
      const more = makeEvents(Math.min(options.events, 100_000));
      await fillStream(resources.redis, extra, more);
      await client.query('CHECKPOINT');
      breakdown = await instrumentedDrain(options, url, extra, more.length);
      await resources.deleteStream(extra);
      breakdown.sqlShapes = await sqlShapes(client, Math.min(options.events, 50_000), options.rawBatch);
    }

    const ratio = ratioOf(reported);
    const targets = scenario === 'preloaded' ? { ratio: 0.5, eventsPerSecond: 20_000 } : { ratio: 0.5 };
    return {
      scenario,
      rowsBefore: preload,
      events: options.events,
      batchSize: options.batchSize,
      rawBatch: options.rawBatch,
      ...(preloadSeconds === undefined ? {} : { preloadSeconds }),
      fillSeconds,
      raw,
      worker: problem === undefined ? workerResult : { ...workerResult, problem },
      ratio,
      rounds: rounds.map((round) => ({
        rawEventsPerSecond: round.raw.eventsPerSecond,
        workerEventsPerSecond: round.worker.eventsPerSecond,
        ratio: ratioOf(round),
      })),
      medianWorkerEventsPerSecond,
      targets,
      pass:
        problem === undefined &&
        ratio >= targets.ratio &&
        medianWorkerEventsPerSecond >= (targets.eventsPerSecond ?? 0),
      ...(workerProfile ? { profile: workerProfile } : {}),
      ...(breakdown ? { breakdown } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
    await resources.deleteStream(stream);
    await resources.dropDatabase(dbName);
  }
}
