import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import { createAnalyticsService } from '../../src/analytics/analytics-service.js';
import { createAnalyticsRoutes } from '../../src/http/analytics-routes.js';
import { createHttpApp, type HttpApp } from '../../src/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createAuthenticator, digestSecret } from '../../src/security/authenticate.js';
import { createAnalyticsStore } from '../../src/store/analytics-store.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createEventStore } from '../../src/store/event-store.js';
import { createRollupFolder } from '../../src/store/rollup-folder.js';
import { migrate } from '../../src/store/migrate.js';

const HOUR = 3_600_000;
const NOW = new Date(Math.floor(Date.now() / HOUR) * HOUR - 30 * 60_000);

describe('analytics REST routes', () => {
  const readKey = `test_read_${randomBytes(12).toString('hex')}`;
  const ingestKey = `test_ingest_${randomBytes(12).toString('hex')}`;
  let dir: string;
  let db: Database;
  let app: HttpApp;
  let baseUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ag-pglite-'));
    db = await openDatabase({ kind: 'pglite', dataDir: dir });
    await migrate(db);
    const at = new Date(NOW.getTime() - 2 * HOUR).toISOString();
    const event = (eventType: string, payload: Record<string, unknown>) => ({
      id: uuidv7(),
      eventType,
      sessionId: 'rest-1',
      payload,
      clientTime: null,
      receivedAt: at,
      apiKeyId: null,
    });
    const rollups = createRollupFolder(db);
    await createEventStore(db, { rollups }).insertBatch([
      event('review_started', {}),
      event('review_completed', { duration_ms: 1500 }),
      event('llm_feedback_received', { model: 'gpt-4o-mini', prompt_tokens: 100, latency_ms: 900 }),
    ]);
    const service = createAnalyticsService({ store: createAnalyticsStore(db, { rollups }), now: () => NOW });
    app = createHttpApp({
      routes: createAnalyticsRoutes(service),
      authenticator: createAuthenticator({
        staticKeys: [
          { id: 'reader', scopes: ['read'], sha256: digestSecret(readKey) },
          { id: 'ingester', scopes: ['ingest'], sha256: digestSecret(ingestKey) },
        ],
      }),
      logger: createLogger({ level: 'silent' }),
      maxBodyBytes: 4096,
    });
    const [port] = await app.listen([0], '127.0.0.1');
    baseUrl = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await app?.close(1000);
    await db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = async (pathAndQuery: string, key: string | null = readKey, method = 'GET') => {
    const response = await fetch(`${baseUrl}${pathAndQuery}`, {
      method,
      headers: key === null ? {} : { 'x-api-key': key },
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('answers usage in snake_case over 7 days by default', async () => {
    const { status, body } = await get('/analytics/usage');
    expect(status).toBe(200);
    expect(body).toEqual({
      window: {
        days: 7,
        from: new Date(NOW.getTime() - 7 * 24 * HOUR - 30 * 60_000).toISOString(),
        to: NOW.toISOString(),
      },
      total_events: 3,
      events_by_type: expect.arrayContaining([
        { event_type: 'review_started', events: 1 },
        { event_type: 'error_occurred', events: 0 },
      ]),
      events_by_day: expect.any(Array),
      distinct_sessions: 1,
      reviews: { started: 1, completed: 1, completion_rate: 1 },
      errors: { count: 0, rate: 0 },
    });
    const days = body['events_by_day'] as Array<Record<string, unknown>>;
    expect(days).toHaveLength(8);
    expect(Object.keys(days[0]!)).toEqual(['date', 'events', 'by_type']);
    expect(days.at(-1)!['date']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('answers LLM analytics per model and in total, in snake_case', async () => {
    const { status, body } = await get('/analytics/llm?days=30');
    expect(status).toBe(200);
    const usage = {
      queries: 0,
      responses: 1,
      failures: 0,
      failure_rate: 0,
      tokens: { prompt: 100, completion: 0, cached: 0, reasoning: 0 },
      cost: {
        usd: expect.closeTo(100 * 0.15e-6, 12),
        reported_usd: 0,
        computed_usd: expect.closeTo(100 * 0.15e-6, 12),
        partial: false,
        unpriced_responses: 0,
      },
      latency_ms: {
        samples: 1,
        p50: expect.closeTo(900, -2),
        p95: expect.any(Number),
        p99: expect.any(Number),
      },
    };
    expect(body).toEqual({
      window: expect.objectContaining({ days: 30 }),
      models: [{ model: 'gpt-4o-mini', priced: true, ...usage }],
      totals: usage,
    });
  });

  it('answers performance analytics with an hourly series and lag, in snake_case', async () => {
    const { status, body } = await get('/analytics/performance?days=1');
    expect(status).toBe(200);
    expect(Object.keys(body)).toEqual([
      'window',
      'review_duration_ms',
      'syntax_analysis_duration_ms',
      'events_per_hour',
      'pipeline_lag_ms',
    ]);
    expect(body['review_duration_ms']).toEqual({
      samples: 1,
      p50: expect.closeTo(1500, -2),
      p95: expect.any(Number),
      p99: expect.any(Number),
    });
    expect(body['syntax_analysis_duration_ms']).toEqual({ samples: 0, p50: null, p95: null, p99: null });
    const perHour = body['events_per_hour'] as {
      average: number;
      series: Array<{ hour: string; events: number }>;
    };
    expect(perHour.series).toHaveLength(25);
    expect(perHour.series[0]).toEqual({ hour: expect.stringMatching(/T\d\d:00:00\.000Z$/), events: 0 });
    expect(perHour.average).toBeCloseTo(3 / 25, 12);
    expect(body['pipeline_lag_ms']).toMatchObject({ samples: 3, max: expect.any(Number) });
  });

  it.each([
    ['days=0', 'days', 'must be between 1 and 365'],
    ['days=366', 'days', 'must be between 1 and 365'],
    ['days=1.5', 'days', 'must be a whole number'],
    ['days=abc', 'days', 'must be a number'],
    ['days=', 'days', 'must be between 1 and 365'],
    ['day=7', 'day', "unknown field 'day'"],
  ])('answers 400 naming the parameter for ?%s', async (query, field, message) => {
    for (const name of ['usage', 'llm', 'performance']) {
      const { status, body } = await get(`/analytics/${name}?${query}`);
      expect(status).toBe(400);
      expect(body).toMatchObject({ error: { code: 'BAD_REQUEST', fields: [{ field }] } });
      expect((body['error'] as { fields: Array<{ message: string }> }).fields[0]!.message).toContain(message);
    }
  });

  it('needs a key with the read scope', async () => {
    expect((await get('/analytics/usage', null)).status).toBe(401);
    expect((await get('/analytics/usage', 'not-a-key')).status).toBe(401);
    expect((await get('/analytics/usage', ingestKey)).status).toBe(403);
    expect((await get('/analytics/usage', readKey, 'POST')).status).toBe(405);
  });
});
