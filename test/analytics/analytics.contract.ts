import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import {
  createAnalyticsService,
  PERCENTILE_RELATIVE_ERROR,
  type AnalyticsService,
  type Percentiles,
} from '../../src/analytics/analytics-service.js';
import { binOf, mergeBins } from '../../src/math/histogram.js';
import { AppError } from '../../src/errors.js';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import { createAnalyticsStore } from '../../src/store/analytics-store.js';
import type { Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import type { NewEvent } from '../../src/events/stored-event.js';
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from '../../src/store/migrate.js';

import type { DatabaseFixture } from '../support/databases.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// Windows end at a pinned `now`, half past an hour and at least half an hour in the
// past, so every event below was received before PostgreSQL persists it (positive lags)
// and the hour-aligned window starts are known: the 7-day window starts at now − 7 d − 30 min.
const NOW = new Date(Math.floor(Date.now() / HOUR) * HOUR - 30 * 60_000);
const FROM_7_DAYS = NOW.getTime() - 7 * DAY - 30 * 60_000;

const event = (
  sessionId: string,
  eventType: string,
  receivedAt: number,
  payload: Record<string, unknown> = {},
): NewEvent => ({
  id: uuidv7(),
  eventType,
  sessionId,
  payload,
  clientTime: null,
  receivedAt: new Date(receivedAt).toISOString(),
  apiKeyId: 'analytics-test',
});

/**
 * A dataset with known answers. Sessions: s1, s2, s3, s6 (also earlier), s7 (exactly at the
 * 7-day window's start) inside 7 days; s8 (1 ms before it) and s4 only inside 30 days; s5 older
 * than 30 days; d* only 45–50 days back (the dense samples for percentiles, inside 60 days).
 * Nothing in the last day: the 1-day window is empty.
 */
function dataset() {
  const ago = (ms: number) => NOW.getTime() - ms;
  const gpt = 'gpt-4o';
  const known = [
    event('s1', 'review_started', ago(30 * HOUR), { code_language: 'python', file_count: 3 }),
    event('s1', 'syntax_analysis_started', ago(30 * HOUR)),
    event('s1', 'syntax_analysis_completed', ago(30 * HOUR), { duration_ms: 120, errors_found: 0 }),
    event('s1', 'llm_query_sent', ago(30 * HOUR), { model: gpt, prompt_tokens: 999 }),
    event('s1', 'llm_feedback_received', ago(30 * HOUR), {
      model: gpt,
      prompt_tokens: 1000,
      completion_tokens: 200,
      cached_tokens: 400,
      reasoning_tokens: 50,
      latency_ms: 800,
      cost_usd: 0.01,
      success: true,
    }),
    event('s1', 'review_completed', ago(30 * HOUR), { duration_ms: 5000 }),
    event('s2', 'review_started', ago(2 * DAY)),
    event('s2', 'llm_query_sent', ago(2 * DAY), { model: gpt }),
    // No cost_usd: priced from the table, (2000 × 2.50 + 1000 × 10) / 1M = 0.015 USD.
    event('s2', 'llm_feedback_received', ago(2 * DAY), {
      model: gpt,
      prompt_tokens: 2000,
      completion_tokens: 1000,
      latency_ms: 1200,
    }),
    event('s2', 'error_occurred', ago(2 * DAY), { error_type: 'Timeout' }),
    event('s3', 'review_started', ago(3 * DAY)),
    event('s3', 'llm_query_sent', ago(3 * DAY)),
    // No model ("unknown"), no cost, no price: the cost is partial.
    event('s3', 'llm_feedback_received', ago(3 * DAY), {
      success: false,
      latency_ms: 3000,
      prompt_tokens: 10,
    }),
    // A model without a price that reports its cost: nothing partial about it.
    event('s3', 'llm_feedback_received', ago(3 * DAY), {
      model: 'in-house-7b',
      cost_usd: 0.002,
      latency_ms: 400,
      completion_tokens: 5,
    }),
    event('s6', 'review_completed', ago(6 * DAY), { duration_ms: 9000 }),
    event('s7', 'error_occurred', FROM_7_DAYS),
    event('s8', 'review_started', FROM_7_DAYS - 1),
    event('s6', 'review_started', ago(10 * DAY)),
    event('s4', 'review_started', ago(20 * DAY)),
    event('s4', 'error_occurred', ago(20 * DAY)),
    event('s4', 'llm_feedback_received', ago(20 * DAY), { model: gpt, cost_usd: 1, latency_ms: 100 }),
    event('s5', 'review_started', ago(40 * DAY)),
    event('s5', 'llm_feedback_received', ago(40 * DAY), { model: gpt, cost_usd: 5 }),
  ];
  // Dense samples for percentiles: log-uniform durations over 3+ decades, one per 9 minutes.
  const dense = Array.from({ length: 600 }, (_, index) => {
    const at = ago(50 * DAY) + index * 9 * 60_000;
    const value = Math.round(50 * 10 ** (((index * 7919) % 600) / 170)) / 10;
    const type = ['review_completed', 'syntax_analysis_completed', 'llm_feedback_received'][index % 3]!;
    return event(
      `d${index % 40}`,
      type,
      at,
      type === 'llm_feedback_received' ? { model: 'gpt-4o-mini', latency_ms: value } : { duration_ms: value },
    );
  });
  return { known, dense, all: [...known, ...dense] };
}

const relativeError = (actual: number | null, expected: number) =>
  Math.abs((actual ?? NaN) - expected) / expected;
const nearestRank = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length - 1e-9)) - 1]!;
};
const expectPercentiles = (actual: Percentiles, values: readonly number[]) => {
  expect(actual.samples).toBe(values.length);
  for (const [q, key] of [
    [0.5, 'p50'],
    [0.95, 'p95'],
    [0.99, 'p99'],
  ] as const) {
    expect(
      relativeError(actual[key], nearestRank(values, q)),
      `${key} of ${values.length} values`,
    ).toBeLessThanOrEqual(PERCENTILE_RELATIVE_ERROR + 1e-9);
  }
};
const dateOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const typeCounts = (counts: Partial<Record<string, number>>) =>
  EVENT_TYPES.map((eventType) => ({ eventType, events: counts[eventType] ?? 0 }));

/** What analytics must answer on every database backend; run on PostgreSQL and PGlite. */
export function analyticsContract(
  name: string,
  open: () => Promise<DatabaseFixture>,
  options: { skip?: boolean } = {},
) {
  describe.skipIf(options.skip === true)(`analytics contract: ${name}`, () => {
    const { known, dense, all } = dataset();
    let fixture: DatabaseFixture;
    let service: AnalyticsService;
    /** Each inserted event with the lag PostgreSQL recorded for it. */
    const lagOf = new Map<string, number>();

    beforeAll(async () => {
      fixture = await open();
      await migrate(fixture.db);
      const rollups = createRollupFolder(fixture.db);
      const events = createEventStore(fixture.db, { rollups });
      // The second batch redelivers two events of the first along with new ones:
      // only the new ones may count.
      const first = known.slice(0, 12);
      const second = [known[4]!, known[8]!, ...known.slice(12), ...dense];
      expect((await events.insertBatch(first)).inserted).toBe(first.length);
      expect((await events.insertBatch(second)).inserted).toBe(second.length - 2);
      for (const stored of await Promise.all(all.map((e) => events.findById(e.id)))) {
        lagOf.set(stored!.id, stored!.persistedAt.getTime() - stored!.receivedAt.getTime());
      }
      service = createAnalyticsService({
        store: createAnalyticsStore(fixture.db, { rollups }),
        now: () => NOW,
      });
    });
    afterAll(async () => {
      await fixture?.dispose();
    });

    it('counts usage over 7 days: per type, per UTC day, distinct sessions, completion and error rates', async () => {
      const usage = await service.usage(7);
      expect(usage.window).toEqual({ days: 7, from: new Date(FROM_7_DAYS), to: NOW });
      expect(usage.totalEvents).toBe(16);
      expect(usage.eventsByType).toEqual(
        typeCounts({
          review_started: 3,
          review_completed: 2,
          syntax_analysis_started: 1,
          syntax_analysis_completed: 1,
          llm_query_sent: 3,
          llm_feedback_received: 4,
          error_occurred: 2,
        }),
      );
      expect(usage.distinctSessions).toBe(5); // s1, s2, s3, s6, s7
      expect(usage.reviews).toEqual({ started: 3, completed: 2, completionRate: 2 / 3 });
      expect(usage.errors).toEqual({ count: 2, rate: 2 / 16 });

      // Every UTC day from the window's start to today, the partial ones at both ends included.
      const days = usage.eventsByDay.map((day) => day.date);
      expect(days).toHaveLength(8);
      expect(days[0]).toBe(dateOf(FROM_7_DAYS));
      expect(days.at(-1)).toBe(dateOf(NOW.getTime()));
      const expectedByDay = new Map<string, Partial<Record<string, number>>>();
      for (const e of known.filter((e) => Date.parse(e.receivedAt) >= FROM_7_DAYS)) {
        const counts = expectedByDay.get(e.receivedAt.slice(0, 10)) ?? {};
        counts[e.eventType] = (counts[e.eventType] ?? 0) + 1;
        expectedByDay.set(e.receivedAt.slice(0, 10), counts);
      }
      for (const day of usage.eventsByDay) {
        expect(day.byType, day.date).toEqual(typeCounts(expectedByDay.get(day.date) ?? {}));
        expect(day.events).toBe(day.byType.reduce((sum, type) => sum + type.events, 0));
      }
      expect(usage.eventsByDay.reduce((sum, day) => sum + day.events, 0)).toBe(16);
    });

    it('counts usage over 30 days, leaving out what is older', async () => {
      const usage = await service.usage(30);
      expect(usage.totalEvents).toBe(21);
      expect(usage.distinctSessions).toBe(7); // adds s8 and s4
      expect(usage.reviews).toEqual({ started: 6, completed: 2, completionRate: 2 / 6 });
      expect(usage.errors).toEqual({ count: 3, rate: 3 / 21 });
      expect(usage.eventsByDay).toHaveLength(31);
    });

    it('sums LLM traffic, tokens and cost per model, reported or priced, and flags unpriced cost as partial', async () => {
      const llm = await service.llm(7);
      expect(llm.models.map((model) => model.model)).toEqual(['gpt-4o', 'unknown', 'in-house-7b']);
      const [gpt, unknown, inHouse] = llm.models;
      expect(gpt).toMatchObject({
        priced: true,
        queries: 2,
        responses: 2,
        failures: 0,
        failureRate: 0,
        tokens: { prompt: 3000, completion: 1200, cached: 400, reasoning: 50 },
        cost: { reportedUsd: 0.01, partial: false, unpricedResponses: 0 },
      });
      expect(gpt!.cost.computedUsd).toBeCloseTo(0.015, 12);
      expect(gpt!.cost.usd).toBeCloseTo(0.025, 12);
      expectPercentiles(gpt!.latencyMs, [800, 1200]);
      expect(unknown).toMatchObject({
        priced: false,
        queries: 1,
        responses: 1,
        failures: 1,
        failureRate: 1,
        tokens: { prompt: 10, completion: 0, cached: 0, reasoning: 0 },
        cost: { usd: 0, reportedUsd: 0, computedUsd: 0, partial: true, unpricedResponses: 1 },
      });
      expect(inHouse).toMatchObject({
        priced: false,
        queries: 0,
        responses: 1,
        tokens: { prompt: 0, completion: 5, cached: 0, reasoning: 0 },
        cost: { reportedUsd: 0.002, computedUsd: 0, partial: false, unpricedResponses: 0 },
      });
      expect(llm.totals).toMatchObject({
        queries: 3,
        responses: 4,
        failures: 1,
        failureRate: 0.25,
        tokens: { prompt: 3010, completion: 1205, cached: 400, reasoning: 50 },
        cost: { partial: true, unpricedResponses: 1 },
      });
      expect(llm.totals.cost.usd).toBeCloseTo(0.027, 12);
      expect(llm.totals.cost.reportedUsd).toBeCloseTo(0.012, 12);
      expectPercentiles(llm.totals.latencyMs, [400, 800, 1200, 3000]);

      const month = await service.llm(30);
      expect(month.models[0]).toMatchObject({ model: 'gpt-4o', queries: 2, responses: 3 });
      expect(month.models[0]!.cost.usd).toBeCloseTo(1.025, 12);
      expectPercentiles(month.models[0]!.latencyMs, [100, 800, 1200]);
    });

    it('reports durations, events per hour and the pipeline lag over 7 days', async () => {
      const performance = await service.performance(7);
      expectPercentiles(performance.reviewDurationMs, [5000, 9000]);
      expectPercentiles(performance.syntaxAnalysisDurationMs, [120]);

      const { series, average } = performance.eventsPerHour;
      expect(series).toHaveLength(7 * 24 + 1);
      expect(series[0]).toEqual({ hour: new Date(FROM_7_DAYS), events: 1 }); // s7, exactly at the start
      expect(series.at(-1)!.hour).toEqual(new Date(NOW.getTime() - 30 * 60_000));
      expect(
        series.find((hour) => hour.hour.getTime() === NOW.getTime() - 30 * HOUR - 30 * 60_000)?.events,
      ).toBe(6);
      expect(series.reduce((sum, hour) => sum + hour.events, 0)).toBe(16);
      expect(average).toBeCloseTo(16 / (7 * 24 + 1), 12);

      const lags = known.filter((e) => Date.parse(e.receivedAt) >= FROM_7_DAYS).map((e) => lagOf.get(e.id)!);
      expectPercentiles(performance.pipelineLagMs, lags);
      expect(performance.pipelineLagMs.max).toBe(Math.max(...lags));
    });

    it('gives percentiles within 2 % of the exact values over hundreds of samples and partial days', async () => {
      // 60 days: the dense samples, 45–50 days back, and everything newer.
      const inWindow = all.filter((e) => Date.parse(e.receivedAt) >= NOW.getTime() - 60 * DAY - 30 * 60_000);
      const valuesOf = (type: string, field: string) =>
        inWindow
          .filter((e) => e.eventType === type && typeof e.payload[field] === 'number')
          .map((e) => e.payload[field] as number);
      const performance = await service.performance(60);
      expect(performance.reviewDurationMs.samples).toBeGreaterThan(200);
      expectPercentiles(performance.reviewDurationMs, valuesOf('review_completed', 'duration_ms'));
      expectPercentiles(
        performance.syntaxAnalysisDurationMs,
        valuesOf('syntax_analysis_completed', 'duration_ms'),
      );
      expectPercentiles(
        performance.pipelineLagMs,
        inWindow.map((e) => lagOf.get(e.id)!),
      );
      const llm = await service.llm(60);
      expectPercentiles(llm.totals.latencyMs, valuesOf('llm_feedback_received', 'latency_ms'));
      expectPercentiles(
        llm.models.find((model) => model.model === 'gpt-4o-mini')!.latencyMs,
        inWindow
          .filter((e) => e.payload['model'] === 'gpt-4o-mini')
          .map((e) => e.payload['latency_ms'] as number),
      );
      // Windows starting at each hour of a day read its hours from the hourly histograms.
      for (const days of [46, 47, 48, 49, 50]) {
        const start = NOW.getTime() - days * DAY - 30 * 60_000;
        const durations = all
          .filter((e) => e.eventType === 'review_completed' && Date.parse(e.receivedAt) >= start)
          .map((e) => e.payload['duration_ms'] as number);
        expectPercentiles((await service.performance(days)).reviewDurationMs, durations);
      }
    });

    it('stores each value in the bin src/analytics/histogram.ts computes, in hourly and daily histograms', async () => {
      const durations = all
        .filter((e) => e.eventType === 'review_completed')
        .map((e) => e.payload['duration_ms'] as number);
      const expected = mergeBins(durations.map((value) => ({ bin: binOf(value), count: 1 })));
      for (const table of ['analytics_histogram_hourly', 'analytics_histogram_daily']) {
        const rows = await fixture.db.query<{ bin: number; count: number }>(
          `SELECT bin, sum(n)::float8 AS count FROM ${table}
           WHERE metric = 'review_duration_ms' GROUP BY bin ORDER BY bin`,
        );
        expect(rows, table).toEqual(expected);
      }
    });

    it('answers zeros and nulls for a window without events, without failing', async () => {
      const usage = await service.usage(1);
      expect(usage.totalEvents).toBe(0);
      expect(usage.eventsByType).toEqual(typeCounts({}));
      expect(usage.distinctSessions).toBe(0);
      expect(usage.reviews).toEqual({ started: 0, completed: 0, completionRate: null });
      expect(usage.errors).toEqual({ count: 0, rate: null });
      expect(usage.eventsByDay.every((day) => day.events === 0)).toBe(true);
      const llm = await service.llm(1);
      expect(llm.models).toEqual([]);
      expect(llm.totals).toEqual({
        queries: 0,
        responses: 0,
        failures: 0,
        failureRate: null,
        tokens: { prompt: 0, completion: 0, cached: 0, reasoning: 0 },
        cost: { usd: 0, reportedUsd: 0, computedUsd: 0, partial: false, unpricedResponses: 0 },
        latencyMs: { samples: 0, p50: null, p95: null, p99: null },
      });
      const performance = await service.performance(1);
      const none = { samples: 0, p50: null, p95: null, p99: null };
      expect(performance.reviewDurationMs).toEqual(none);
      expect(performance.syntaxAnalysisDurationMs).toEqual(none);
      expect(performance.pipelineLagMs).toEqual({ ...none, max: null });
      expect(performance.eventsPerHour.series).toHaveLength(25);
      expect(performance.eventsPerHour.average).toBe(0);
    });

    it('changes no analytics when every batch is delivered again', async () => {
      const before = await Promise.all(
        [30, 60].flatMap((days) => [service.usage(days), service.llm(days), service.performance(days)]),
      );
      const events = createEventStore(fixture.db, { rollups: createRollupFolder(fixture.db) });
      expect((await events.insertBatch(all)).inserted).toBe(0);
      expect((await events.insertBatch(known.slice(3, 9))).inserted).toBe(0);
      const after = await Promise.all(
        [30, 60].flatMap((days) => [service.usage(days), service.llm(days), service.performance(days)]),
      );
      expect(after).toEqual(before);
    });

    it('leaves the rollups to the fold, which counts each stored event once, also while racing inserts', async () => {
      const fresh = await open();
      try {
        await migrate(fresh.db);
        const rollups = createRollupFolder(fresh.db);
        const events = createEventStore(fresh.db, { rollups });
        const countedEvents = async () =>
          (
            await fresh.db.query<{ n: number }>(
              'SELECT COALESCE(sum(events), 0)::int AS n FROM analytics_event_counts',
            )
          )[0]!.n;
        const at = NOW.getTime() - 2 * HOUR;
        const batches = Array.from({ length: 8 }, (_, b) =>
          Array.from({ length: 25 }, (_, i) =>
            event(`fold-${b}-${i % 5}`, 'review_completed', at, { duration_ms: i }),
          ),
        );

        // The insert alone counts nothing: its transaction does not touch the rollups.
        expect((await events.insertBatch(batches[0]!)).inserted).toBe(25);
        expect(await countedEvents()).toBe(0);
        // Folds racing the remaining inserts: together they count every event exactly once.
        const folds: Array<Promise<number>> = [rollups.fold()];
        for (const batch of batches.slice(1)) {
          const inserting = events.insertBatch(batch);
          folds.push(rollups.fold(), rollups.fold());
          await inserting;
        }
        const foldedWhileRacing = (await Promise.all(folds)).reduce((sum, n) => sum + n, 0);
        expect(foldedWhileRacing + (await rollups.fold())).toBe(200);
        expect(await countedEvents()).toBe(200);
        const [sessions] = await fresh.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM analytics_session_activity',
        );
        expect(sessions!.n).toBe(40);

        // A redelivered batch is neither stored nor folded again; a read folds what is new first.
        expect((await events.insertBatch(batches[0]!)).inserted).toBe(0);
        expect(await rollups.fold()).toBe(0);
        await events.insertBatch([event('fold-late', 'review_started', at)]);
        const daily = await createAnalyticsStore(fresh.db, { rollups }).dailyTypeCounts(
          new Date(Math.floor((at - DAY) / HOUR) * HOUR),
        );
        expect(daily.reduce((sum, row) => sum + row.events, 0)).toBe(201);
      } finally {
        await fresh.dispose();
      }
    });

    it('spaces background folds requested after every commit, and still counts every event', async () => {
      const fresh = await open();
      try {
        await migrate(fresh.db);
        const events = createEventStore(fresh.db, { rollups: createRollupFolder(fresh.db) });
        let folds = 0;
        const counting: Database = {
          ...fresh.db,
          transaction: (work) => {
            folds += 1;
            return fresh.db.transaction(work);
          },
        };
        const spacingMs = 400;
        const rollups = createRollupFolder(counting, { spacingMs });
        const at = NOW.getTime() - 3 * HOUR;
        const failures: unknown[] = [];
        const started = Date.now();
        // A commit every ~40 ms, each after the fold before it has finished: the pattern of a busy
        // worker, where a fold per commit would double the transactions.
        for (let batch = 0; batch < 25; batch += 1) {
          await events.insertBatch([event(`spaced-${batch}`, 'review_started', at)]);
          rollups.request((error) => failures.push(error));
          await new Promise((resolve) => setTimeout(resolve, 40));
        }
        await rollups.idle();
        const elapsed = Date.now() - started;
        expect(failures).toEqual([]);
        expect(folds).toBeGreaterThanOrEqual(2);
        expect(folds).toBeLessThanOrEqual(Math.ceil(elapsed / spacingMs) + 1);
        const [counted] = await fresh.db.query<{ n: number }>(
          'SELECT COALESCE(sum(events), 0)::int AS n FROM analytics_event_counts',
        );
        expect(counted!.n).toBe(25);
      } finally {
        await fresh.dispose();
      }
    });

    it('refuses a days that is not a whole number from 1 to 365, naming it', async () => {
      for (const days of [0, -1, 366, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        for (const call of [service.usage, service.llm, service.performance]) {
          const failure = await call(days).catch((error: unknown) => error);
          expect(failure).toBeInstanceOf(AppError);
          expect(failure).toMatchObject({ code: 'BAD_REQUEST', problems: [{ field: 'days' }] });
        }
      }
      await expect(service.usage(365)).resolves.toMatchObject({ window: { days: 365 } });
    });
  });

  describe.skipIf(options.skip === true)(`analytics on an empty database: ${name}`, () => {
    let fixture: DatabaseFixture;
    beforeAll(async () => {
      fixture = await open();
      await migrate(fixture.db);
    });
    afterAll(async () => {
      await fixture?.dispose();
    });

    it('answers zeros and nulls for every window', async () => {
      const service = createAnalyticsService({
        store: createAnalyticsStore(fixture.db, { rollups: createRollupFolder(fixture.db) }),
      });
      for (const days of [1, 30, 365]) {
        const [usage, llm, performance] = await Promise.all([
          service.usage(days),
          service.llm(days),
          service.performance(days),
        ]);
        expect(usage).toMatchObject({
          totalEvents: 0,
          distinctSessions: 0,
          errors: { count: 0, rate: null },
        });
        expect(usage.eventsByDay.length).toBeGreaterThanOrEqual(days);
        expect(llm.models).toEqual([]);
        expect(llm.totals.latencyMs.p50).toBeNull();
        expect(performance.pipelineLagMs).toEqual({ samples: 0, p50: null, p95: null, p99: null, max: null });
        expect(performance.eventsPerHour.series.length).toBeGreaterThanOrEqual(days * 24);
      }
    });
  });

  describe.skipIf(options.skip === true)(
    `analytics of events stored before the rollups existed: ${name}`,
    () => {
      let before: DatabaseFixture;
      let live: DatabaseFixture;
      let scratch: string;
      beforeAll(async () => {
        [before, live] = await Promise.all([open(), open()]);
        scratch = await mkdtemp(path.join(os.tmpdir(), 'ag-migrations-'));
      });
      afterAll(async () => {
        await Promise.all([before?.dispose(), live?.dispose()]);
        if (scratch) await rm(scratch, { recursive: true, force: true });
      });

      it('backfills the rollups when migrating, to exactly what live maintenance gives', async () => {
        const at = NOW.getTime() - 55 * DAY;
        // Payloads the ingest catalog refuses, as rows stored before it may hold: never an insert failure.
        const malformed = [
          event('m1', 'review_completed', at, { duration_ms: '12' }),
          event('m1', 'review_completed', at, { duration_ms: -5 }),
          event('m1', 'review_completed', at, { duration_ms: 1e300 }),
          event('m1', 'llm_query_sent', at, { model: 'x'.repeat(300) }),
          event('m1', 'llm_feedback_received', at, {
            model: { name: 'nested' },
            prompt_tokens: 1e300,
            completion_tokens: -3,
            cost_usd: 'free',
            latency_ms: null,
            success: 'no',
          }),
        ];
        const events = [...dataset().all, ...malformed];
        // Only the migrations before the rollups, then events stored as the worker stored them then.
        const migrations = await readMigrations();
        const rollups = migrations.findIndex((migration) => migration.name.endsWith('_analytics_rollups'));
        expect(rollups).toBeGreaterThan(0);
        for (const migration of migrations.slice(0, rollups)) {
          await cp(path.join(DEFAULT_MIGRATIONS_DIR, migration.name), path.join(scratch, migration.name), {
            recursive: true,
          });
        }
        await migrate(before.db, scratch);
        const persistedAt = events.map(
          (e) => new Date(Date.parse(e.receivedAt) + 1234 + (e.eventType.length % 5) * 1000),
        );
        await before.db.query(
          `INSERT INTO audit_events (id, event_type, session_id, payload, client_time, received_at, api_key_id, persisted_at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[],
                                $6::timestamptz[], $7::text[], $8::timestamptz[])`,
          [
            events.map((e) => e.id),
            events.map((e) => e.eventType),
            events.map((e) => e.sessionId),
            events.map((e) => JSON.stringify(e.payload)),
            events.map((e) => e.clientTime),
            events.map((e) => e.receivedAt),
            events.map((e) => e.apiKeyId),
            persistedAt,
          ],
        );
        expect((await migrate(before.db)).applied).toEqual(
          migrations.slice(rollups).map((migration) => migration.name),
        );

        // The same events through today's insert path, in several batches, with the same persisted_at.
        await migrate(live.db);
        const store = createEventStore(live.db, { rollups: createRollupFolder(live.db) });
        for (let start = 0; start < events.length; start += 100) {
          await store.insertBatch(events.slice(start, start + 100));
        }
        // Stored events are append-only (a trigger); this test rewrites them on purpose.
        await live.db.transaction(async (tx) => {
          await tx.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
          await tx.query(
            `UPDATE audit_events SET persisted_at = p.at
             FROM unnest($1::uuid[], $2::timestamptz[]) p(id, at) WHERE audit_events.id = p.id`,
            [events.map((e) => e.id), persistedAt],
          );
          await tx.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
        });

        const analytics = async (db: Database) => {
          const service = createAnalyticsService({
            store: createAnalyticsStore(db, { rollups: createRollupFolder(db) }),
            now: () => NOW,
          });
          const results = await Promise.all(
            [7, 60].flatMap((days) => [service.usage(days), service.llm(days)]),
          );
          const performance = await service.performance(60);
          // Live maintenance recorded the lags of the real insert; compare everything else.
          return {
            results,
            durations: [
              performance.reviewDurationMs,
              performance.syntaxAnalysisDurationMs,
              performance.eventsPerHour,
            ],
          };
        };
        const backfilled = await analytics(before.db);
        expect(backfilled.results[0]).toMatchObject({ totalEvents: 16, distinctSessions: 5 });
        expect(backfilled).toEqual(await analytics(live.db));

        const service = createAnalyticsService({
          store: createAnalyticsStore(before.db, { rollups: createRollupFolder(before.db) }),
          now: () => NOW,
        });
        // The lag the backfill computed is the stored one.
        const performance = await service.performance(60);
        expect(performance.pipelineLagMs.max).toBe(5234);
        // Malformed fields count as absent, or are clamped: the string duration is no sample,
        // -5 counts as 0 and 1e300 as 10^12 ms; a non-string model is "unknown", a long one cut.
        const reviews = events.filter(
          (e) => e.eventType === 'review_completed' && Date.parse(e.receivedAt) >= NOW.getTime() - 60 * DAY,
        );
        expect(performance.reviewDurationMs.samples).toBe(reviews.length - 1);
        expect(performance.reviewDurationMs.p99).toBeLessThan(1e6);
        const llm = await service.llm(60);
        expect(llm.models.find((model) => model.model === 'x'.repeat(128))).toMatchObject({ queries: 1 });
        expect(llm.models.find((model) => model.model === 'unknown')).toMatchObject({
          responses: 2,
          failures: 1,
          tokens: { prompt: 10 + 1e9, completion: 0 },
          cost: { usd: 0, partial: true, unpricedResponses: 2 },
        });
      });
    },
  );
}
